"""Aggregator: the task's per-site acceptance gate (``spec.metric_floor``), a pure function.

A version is promoted to "accepted" only if every site's (signed) evaluation of it reaches the
task's metric floor; a missing or non-finite evaluation fails the gate. How evaluations are
signed and put on chain is the ledger's business (``EvaluationLedger``, one evaluation per
edge and version); this decides on the values. ``version_acceptance`` derives a version's state
from its on-chain evaluations: ``pending`` while a required site has not reported and none
failed, ``rejected`` as soon as one reported below the floor (an edge cannot evaluate a version
twice, so that cannot change), else ``accepted``. The floor lives in the task spec (calldata), so
the state is derived here, off chain, by anyone holding the ledger.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fednode.types import EvaluationRecord, TaskSpec

__all__ = [
    "AcceptanceState",
    "GateDecision",
    "VersionAcceptance",
    "acceptance_gate",
    "version_acceptance",
]


class AcceptanceState(enum.Enum):
    """A version's standing at the per-site gate, derived from its evaluations."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


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


@dataclass(frozen=True)
class VersionAcceptance:
    """The gate applied to one version's on-chain evaluations.

    ``metrics`` maps each evaluating edge to its metric; ``missing`` lists required edges
    that have not evaluated yet (sorted).
    """

    version: int
    state: AcceptanceState
    decision: GateDecision
    metrics: Mapping[str, float]
    missing: tuple[str, ...]


def version_acceptance(
    spec: TaskSpec, version: int, evaluations: Iterable[EvaluationRecord], *, sites: Sequence[str]
) -> VersionAcceptance:
    """Pending, accepted or rejected: the gate over ``version``'s evaluations by ``sites``.

    Args:
      spec: the task (its ``metric_floor``).
      version: the global version judged; evaluations of other versions are ignored.
      evaluations: on-chain evaluations (``Ledger.read_evaluations``).
      sites: the edges that must evaluate (e.g. the registered edges); others still count.

    Example:
      >>> from fednode.types import EvaluationRecord
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, metric_floor=0.7)
      >>> a = EvaluationRecord(1, 1, 3, "0xA", 810_000, None, 40, 9)
      >>> version_acceptance(spec, 3, [a], sites=("0xA", "0xB")).state.value
      'pending'
    """
    metrics = {r.edge: r.metric for r in evaluations if r.version == version}
    missing = tuple(sorted(set(sites) - set(metrics)))
    decision = acceptance_gate(spec, metrics, sites=tuple(sites))
    if any(not _passes(value, spec.metric_floor) for value in metrics.values()):
        state = AcceptanceState.REJECTED
    elif missing or not metrics:
        state = AcceptanceState.PENDING
    else:
        state = AcceptanceState.ACCEPTED
    return VersionAcceptance(version, state, decision, metrics, missing)
