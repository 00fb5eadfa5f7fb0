"""Aggregator: the task's per-site acceptance gate (``spec.metric_floor``), a pure function.

A version is promoted to "accepted" only if every site's (signed) evaluation of it reaches the
task's metric floor; a missing or non-finite evaluation fails the gate. How evaluations are
signed and put on chain is the ledger's business; this decides on the values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from fednode.types import TaskSpec

__all__ = ["GateDecision", "acceptance_gate"]


@dataclass(frozen=True)
class GateDecision:
    """Whether a version is accepted, and the sites below the floor (sorted)."""

    accepted: bool
    failing_sites: tuple[str, ...]
    floor: float


def acceptance_gate(
    spec: TaskSpec, evaluations: Mapping[str, float], *, sites: tuple[str, ...] = ()
) -> GateDecision:
    """Accepts a version iff every site's metric is finite and >= ``spec.metric_floor``.

    Args:
      spec: the task (its ``metric_floor``).
      evaluations: site -> metric of this version on that site's test data.
      sites: sites that must have evaluated (missing ones fail); default: those given.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, metric_floor=0.7)
      >>> acceptance_gate(spec, {"a": 0.8, "b": 0.65})
      GateDecision(accepted=False, failing_sites=('b',), floor=0.7)
    """
    required = tuple(sites) or tuple(evaluations)
    failing = sorted(
        site for site in set(required) | set(evaluations)
        if not _passes(evaluations.get(site), spec.metric_floor)
    )
    return GateDecision(not failing and bool(required), tuple(failing), spec.metric_floor)


def _passes(value: float | None, floor: float) -> bool:
    return value is not None and math.isfinite(value) and value >= floor
