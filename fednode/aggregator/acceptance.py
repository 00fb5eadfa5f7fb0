"""Aggregator: the task's acceptance gate over the sites' evaluations, a pure function.

A site passes when its (signed) evaluation of a version reaches ``spec.metric_floor``; a
missing or non-finite evaluation does not pass. The task's ``acceptance_rule`` says how many
of the n sites must pass (:func:`sites_needed`):

- "quorum" (the default): more than ``acceptance_quorum`` * n, i.e. ``floor(q * n) + 1``; with
  q = 0.5 and 4 sites, 3. No single site's report accepts or vetoes a version once n >= 3 (one
  edge reporting metric 0 cannot block a model the others accept).
- "all": every site (each site holds a veto).

How evaluations are signed and put on chain is the ledger's business (``EvaluationLedger``: one
evaluation per edge and version, only by edges that contributed to the task, never of version
0); this decides on the values. ``version_acceptance`` derives a version's state from its
on-chain evaluations: ``accepted`` once enough sites passed, ``rejected`` once so many failed
that the rule can no longer be met (an edge cannot evaluate a version twice, so neither can
change), else ``pending``. The rule lives in the task spec (calldata), so the state is derived
here, off chain, by anyone holding the ledger.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fednode.types import EvaluationRecord, GlobalModelRecord, LedgerUpdate, TaskSpec

__all__ = [
    "AcceptanceState",
    "GateDecision",
    "VersionAcceptance",
    "acceptance_gate",
    "contributors",
    "describe_rule",
    "sites_needed",
    "version_acceptance",
]


class AcceptanceState(enum.Enum):
    """A version's standing at the per-site gate, derived from its evaluations."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True)
class GateDecision:
    """Whether a version is accepted, the sites below the floor (sorted), and how many of
    ``sites`` had to pass under ``rule``."""

    accepted: bool
    failing_sites: tuple[str, ...]
    floor: float
    needed: int = 0
    sites: int = 0
    rule: str = "quorum"


def sites_needed(spec: TaskSpec, sites: int) -> int:
    """How many of ``sites`` sites must reach the floor under the task's acceptance rule.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2)
      >>> [sites_needed(spec, n) for n in (1, 2, 3, 4, 5)]
      [1, 2, 2, 3, 3]
    """
    if spec.acceptance_rule == "all":
        return sites
    return math.floor(spec.acceptance_quorum * sites) + 1


def describe_rule(spec: TaskSpec) -> str:
    """The task's acceptance rule in words, for reports.

    Example:
      >>> describe_rule(TaskSpec(name="t", data_schema="s", num_features=2, metric_floor=0.7))
      'more than 50% of the sites reach 0.7'
    """
    if spec.acceptance_rule == "all":
        return f"every site reaches {spec.metric_floor:g}"
    return f"more than {spec.acceptance_quorum:.0%} of the sites reach {spec.metric_floor:g}"


def contributors(
    records: Iterable[GlobalModelRecord], updates: Iterable[LedgerUpdate]
) -> tuple[str, ...]:
    """The edges with an update aggregated into a final version, in order of first update:
    the edges that may evaluate the task (``EvaluationLedger``) and that the gate counts.

    Example:
      >>> contributors([], [])
      ()
    """
    aggregated = {i for record in records for i in record.update_ids}
    ordered = sorted(updates, key=lambda u: u.update_id)
    return tuple(dict.fromkeys(u.edge for u in ordered if u.update_id in aggregated))


def acceptance_gate(
    spec: TaskSpec, evaluations: Mapping[str, float], *, sites: tuple[str, ...] = ()
) -> GateDecision:
    """Accepts a version iff enough sites (:func:`sites_needed`) have a finite metric
    >= ``spec.metric_floor``.

    Args:
      spec: the task (its ``metric_floor``, ``acceptance_rule`` and ``acceptance_quorum``).
      evaluations: site -> metric of this version on that site's test data.
      sites: sites that must evaluate (missing ones do not pass); default: those given.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, metric_floor=0.7)
      >>> acceptance_gate(spec, {"a": 0.8, "b": 0.9, "c": 0.75, "d": 0.0}).accepted
      True
      >>> decision = acceptance_gate(spec, {"a": 0.8, "b": 0.65})
      >>> decision.accepted, decision.failing_sites, decision.needed
      (False, ('b',), 2)
    """
    everyone = set(sites) | set(evaluations)
    failing = sorted(
        site for site in everyone if not _passes(evaluations.get(site), spec.metric_floor)
    )
    needed = sites_needed(spec, len(everyone))
    accepted = bool(everyone) and len(everyone) - len(failing) >= needed
    return GateDecision(accepted, tuple(failing), spec.metric_floor, needed, len(everyone),
                        spec.acceptance_rule)


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

    Accepted once :func:`sites_needed` sites passed; rejected once more than n - needed
    reported below the floor (the rule can no longer be met); pending otherwise.

    Args:
      spec: the task (its ``metric_floor`` and acceptance rule).
      version: the global version judged; evaluations of other versions are ignored.
      evaluations: on-chain evaluations (``Ledger.read_evaluations``).
      sites: the edges that must evaluate (e.g. those that contributed); others still count.

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
    reported_failing = sum(not _passes(value, spec.metric_floor) for value in metrics.values())
    if decision.accepted:
        state = AcceptanceState.ACCEPTED
    elif decision.sites and reported_failing > decision.sites - decision.needed:
        state = AcceptanceState.REJECTED
    else:
        state = AcceptanceState.PENDING
    return VersionAcceptance(version, state, decision, metrics, missing)
