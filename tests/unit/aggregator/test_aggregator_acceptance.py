"""Aggregator: the per-site acceptance gate over signed evaluations."""

from __future__ import annotations

import pytest

from fednode.aggregator.acceptance import AcceptanceState, acceptance_gate, version_acceptance
from fednode.errors import TaskSpecError
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


# ---- the acceptance rule: a quorum of sites, or every site -------------------------------

def test_one_site_reporting_zero_cannot_veto_a_version_the_quorum_accepts():
    records = [_record(e, m) for e, m in (("a", 800_000), ("b", 750_000), ("c", 900_000))]
    records.append(_record("d", 0))
    result = version_acceptance(SPEC, 2, records, sites=("a", "b", "c", "d"))
    assert result.state == AcceptanceState.ACCEPTED
    assert (result.decision.needed, result.decision.failing_sites) == (3, ("d",))


def test_one_site_reporting_one_cannot_accept_a_version_alone():
    records = [_record("a", 1_000_000), _record("b", 100_000), _record("c", 200_000)]
    result = version_acceptance(SPEC, 2, records, sites=("a", "b", "c", "d"))
    assert result.state == AcceptanceState.REJECTED


def test_quorum_waits_until_enough_sites_passed():
    records = [_record("a", 800_000), _record("b", 100_000)]
    result = version_acceptance(SPEC, 2, records, sites=("a", "b", "c", "d"))
    assert (result.state, result.missing) == (AcceptanceState.PENDING, ("c", "d"))


def test_rule_all_gives_every_site_a_veto():
    spec = TaskSpec(name="t", data_schema="s", num_features=2, metric_floor=0.7,
                    acceptance_rule="all")
    records = [_record(e, 900_000) for e in "abc"] + [_record("d", 0)]
    assert version_acceptance(spec, 2, records, sites=tuple("abcd")).state == (
        AcceptanceState.REJECTED
    )


def test_a_higher_quorum_needs_more_sites():
    spec = TaskSpec(name="t", data_schema="s", num_features=2, metric_floor=0.7,
                    acceptance_quorum=0.75)
    records = [_record(e, 900_000) for e in "abc"] + [_record("d", 0)]
    result = version_acceptance(spec, 2, records, sites=tuple("abcd"))
    assert (result.state, result.decision.needed) == (AcceptanceState.REJECTED, 4)


@pytest.mark.parametrize(
    ("field", "value"),
    [("acceptance_rule", "median"), ("acceptance_quorum", 1.0), ("acceptance_quorum", 0.25),
     ("acceptance_quorum", True)],
)
def test_acceptance_rule_fields_are_validated(field, value):
    with pytest.raises(TaskSpecError, match=field):
        TaskSpec(name="t", data_schema="s", num_features=2, **{field: value})
