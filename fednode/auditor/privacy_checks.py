"""Auditor: re-derives each edge's privacy spend from the task's mechanism and its updates (pure).

The contract only sums what edges declare. For a task with DP noise (one fixed
``noise_multiplier``, or sites that calibrate their own, ``noise_calibration="per_site"``), the
mechanism behind every update is fixed by the spec and the update's ``num_examples``
(``fednode.privacy.round_mechanism`` of ``site_privacy_spec``). So the auditor recomputes, after
each of an edge's updates in ledger order, the epsilon its updates so far cost under the task's
accountant, and flags an edge whose declared sum is lower (``privacy_underdeclared``). What it
cannot see is whether a device really added the noise; that stays the device's word.

Edge-cohort tasks (``spec.edge_cohort``): an edge sums N devices' deltas into one update
whose ``num_examples`` is the members' summed rows and whose ``epsilon_micro`` is the largest
of the members' own declared increments. The members' data are disjoint (parallel
composition), and every member's increment is at most that largest one, so the edge's on-chain
sum bounds every member's composed spend; that is what the edge must declare. The auditor checks:

- ``dp_unit="update"``: a member's mechanism (one release of its clipped, noised delta) does
  not depend on its rows, and increments shrink as a member's releases compose (epsilon is
  concave in the number of compositions), so whichever members took part, an edge's declared
  sum after ``k`` cohort updates is at least the epsilon of ``k`` releases: the same
  recomputation as for a site, exact.
- ``dp_unit="example"``: a member's DP-SGD mechanism depends on its own rows, which the chain
  does not carry (only their sum). The auditor checks a floor every honest edge meets: after
  each cohort update the declared sum is at least the one-round cost of that update's largest
  member, whose rows ``n`` lie in ``[ceil(N / size), N]`` (``N`` the update's rows, ``size`` the
  cohort size): with a fixed multiplier, at least the cost of sampling rate
  ``min(1, batch / N)`` for ``local_epochs * ceil(ceil(N / size) / batch)`` steps (the cost
  grows with both); with per-site calibration, at least ``target / rounds`` (each member's
  epsilon after ``rounds`` rounds is the target, and concave in the rounds). That floor does
  not grow with later updates: an exact check needs each member's rows and a stable member
  pseudonym per cohort update on chain (the findings' detail says it is a floor).

Tolerance: the declared sum may be below the recomputed epsilon by at most
``max(k, UNDERDECLARE_REL * epsilon)`` micro-epsilons after ``k`` updates: one micro-epsilon per
update for the rounding, and a relative share for the noise bisection (a machine whose last
floating-point bits differ can land one bisection step apart).
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Sequence

from fednode.auditor.checks import Finding, aggregated_in
from fednode.privacy import (
    DpMechanism,
    calibrated_epsilon_target,
    composed_epsilon,
    epsilon_spent,
    round_mechanism,
    site_privacy_spec,
)
from fednode.types import EPSILON_SCALE, GlobalModelRecord, LedgerUpdate, TaskSpec

__all__ = ["UNDERDECLARE_REL", "check_privacy_declarations", "cohort_floor", "required_epsilon"]

UNDERDECLARE_REL = 2e-3
"""Relative slack of the declared sum (twice ``noise_for_epsilon``'s bisection tolerance)."""



def check_privacy_declarations(
    spec: TaskSpec, records: Sequence[GlobalModelRecord], updates: Sequence[LedgerUpdate]
) -> list[Finding]:
    """Each edge declared at least the epsilon its updates cost under the task's mechanism.

    Tasks without DP noise are not checked. The first update after which an edge's declared
    sum falls short is at fault; the finding taints the version that aggregated it.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, rounds=2, clip_norm=1.0,
      ...                 epsilon_budget=1.0, noise_calibration="per_site")
      >>> u = LedgerUpdate(1, 1, 0, "0xE", b"", 40, 0, b"", 1, b"")
      >>> [f.kind for f in check_privacy_declarations(spec, [], [u])]
      ['privacy_underdeclared']
    """
    if not (spec.per_site_noise or spec.noise_multiplier > 0):
        return []
    version_of = aggregated_in(records)
    rows: dict[str, list[int]] = defaultdict(list)
    declared: dict[str, int] = defaultdict(int)
    flagged: set[str] = set()
    findings = []
    for update in sorted(updates, key=lambda u: u.update_id):
        rows[update.edge].append(update.num_examples)
        declared[update.edge] += update.epsilon_micro
        required = required_epsilon(spec, rows[update.edge]) * EPSILON_SCALE
        slack = max(len(rows[update.edge]), UNDERDECLARE_REL * required)
        if update.edge not in flagged and declared[update.edge] < math.floor(required - slack):
            flagged.add(update.edge)
            findings.append(Finding(
                "privacy_underdeclared", version_of.get(update.update_id),
                f"update {update.update_id} from {update.edge}",
                f"edge {update.edge} declared epsilon {declared[update.edge] / EPSILON_SCALE:g} "
                f"for {len(rows[update.edge])} update(s); the task's mechanism "
                f"({spec.accountant}) costs {_what(spec)} {required / EPSILON_SCALE:.6g}",
            ))
    return findings


def required_epsilon(spec: TaskSpec, rows: Sequence[int]) -> float:
    """What an edge must have declared in total after updates of these ``num_examples``.

    A site's (or an update-level cohort's) composed epsilon; for an example-level cohort, the
    floor of the module docstring.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, clip_norm=1.0,
      ...                 noise_multiplier=4.0)
      >>> required_epsilon(spec, [10, 12]) == epsilon_spent(2.0, 1.0, 2, delta=1e-5)
      True
    """
    if _example_cohort(spec):
        return max((cohort_floor(spec, n) for n in rows), default=0.0)
    return composed_epsilon([_mechanism(spec, n) for n in rows], delta=spec.delta,
                            accountant=spec.accountant)


def cohort_floor(spec: TaskSpec, num_examples: int) -> float:
    """The least one round of an example-level cohort update of ``num_examples`` rows costs
    its largest member (module docstring).

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, batch_size=10,
      ...                 local_epochs=2, clip_norm=1.0, noise_multiplier=1.0,
      ...                 dp_unit="example", edge_cohort={"size": 4})
      >>> cohort_floor(spec, 100) == epsilon_spent(1.0, 0.1, 2 * 3, delta=1e-5)
      True
    """
    if spec.per_site_noise:
        return calibrated_epsilon_target(spec) / spec.rounds
    return _fixed_noise_floor(spec, max(1, num_examples))


def _fixed_noise_floor(spec: TaskSpec, num_examples: int) -> float:
    members = min(_cohort_size(spec) or num_examples, num_examples)  # each has >= 1 row
    largest_member = -(-num_examples // members)
    rate = min(1.0, spec.batch_size / num_examples)
    steps = spec.local_epochs * -(-largest_member // spec.batch_size)
    return epsilon_spent(spec.noise_multiplier, rate, steps, delta=spec.delta,
                         accountant=spec.accountant)


def _cohort_size(spec: TaskSpec) -> int | None:
    """The cohort size the spec names (checked by ``EdgeCohort``), or None without cohorts."""
    return None if spec.edge_cohort is None else spec.edge_cohort.size


def _example_cohort(spec: TaskSpec) -> bool:
    return spec.edge_cohort is not None and spec.dp_unit == "example"


def _what(spec: TaskSpec) -> str:
    if _example_cohort(spec):
        return ("at least (the chain carries no cohort member's rows, so this is the largest "
                "member's one-round floor)")
    return "at least"


@functools.lru_cache(maxsize=4096)
def _site_mechanism(spec_json: bytes, num_examples: int) -> DpMechanism:
    spec = TaskSpec.from_json(spec_json)
    return round_mechanism(site_privacy_spec(spec, num_examples), num_examples)


def _mechanism(spec: TaskSpec, num_examples: int) -> tuple[float, float, int]:
    return tuple(_site_mechanism(spec.to_json(), max(1, num_examples)))  # type: ignore[return-value]
