"""Chain: ``fednode member`` verbs for quorum, admin and cancellation, on the in-memory ledger."""

from __future__ import annotations

import json

import pytest

from fednode.chain import AGGREGATOR_ROLE, PUBLISHER_ROLE, InMemoryLedger
from fednode.cli import governance_cmd
from fednode.cli.main import main

ADMIN = "0x" + "aa" * 20
NEW_ADMIN = "0x" + "bb" * 20
EDGES = {f"edge-{i + 1}": "0x" + f"{10 + i:02x}" * 20 for i in range(3)}


@pytest.fixture
def ledger(monkeypatch) -> InMemoryLedger:
    admin = InMemoryLedger(ADMIN)
    admin.grant_role(PUBLISHER_ROLE, ADMIN)
    admin.grant_role(AGGREGATOR_ROLE, ADMIN)
    for i, edge in enumerate(EDGES.values()):
        admin.register_edge(edge, "0x" + f"{20 + i:02x}" * 20, f"edge-{i + 1}")
    admin.end_bootstrap()
    accounts = {**EDGES, "admin": ADMIN, "auditor": ADMIN}
    monkeypatch.setattr(governance_cmd, "_ledger", lambda a: admin.as_sender(accounts[a.account]))
    monkeypatch.setattr(governance_cmd, "_address", lambda _, target: target)
    return admin


def _member(capsys, *argv: str) -> str:
    assert main(["member", *argv]) == 0
    return capsys.readouterr().out


def test_member_verbs_change_quorum_and_admin_by_vote(ledger, capsys):
    # Act
    quorum = int(_member(capsys, "propose-quorum", "100", "--as", "edge-1"))
    _member(capsys, "vote", str(quorum), "--as", "edge-2")
    admin = int(_member(capsys, "propose-admin", NEW_ADMIN, "--as", "edge-1"))
    for voter in ("edge-2", "edge-3"):
        _member(capsys, "vote", str(admin), "--as", voter)
    listing = json.loads(_member(capsys, "list", "--json"))
    # Assert
    assert (listing["vote_quorum_percent"], listing["required_votes"]) == (100, 3)
    assert listing["admin"].lower() == NEW_ADMIN
    assert [(p["action"], p["state"]) for p in listing["proposals"]] == [
        ("set_quorum", "executed"), ("transfer_admin", "executed")]


def test_member_cancel_by_its_proposer_only(ledger, capsys):
    # Arrange
    pid = int(_member(capsys, "propose-admin-renounce", "--as", "edge-1"))
    # Act / Assert
    assert main(["member", "cancel", str(pid), "--as", "edge-2"]) != 0
    assert "ConsortiumNotProposer(proposalId=1" in capsys.readouterr().err
    assert "cancelled" in _member(capsys, "cancel", str(pid), "--as", "edge-1")
    assert ledger.proposal_state(pid).name == "CANCELLED"
    assert ledger.default_admin().lower() == ADMIN
