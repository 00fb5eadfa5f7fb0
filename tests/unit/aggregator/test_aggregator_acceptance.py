"""Aggregator: the per-site acceptance gate over signed evaluations."""

from __future__ import annotations

from fednode.aggregator.acceptance import AcceptanceState, acceptance_gate, version_acceptance
from fednode.types import EvaluationRecord, TaskSpec

SPEC = TaskSpec(name="t", data_schema="s", num_features=2, metric_floor=0.7)


def test_every_site_at_or_above_the_floor_is_accepted() -> None:
    assert acceptance_gate(SPEC, {"a": 0.7, "b": 0.9}).accepted


def test_one_site_below_the_floor_blocks_promotion() -> None:
    decision = acceptance_gate(SPEC, {"a": 0.9, "b": 0.69, "c": float("nan")})
    assert not decision.accepted
    assert decision.failing_sites == ("b", "c")


def test_missing_evaluations_fail() -> None:
    decision = acceptance_gate(SPEC, {"a": 0.9}, sites=("a", "b"))
    assert decision.failing_sites == ("b",)
    assert not acceptance_gate(SPEC, {}).accepted


# ---- version_acceptance over on-chain evaluation records ---------------------------------

def _record(edge: str, metric_micro: int, version: int = 2) -> EvaluationRecord:
    return EvaluationRecord(1, 7, version, edge, metric_micro, None, 10, 100)


def test_version_is_pending_until_every_site_reported():
    result = version_acceptance(SPEC, 2, [_record("a", 900_000)], sites=("a", "b"))
    assert (result.state, result.missing) == (AcceptanceState.PENDING, ("b",))
    assert not result.decision.accepted


def test_version_is_accepted_when_every_site_reaches_the_floor():
    records = [_record("a", 700_000), _record("b", 950_000), _record("b", 100_000, version=1)]
    result = version_acceptance(SPEC, 2, records, sites=("a", "b"))
    assert result.state == AcceptanceState.ACCEPTED
    assert result.metrics == {"a": 0.7, "b": 0.95}


def test_version_is_rejected_as_soon_as_one_site_is_below_the_floor():
    result = version_acceptance(SPEC, 2, [_record("a", 699_999)], sites=("a", "b"))
    assert result.state == AcceptanceState.REJECTED
    assert result.decision.failing_sites == ("a", "b")


def test_version_without_evaluations_or_sites_is_pending():
    assert version_acceptance(SPEC, 2, [], sites=()).state == AcceptanceState.PENDING
