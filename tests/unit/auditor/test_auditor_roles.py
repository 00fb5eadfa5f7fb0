"""Auditor: signer roles are checked at the block that included each update and commit."""

from __future__ import annotations

import pytest
from auditor_records import AGGREGATOR, SPEC, run_scenario, with_record, with_update

from fednode.auditor.checks import Authority, check_signers
from fednode.auditor.replay import audit_records, ledger_authority, verify_task
from fednode.auditor.roles import role_history
from fednode.chain.constants import AGGREGATOR_ROLE, EDGE_ROLE
from fednode.chain.records import ProposalAction
from fednode.chain.roles import REGISTERED_EDGE, RoleChange
from fednode.errors import FednodeValueError
from fednode.types import LedgerUpdate

STRANGER = "0x" + "5A" * 20


def _forged(report) -> list:
    found = [f for v in report.verdicts for f in v.findings] + list(report.findings)
    return [f for f in found if f.kind == "forged_signer"]


def _head_authority(ledger) -> Authority:
    return Authority(has_role=ledger.has_role, edges=frozenset(ledger.edges()))


def test_edge_removed_by_vote_after_submitting_still_verifies():
    # Arrange: edge 3 submits to v1, then the consortium votes it out
    scenario = run_scenario()
    ledger = scenario.ledger
    ledger.end_bootstrap()
    e1, e2, e3 = scenario.edges
    proposal = ledger.as_sender(e1).propose_member(ProposalAction.REMOVE, EDGE_ROLE, e3)
    ledger.as_sender(e2).vote(proposal)
    # Act
    report = verify_task(ledger, scenario.task_id)
    at_head = audit_records(scenario.task_id, SPEC, scenario.records, scenario.updates,
                            authority=_head_authority(ledger))
    # Assert
    assert not ledger.has_role(EDGE_ROLE, e3) and e3 not in ledger.edges()
    assert report.ok, report.to_dict()
    assert [f.at_fault for f in _forged(at_head)] == [f"update 3 from {e3}"]


def test_aggregator_revoked_later_still_verifies():
    # Arrange
    scenario = run_scenario()
    scenario.ledger.revoke_role(AGGREGATOR_ROLE, AGGREGATOR)
    # Act
    report = verify_task(scenario.ledger, scenario.task_id)
    # Assert
    assert report.ok, report.to_dict()


def test_update_from_an_address_granted_the_role_only_later_is_flagged():
    # Arrange: update 2 claims a stranger as sender; the stranger joins after every update
    scenario = run_scenario()
    ledger = scenario.ledger
    ledger.register_edge(STRANGER, "0x" + "77" * 20, "late-joiner")
    joined = ledger._chain.block
    updates = with_update(scenario.updates, 2, edge=ledger.as_sender(STRANGER).sender)
    included = updates[1].block_number
    authority = ledger_authority(ledger)
    # Act
    report = audit_records(scenario.task_id, SPEC, scenario.records, updates,
                           authority=authority)
    at_head = audit_records(scenario.task_id, SPEC, scenario.records, updates,
                            authority=_head_authority(ledger))
    # Assert
    [finding] = _forged(report)
    stranger = updates[1].edge
    assert finding.version == 1 and finding.at_fault == f"update 2 from {stranger}"
    assert finding.detail == (
        f"signer {stranger} was not a registered edge and lacked EDGE_ROLE at block "
        f"{included}, the block that included it (EDGE_ROLE granted at block {joined})")
    assert included < joined
    assert _forged(at_head) == []  # the head-of-chain check would have missed it


def test_commit_by_an_aggregator_granted_only_later_is_flagged_with_its_block():
    # Arrange
    scenario = run_scenario()
    ledger = scenario.ledger
    late = ledger.as_sender("0x" + "66" * 20).sender
    ledger.grant_role(AGGREGATOR_ROLE, late)
    records = with_record(scenario.records, 1, aggregator=late)
    # Act
    report = audit_records(scenario.task_id, SPEC, records, scenario.updates,
                           authority=ledger_authority(ledger))
    # Assert
    [finding] = _forged(report)
    assert finding.at_fault == f"commit by {late}"
    assert f"lacked AGGREGATOR_ROLE at block {records[1].block_number}" in finding.detail
    assert f"AGGREGATOR_ROLE granted at block {ledger._chain.block}" in finding.detail
    assert {f.kind for f in report.verdicts[1].findings} == {"forged_signer", "quorum_violation"}


def test_history_agrees_with_the_ledgers_own_has_role_at_every_block():
    # Arrange
    scenario = run_scenario()
    ledger = scenario.ledger
    ledger.revoke_role(EDGE_ROLE, scenario.edges[0])
    history = role_history(ledger.role_changes())
    accounts = (*scenario.edges, AGGREGATOR, STRANGER)
    # Act / Assert
    for block in range(ledger._chain.block + 1):
        for role in (EDGE_ROLE, AGGREGATOR_ROLE, REGISTERED_EDGE):
            for account in accounts:
                assert history.held(role, account, block) == ledger.has_role_at(
                    role, account, block)


def test_role_changed_inside_the_block_is_judged_by_transaction_position():
    # Arrange: edge revoked by transaction 3 of block 10; its updates at positions 1 and 5
    edge = "0x" + "E1" * 20
    history = role_history([RoleChange(4, 0, 0, EDGE_ROLE, edge, True),
                            RoleChange(4, 0, 1, REGISTERED_EDGE, edge, True),
                            RoleChange(10, 3, 0, EDGE_ROLE, edge, False)])
    early = LedgerUpdate(1, 1, 0, edge, b"", 1, 0, b"", 10, b"\x01")
    late = LedgerUpdate(2, 1, 0, edge, b"", 1, 0, b"", 10, b"\x02")
    authority = Authority(history=history, tx_positions={b"\x01": 1, b"\x02": 5})
    # Act
    findings = check_signers([], [early, late], authority)
    # Assert
    assert [f.at_fault for f in findings] == [f"update 2 from {late.edge}"]
    assert "lacked EDGE_ROLE at block 10" in findings[0].detail
    assert "revoked at block 10" in findings[0].detail


def test_ledger_authority_reads_positions_only_for_ambiguous_blocks():
    # Arrange
    edge = "0x" + "E1" * 20

    class Ledger:
        asked: list[bytes] = []

        def role_changes(self):
            return [RoleChange(4, 0, 0, EDGE_ROLE, edge, True),
                    RoleChange(10, 3, 0, EDGE_ROLE, edge, False)]

        def transaction_index(self, tx_hash):
            self.asked.append(tx_hash)
            return 1

    signed = [(EDGE_ROLE, edge, 10, b"\x01"), (EDGE_ROLE, edge, 7, b"\x02")]
    # Act
    authority = ledger_authority(Ledger(), signed=signed)
    # Assert
    assert Ledger.asked == [b"\x01"] and authority.tx_positions == {b"\x01": 1}
    assert authority.holds(EDGE_ROLE, edge, 10, b"\x01")


def test_role_history_refuses_malformed_changes():
    with pytest.raises(FednodeValueError, match="negative"):
        role_history([RoleChange(-1, 0, 0, EDGE_ROLE, "0x" + "11" * 20, True)])
    with pytest.raises(FednodeValueError, match="not an address"):
        role_history([RoleChange(1, 0, 0, EDGE_ROLE, "nobody", True)])
