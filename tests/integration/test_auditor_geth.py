"""Auditor: verify, trace, affected, provenance card and HTML report on real geth validators."""

from __future__ import annotations

import json
import re

import pytest
from auditor_chain import audited_chain_on

from fednode.auditor.card import build_card, sign_card
from fednode.auditor.card_check import check_card
from fednode.chain.connect import load_account, open_ledger
from fednode.cli.main import main as fednode_main
from fednode.network.info import load_network

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chain(geth_network, tmp_path_factory):
    return audited_chain_on(geth_network.dir, tmp_path_factory.mktemp("auditor"))


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = fednode_main(list(argv))
    return code, capsys.readouterr().out


def test_verify_checks_roles_and_every_version(chain, capsys):
    # Act
    code, out = _cli(capsys, "audit", "verify", "--network-dir", str(chain.network_dir),
                     "--task", str(chain.task_id), "--json")
    # Assert
    report = json.loads(out)
    assert code == 0 and report["ok"]
    assert [v["version"] for v in report["versions"]] == [0, 1, 2]


def test_trace_names_the_sealing_validators(chain, capsys):
    # Arrange
    signers = set(load_network(chain.network_dir).signers)
    # Act
    code, out = _cli(capsys, "audit", "trace", "--network-dir", str(chain.network_dir),
                     chain.digests[-1], "--json")
    # Assert
    trace = json.loads(out)
    sealers = {u["sealer"] for v in trace["lineage"] for u in v["updates"]}
    assert code == 0 and sealers and sealers <= signers
    assert trace["privacy_spent"][chain.edges["edge-3"]] == 0.5


def test_affected_says_direct_and_by_descent(chain, capsys):
    # Act
    code, out = _cli(capsys, "audit", "affected", "--network-dir", str(chain.network_dir),
                     "--edge", chain.edges["edge-3"], "--json")
    # Assert
    found = [(a["version"], a["how"]) for a in json.loads(out) if a["task_id"] == chain.task_id]
    assert code == 0 and found == [(1, "direct"), (2, "descent")]


def test_card_roundtrip_through_the_cli_verifies_offline(chain, capsys, tmp_path):
    # Arrange
    card = tmp_path / "card.json"
    auditor = load_account(load_network(chain.network_dir), "auditor").address
    # Act
    made, _ = _cli(capsys, "audit", "card", "--network-dir", str(chain.network_dir),
                   chain.digests[-1], "--out", str(card))
    code, out = _cli(capsys, "audit", "check-card", str(card), "--expect-signer", auditor)
    # Assert
    assert made == 0 and code == 0, out
    assert "VERIFIED" in out and out.count("ok  ") == 6


@pytest.fixture(scope="module")
def card(chain):
    ledger = open_ledger(chain.network_dir, "auditor")
    body = build_card(ledger, chain.digests[-1])
    return sign_card(body, load_account(load_network(chain.network_dir), "auditor"))


def _tampered(card: dict, path: list, value) -> dict:
    copy = json.loads(json.dumps(card))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value(target[path[-1]]) if callable(value) else value
    return copy


def _failed(verdict) -> set[str]:
    return {c.name for c in verdict.checks if not c.ok}


def test_pristine_card_passes_every_check(card):
    assert check_card(card).ok


@pytest.mark.parametrize(("path", "value", "failing"), [
    (["card", "updates", 0, "payload"], lambda p: p[:-2] + ("00" if p[-2:] != "00" else "01"),
     {"signature", "updates", "recomputation"}),
    (["card", "updates", 0, "epsilon_micro"], 0, {"signature", "updates"}),
    (["card", "model", "digest"], "0x" + "11" * 32, {"signature", "recomputation"}),
    (["card", "signers"], ["0x" + "22" * 20], {"signature", "headers"}),
])
def test_tampered_card_is_rejected(card, path, value, failing):
    # Act
    verdict = check_card(_tampered(card, path, value))
    # Assert
    assert not verdict.ok and _failed(verdict) == failing


def test_tampered_card_resigned_by_someone_else_still_fails_the_proofs(card):
    # Arrange: an edge forges an update and signs the card itself
    forged = _tampered(card, ["card", "updates", 1, "edge"], "0x" + "33" * 20)
    resigned = sign_card(forged["card"], _some_account())
    # Act
    verdict = check_card(resigned)
    # Assert
    assert _failed(verdict) == {"updates"}
    assert verdict.signer != card["signature"]["signer"]


def _some_account():
    from eth_account import Account

    return Account.from_key("0x" + "44" * 32)


def test_html_report_is_self_contained_with_figures(chain, capsys, tmp_path):
    # Arrange
    out = tmp_path / "report.html"
    # Act
    code, _ = _cli(capsys, "audit", "report", "--network-dir", str(chain.network_dir),
                   "--task", str(chain.task_id), "--html", str(out))
    # Assert
    page = out.read_text()
    assert code == 0
    assert len(re.findall(r"src='data:image/png;base64,", page)) == 5
    assert "every version recomputed bit for bit" in page
    assert not re.search(r"(src|href)=['\"]https?:", page)
