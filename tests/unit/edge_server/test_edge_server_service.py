"""Edge: the real HTTP server on loopback, with its submitter thread, end to end in memory."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from edge_server_harness import EDGE, make_consortium, make_params

from edge_server.config import EdgeConfig
from edge_server.service import EdgeServer, build_web3_ledger, enroll_device, main
from edge_server.store import EdgeStore, UpdateStatus
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.errors import EdgeError, FednodeError, FednodeValueError
from fednode.site.device_client import DeviceIdentity, EdgeClient
from fednode.update.envelope import SIGNATURE_HEADER

MODULES = [
    "edge_server", "edge_server.app", "edge_server.auth", "edge_server.config",
    "fednode.site.device_client", "edge_server.intake", "edge_server.protocol",
    "edge_server.service", "edge_server.store", "edge_server.submitter", "edge_server.crash",
    "edge_server.outbox", "edge_server.metrics", "edge_server.ratelimit", "edge_server.logs",
    "edge_server.tls", "edge_server.secagg", "edge_server.cohort", "edge_server.cohort_app",
    "edge_server.cohort_client", "edge_server.cohort_protocol", "edge_server.cohort_store",
    "edge_server.cohort_store_records", "edge_server.cohort_store_sql", "edge_server.store_schema",
    "edge_server.store_rows", "edge_server.store_outbox", "edge_server.evaluations",
    "edge_server.evaluations_outbox", "fednode.update.evaluation",
    "edge_server.evaluation_store", "edge_server.app_http", "edge_server.app_views",
    "fednode.site.device_identity", "edge_server.tx_kind", "edge_server.tx_outbox",
    "edge_server.cohort_trust", "fednode.update.envelope", "fednode.update.signing",
    "fednode.site.tls", "fednode.site.hospital",
]  # fmt: skip


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[EdgeServer, InMemoryLedger]]:
    admin = make_consortium()
    config = EdgeConfig(
        name="edge-a", db_path=str(tmp_path / "edge.sqlite"), port=0, submit_poll_interval_s=0.05
    )
    with EdgeServer(config, admin.as_sender(EDGE)) as server:
        yield server, admin


def test_device_posts_over_http_and_the_update_reaches_the_ledger(
    running: tuple[EdgeServer, InMemoryLedger],
) -> None:
    # Arrange
    server, admin = running
    device = DeviceIdentity.generate()
    enroll_device(server.store, device.device_id, device.public_key_hex)

    # Act
    with EdgeClient(server.url, device) as client:
        version, params = client.fetch_global(1)
        delta = {"dense": {k: np.full_like(v, 0.01) for k, v in params["dense"].items()}}
        ref = client.post_update(1, version, delta, num_examples=30, epsilon_micro=10)
        status = client.wait_submitted(ref, timeout=5.0)

    # Assert
    (on_chain,) = admin.read_updates(1)
    assert status["status"] == "committed" and status["chain_update_id"] == on_chain.update_id
    assert on_chain.num_examples == 30 and on_chain.epsilon_micro == 10
    assert httpx.get(server.url + "/healthz").json()["submitter_running"] is True


def test_concurrent_devices_get_one_slot_per_base_version(
    running: tuple[EdgeServer, InMemoryLedger],
) -> None:
    # Arrange
    server, admin = running
    devices = [DeviceIdentity.generate() for _ in range(6)]
    for device in devices:
        enroll_device(server.store, device.device_id, device.public_key_hex)

    def post(device: DeviceIdentity) -> str:
        with EdgeClient(server.url, device) as client:
            try:
                client.post_update(2, 0, make_params(0.1), num_examples=5)
                return "accepted"
            except EdgeError as exc:
                return f"{exc.status} {exc.reason}"

    # Act
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = sorted(pool.map(post, devices))

    # Assert
    assert outcomes == ["409 duplicate_base"] * 5 + ["accepted"]
    assert len(server.store.list_updates()) == 1


def test_oversize_body_over_real_http_is_413(running: tuple[EdgeServer, InMemoryLedger]) -> None:
    # Arrange
    server, _ = running
    body = b"{" + b" " * (server.config.max_body_bytes + 10) + b"}"

    # Act
    response = httpx.post(server.url + "/v1/updates", content=body, headers={SIGNATURE_HEADER: "x"})

    # Assert
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert server.store.count_by_status()[UpdateStatus.ACCEPTED] == 0


def test_stopped_server_keeps_pending_rows_for_the_next_start(tmp_path: Path) -> None:
    # Arrange: a first run accepts an update but its submitter never runs
    admin = make_consortium()
    config = EdgeConfig(name="e", db_path=str(tmp_path / "edge.sqlite"), port=0)
    device = DeviceIdentity.generate()
    server = EdgeServer(config, admin.as_sender(EDGE))
    enroll_device(server.store, device.device_id, device.public_key_hex)
    server.submitter.start = lambda: None  # type: ignore[method-assign]
    with server, EdgeClient(server.url, device) as client:
        ref = client.post_update(1, 0, make_params(0.1), num_examples=5)

    # Act
    with EdgeServer(config, admin.as_sender(EDGE)) as restarted:
        with EdgeClient(restarted.url, device) as client:
            status = client.wait_submitted(ref, timeout=5.0)

    # Assert
    assert status["status"] == "committed" and admin.update_count() == 1


@pytest.mark.parametrize(
    ("device_id", "key"), [("bad id", "ab" * 32), ("", "ab" * 32), ("ok", "xyz"), ("ok", "ab")]
)
def test_enroll_device_refuses_malformed_input(device_id: str, key: str) -> None:
    with EdgeStore(":memory:") as store, pytest.raises(FednodeValueError):
        enroll_device(store, device_id, key)


def test_main_requires_its_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--name", "e"])
    assert exited.value.code == 2
    assert "--db" in capsys.readouterr().err


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__)
    assert all(hasattr(module, public) for public in module.__all__)


def test_build_web3_ledger_refuses_a_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(FednodeError):
        build_web3_ledger("http://127.0.0.1:1", str(tmp_path / "d.json"), str(tmp_path / "k"))
