"""Auditor: withdrawal tracing and provenance traces on InMemoryLedger."""

from __future__ import annotations

import pytest
from auditor_records import run_scenario

from fednode.auditor.affected import find_affected, render_affected
from fednode.auditor.trace import render_trace, trace_digest
from fednode.errors import AuditError, FednodeValueError


@pytest.fixture(scope="module")
def scenario():
    return run_scenario()


def test_edge_only_in_v1_taints_v2_by_descent(scenario):
    # Act
    found = find_affected(scenario.ledger, scenario.edges[2])
    # Assert
    assert [(a.version, a.how, a.update_ids, a.inherited_from) for a in found] == [
        (1, "direct", (3,), 1), (2, "descent", (), 1)]
    assert "by descent from v1" in render_affected(scenario.edges[2], found)


def test_from_version_skips_earlier_contributions(scenario):
    # Act
    later = find_affected(scenario.ledger, scenario.edges[0], from_version=2)
    none = find_affected(scenario.ledger, scenario.edges[2], from_version=2)
    # Assert
    assert [(a.version, a.how) for a in later] == [(2, "direct")]
    assert none == []


def test_affected_refuses_a_non_address(scenario):
    with pytest.raises(FednodeValueError):
        find_affected(scenario.ledger, "edge-1")


def test_trace_lists_updates_privacy_and_sealers(scenario):
    # Arrange
    digest = scenario.records[2].digest
    # Act
    trace = trace_digest(scenario.ledger, digest, sealer_of=lambda n: f"0xSEAL{n % 2}")
    # Assert
    assert trace.version == 2
    assert [len(v.updates) for v in trace.lineage] == [0, 3, 2]
    assert trace.privacy_spent == {scenario.edges[0]: 1.0, scenario.edges[1]: 1.0,
                                   scenario.edges[2]: 0.5}
    assert trace.validators == ["0xSEAL0", "0xSEAL1"]
    assert trace.edges == list(scenario.edges)
    assert "sealed by 0xSEAL" in render_trace(trace)


def test_trace_of_unknown_digest_fails(scenario):
    with pytest.raises(AuditError):
        trace_digest(scenario.ledger, "0x" + "00" * 32)
