"""Aggregator: the per-site acceptance gate over signed evaluations."""

from __future__ import annotations

from fednode.aggregator.acceptance import acceptance_gate
from fednode.types import TaskSpec

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
