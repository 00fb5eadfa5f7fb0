"""Auditor: verify, trace, affected, provenance card and HTML report on real geth validators."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from auditor_chain import audited_chain_on

from fednode.auditor.card import build_card, sign_card
from fednode.auditor.card_check import check_card
from fednode.auditor.clique_anchor import Anchor
from fednode.auditor.genesis_anchor import genesis_anchor
from fednode.auditor.roles import role_history
from fednode.chain.connect import load_account, open_ledger
from fednode.chain.constants import EDGE_ROLE
from fednode.chain.records import ProposalAction
from fednode.chain.roles import REGISTERED_EDGE
from fednode.cli.main import main as fednode_main
from fednode.network.info import load_network
from tests.chainkit import wait_for_height

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
    v2 = trace["lineage"][-1]
    assert [v["acceptance"] for v in trace["lineage"]] == ["pending", "pending", "accepted"]
    assert {e["edge"]: e["metric"] for e in v2["evaluations"]} == {
        chain.edges["edge-1"]: 0.75, chain.edges["edge-2"]: 0.8125, chain.edges["edge-3"]: 0.9,
    }
    assert all(e["block_number"] > v2["block_number"] for e in v2["evaluations"])


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
    code, out = _cli(capsys, "audit", "check-card", str(card), "--expect-signer", auditor,
                     "--genesis", load_network(chain.network_dir).genesis,
                     "--deployment", str(chain.network_dir / "deployment.json"))
    # Assert
    assert made == 0 and code == 0, out
    assert "VERIFIED" in out and out.count("ok  ") == 8


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
    verdict = check_card(card)
    assert verdict.intact and verdict.status == "UNANCHORED"


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
    assert len(re.findall(r"src='data:image/png;base64,", page)) == 6
    assert "every version recomputed bit for bit" in page
    assert "learning curves per site (on-chain evaluations)" in page
    assert "<td>v2</td><td class=ok>accepted</td>" in page
    assert not re.search(r"(src|href)=['\"]https?:", page)


# --- roles at each block (issue 6) ---------------------------------------------------------


@pytest.fixture(scope="module")
def revoked_chain(geth_network, tmp_path_factory):
    """A second audited task whose edge-3 is voted out (EDGE_ROLE and registry) after its
    update was accepted: the bootstrap ended at deploy, so only a vote can remove it."""
    revoked = audited_chain_on(geth_network.dir, tmp_path_factory.mktemp("auditor-revoked"))
    voters = [open_ledger(revoked.network_dir, name) for name in ("edge-1", "edge-2", "edge-4")]
    proposal = voters[0].propose_member(ProposalAction.REMOVE, EDGE_ROLE, revoked.edges["edge-3"])
    for voter in voters[1:]:
        voter.vote(proposal)
    assert not voters[0].has_role(EDGE_ROLE, revoked.edges["edge-3"])
    return revoked


def test_role_history_agrees_with_historical_eth_call(revoked_chain):
    # Arrange
    ledger = open_ledger(revoked_chain.network_dir, "auditor")
    changes = ledger.role_changes()
    history = role_history(changes)
    blocks = sorted({c.block + d for c in changes for d in (-1, 0, 1)})
    pairs = {(c.role, c.account) for c in changes if c.role != REGISTERED_EDGE}
    # the block after the last change may not be sealed yet on the auditor's validator (node 0)
    wait_for_height(load_network(revoked_chain.network_dir).http_urls[0], blocks[-1])
    # Act
    mismatches = [(role, account, block) for role, account in pairs for block in blocks
                  if history.held(role, account, block)
                  != ledger.has_role_at(role, account, block)]
    # Assert
    assert mismatches == []
    assert any(not c.granted and c.role == EDGE_ROLE for c in changes)


def test_edge_revoked_after_its_update_still_verifies(revoked_chain, capsys):
    # Arrange
    ledger = open_ledger(revoked_chain.network_dir, "auditor")
    edge = revoked_chain.edges["edge-3"]
    [update] = [u for u in ledger.read_updates(revoked_chain.task_id) if u.edge == edge]
    # Act
    code, out = _cli(capsys, "audit", "verify", "--network-dir", str(revoked_chain.network_dir),
                     "--task", str(revoked_chain.task_id), "--json")
    # Assert
    assert code == 0 and json.loads(out)["ok"], out
    assert ledger.has_role_at(EDGE_ROLE, edge, update.block_number)
    assert not ledger.has_role(EDGE_ROLE, edge)


# --- trust anchor of provenance cards (issue 6) --------------------------------------------


@pytest.fixture(scope="module")
def card_file(chain, tmp_path_factory):
    path = tmp_path_factory.mktemp("anchored-card") / "card.json"
    assert fednode_main(["audit", "card", "--network-dir", str(chain.network_dir),
                         chain.digests[-1], "--out", str(path)]) == 0
    return path


def _genesis_path(chain) -> str:
    return load_network(chain.network_dir).genesis


def test_genesis_file_hashes_to_the_chains_block_zero(chain):
    # Arrange
    ledger = open_ledger(chain.network_dir, "auditor")
    genesis = json.loads(Path(_genesis_path(chain)).read_text())
    # Act
    anchor = genesis_anchor(genesis)
    # Assert
    assert anchor.block_hash == bytes(ledger.w3.eth.get_block(0)["hash"])
    assert set(anchor.signers) == set(load_network(chain.network_dir).signers)


def test_card_is_unanchored_without_an_anchor(card_file, capsys):
    # Act
    code, out = _cli(capsys, "audit", "check-card", str(card_file))
    # Assert
    assert code == 3 and "UNANCHORED: integrity only" in out
    assert out.count("ok  ") == 7 and "FAIL" not in out


def test_card_is_verified_against_the_genesis_and_a_trusted_hash(chain, card_file, capsys):
    # Arrange: the hash of the card's last header, as the auditor's own node serves it
    body = json.loads(card_file.read_text())["card"]
    last = max(int(n) for n in body["headers"])
    trusted = open_ledger(chain.network_dir, "auditor").w3.eth.get_block(last)["hash"]
    # Act
    deployment = str(chain.network_dir / "deployment.json")
    by_genesis = _cli(capsys, "audit", "check-card", str(card_file), "--genesis",
                      _genesis_path(chain), "--deployment", deployment, "--json")
    by_hash = _cli(capsys, "audit", "check-card", str(card_file), "--trusted-block-hash",
                   "0x" + bytes(trusted).hex(), "--deployment", deployment)
    hash_only = _cli(capsys, "audit", "check-card", str(card_file), "--trusted-block-hash",
                     "0x" + bytes(trusted).hex())
    # Assert
    verdict = json.loads(by_genesis[1])
    assert by_genesis[0] == 0 and verdict["status"] == "VERIFIED", by_genesis[1]
    assert body["header_chain"] and "0" in body["headers"]
    assert by_hash[0] == 0 and "VERIFIED" in by_hash[1] and "ok   anchor" in by_hash[1]
    assert hash_only[0] == 3 and "No trusted deployment was given" in hash_only[1]


def test_card_with_a_foreign_sealed_header_is_rejected_by_the_anchor(chain, card_file):
    # Arrange: someone reseals the last header (and fixes the signature) with a key of theirs
    from tests.unit.auditor.clique_chain import FOREIGN, seal

    card = json.loads(card_file.read_text())
    last = str(max(int(n) for n in card["card"]["headers"]))
    card["card"]["headers"][last] = seal(card["card"]["headers"][last], FOREIGN)
    card["card"]["signers"].append(FOREIGN.public_key.to_checksum_address())
    resigned = sign_card(card["card"], _some_account())
    anchor = Anchor(genesis=genesis_anchor(json.loads(Path(_genesis_path(chain)).read_text())))
    # Act
    unanchored, anchored = check_card(resigned), check_card(resigned, anchor=anchor)
    # Assert
    assert unanchored.status == "UNANCHORED"  # integrity alone cannot tell
    assert anchored.status == "REJECTED" and _failed(anchored) == {"anchor"}
    [check] = [c for c in anchored.checks if c.name == "anchor"]
    assert f"block {last}: sealed by {FOREIGN.public_key.to_checksum_address()}" in check.detail
