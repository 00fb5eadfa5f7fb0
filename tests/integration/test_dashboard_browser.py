"""Auditor: the dashboard in headless Chromium (Selenium) against real geth validators.

Skipped without /usr/bin/chromium and /usr/bin/chromedriver (``scripts/setup_browser.sh``).
Keeps a screenshot as ``artifacts/dashboard.png``.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from auditor_chain import audited_chain_on

pytestmark = pytest.mark.integration

ARTIFACT = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard.png"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no chromium/chromedriver: run scripts/setup_browser.sh")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1400"):
        options.add_argument(arg)
    options.binary_location = chromium
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


@pytest.fixture(scope="module")
def dashboard(geth_network, tmp_path_factory):
    import uvicorn

    from fednode.cli.dashboard_cmd import dashboard_source
    from fednode.dashboard.app import create_app

    chain = audited_chain_on(geth_network.dir, tmp_path_factory.mktemp("dashboard"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(dashboard_source(chain.network_dir)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    yield chain, f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


def test_dashboard_shows_members_tasks_audit_and_provenance(dashboard, browser):
    # Arrange
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chain, url = dashboard
    # Act
    browser.get(url)
    WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#trace li"))
    ARTIFACT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACT))
    members = browser.find_element(By.ID, "members").text
    tasks = browser.find_element(By.ID, "tasks").text
    # Assert
    assert "edge-1" in members and "AGGREGATOR" in members
    assert "audit-demo" in tasks
    assert "every version recomputed bit for bit" in browser.find_element(By.ID, "task-audit").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#versions tr")) == 3
    assert browser.find_element(By.ID, "privacy").text.count("/ 5") == 3
    gates = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#versions td.gate")]
    assert gates == ["pending", "pending", "accepted"]
    metrics = browser.find_element(By.ID, "metrics").text
    assert all(value in metrics for value in ("0.750", "0.813", "0.900"))  # edge-4: no update
    assert ARTIFACT.stat().st_size > 10_000


def test_clicking_a_version_drills_into_its_provenance(dashboard, browser):
    # Arrange
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(dashboard[1])
    rows = (By.CSS_SELECTOR, "#versions tr")
    WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(*rows)) == 3)
    # Act: the page re-renders every 5 s, so a row found just before a refresh can go stale.
    from selenium.common.exceptions import StaleElementReferenceException

    def click_v1(b) -> bool:
        b.find_elements(*rows)[1].click()
        return True

    WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(click_v1)
    WebDriverWait(browser, 30).until(lambda b: "v1)" in b.find_element(By.ID, "trace-title").text)
    time.sleep(6)  # one auto-refresh later, the drill-down stays on v1
    # Assert
    assert "v1)" in browser.find_element(By.ID, "trace-title").text
    assert browser.find_element(By.ID, "trace").text.count("update ") == 3
