"""Auditor: tamper detection of the pure replay and checks, on InMemoryLedger records."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from auditor_records import SPEC, run_scenario, with_record, with_update

from fednode.auditor.checks import Authority, CommitRecord
from fednode.auditor.replay import audit_records, ledger_commits, verify_task
from fednode.chain.constants import EDGE_ROLE
from fednode.codec import decode_params, digest_bytes, encode_params


@pytest.fixture(scope="module")
def scenario():
    return run_scenario()


def _kinds(report) -> set[str]:
    found = [f for v in report.verdicts for f in v.findings] + list(report.findings)
    return {f.kind for f in found}


def test_untampered_ledger_verifies_with_role_checks(scenario):
    # Act
    report = verify_task(scenario.ledger, scenario.task_id)
    # Assert
    assert report.ok
    assert [v.version for v in report.verdicts] == [0, 1, 2]
    assert report.to_dict()["findings"] == []


def test_tampered_update_payload_names_the_update(scenario):
    # Arrange
    target = scenario.updates[1]
    forged = encode_params({k: v + 1 for k, v in decode_params(target.payload).items()})
    updates = with_update(scenario.updates, target.update_id, payload=forged)
    # Act
    report = audit_records(1, SPEC, scenario.records, updates)
    # Assert
    bad = report.verdicts[1]
    assert not bad.match and not report.ok
    assert bad.at_fault.startswith(f"tampered_payload: update {target.update_id}")


def test_tampered_update_with_matching_digest_changes_the_model(scenario):
    # Arrange: payload and digest both replaced, so only the recomputation can tell
    target = scenario.updates[0]
    forged = encode_params({k: v * 2 for k, v in decode_params(target.payload).items()})
    updates = with_update(scenario.updates, target.update_id, payload=forged,
                          digest=digest_bytes(forged))
    # Act
    report = audit_records(1, SPEC, scenario.records, updates)
    # Assert
    verdict = report.verdicts[1]
    assert not verdict.match
    assert verdict.first_differing_tensor in {"b", "w"}
    assert verdict.at_fault == f"commit by {scenario.records[1].aggregator}"


def test_tampered_committed_payload_is_reported(scenario):
    # Arrange
    forged = encode_params({"w": np.zeros(2, np.float32), "b": np.zeros(1, np.float32)})
    records = with_record(scenario.records, 2, payload=forged)
    # Act
    report = audit_records(1, SPEC, records, scenario.updates)
    # Assert
    assert report.verdicts[2].detail.startswith("tampered_payload")
    assert report.verdicts[1].ok


def test_wrong_update_list_is_found(scenario):
    # Arrange: v2 claims v1's first update too (already aggregated, stale order)
    records = with_record(scenario.records, 2, update_ids=(1, 4, 5))
    # Act
    report = audit_records(1, SPEC, records, scenario.updates)
    # Assert
    problems = [f.detail for f in report.verdicts[2].findings if f.kind == "wrong_update_list"]
    assert any("already aggregated in v1" in p for p in problems)
    assert not report.verdicts[2].ok


def test_unknown_update_in_list_is_found(scenario):
    # Arrange
    records = with_record(scenario.records, 1, update_ids=(1, 2, 99))
    # Act
    report = audit_records(1, SPEC, records, scenario.updates)
    # Assert
    assert "wrong_update_list" in _kinds(report)
    assert "99" in report.verdicts[1].at_fault


def test_update_from_unregistered_edge_is_a_forged_signer(scenario):
    # Arrange
    stranger = "0x" + "5a" * 20
    updates = with_update(scenario.updates, 2, edge=stranger)
    authority = Authority(has_role=scenario.ledger.has_role, edges=frozenset(scenario.edges))
    # Act
    report = audit_records(1, SPEC, scenario.records, updates, authority=authority)
    # Assert
    [finding] = [f for f in report.verdicts[1].findings if f.kind == "forged_signer"]
    assert "is not a registered edge and lacks EDGE_ROLE" in finding.detail
    assert finding.at_fault == f"update 2 from {stranger}"


def test_revoked_edge_role_is_reported(scenario):
    # Arrange
    edge = scenario.edges[0]

    def has_role(role: bytes, account: str) -> bool:
        revoked = role == EDGE_ROLE and account == edge
        return not revoked and scenario.ledger.has_role(role, account)

    # Act
    report = audit_records(1, SPEC, scenario.records, scenario.updates,
                           authority=Authority(has_role=has_role))
    # Assert
    flagged = {f.version for f in report.verdicts[1].findings + report.verdicts[2].findings}
    assert flagged == {1, 2}


def test_commit_by_account_without_aggregator_role_is_a_forged_signer(scenario):
    # Arrange
    records = with_record(scenario.records, 1, aggregator="0x" + "66" * 20)
    authority = Authority(has_role=scenario.ledger.has_role)
    # Act
    report = audit_records(1, SPEC, records, scenario.updates, authority=authority)
    # Assert
    assert {f.kind for f in report.verdicts[1].findings} == {"forged_signer", "quorum_violation"}


def test_budget_overrun_names_the_update_that_crossed_it(scenario):
    # Arrange: the contract refuses overruns, so the records are altered by hand:
    # 0.8 epsilon per update against a budget of 1.5, each edge's second update overruns
    updates = [replace(u, epsilon_micro=800_000) for u in scenario.updates]
    spec = replace(SPEC, epsilon_budget=1.5)
    # Act
    report = audit_records(1, spec, scenario.records, updates)
    # Assert
    overruns = [f for f in report.verdicts[2].findings if f.kind == "budget_overrun"]
    assert [f.at_fault.split()[1] for f in overruns] == ["4", "5"]
    assert report.verdicts[1].ok


def test_quorum_violation_with_single_commit(scenario):
    # Act: the same records, audited against a 2-of-n quorum
    report = audit_records(1, replace(SPEC, aggregator_quorum=2), scenario.records,
                           scenario.updates)
    # Assert
    assert {f.kind for f in report.verdicts[1].findings} == {"quorum_violation"}


def test_quorum_met_by_two_agreeing_commits_but_not_by_a_dissenting_one(scenario):
    # Arrange
    spec = replace(SPEC, aggregator_quorum=2)
    v1, v2 = scenario.records[1], scenario.records[2]
    commits = [CommitRecord(1, "0xA", v1.digest), CommitRecord(1, "0xB", v1.digest),
               CommitRecord(2, "0xA", v2.digest), CommitRecord(2, "0xB", b"\x00" * 32)]
    # Act
    report = audit_records(1, spec, scenario.records, scenario.updates, commits=commits)
    # Assert
    assert report.verdicts[1].ok
    quorum, conflict = report.verdicts[2].findings
    assert (quorum.kind, conflict.kind) == ("quorum_violation", "conflicting_commit")
    assert conflict.at_fault.startswith("commit by 0xB")


def test_ledger_commits_uses_read_commits_when_the_ledger_has_it(scenario):
    # Arrange
    class WithCommits:
        def read_commits(self, task_id):
            return [{"version": 1, "aggregator": "0xA", "digest": b"d"}]

    # Act / Assert
    assert ledger_commits(WithCommits(), 1) == [CommitRecord(1, "0xA", b"d")]
    assert ledger_commits(object(), 1) is None
    assert {(c.version, c.digest) for c in ledger_commits(scenario.ledger, 1)} == {
        (r.version, r.digest) for r in scenario.records[1:]}
