"""Auditor: re-derives each edge's privacy spend from the task's mechanism and its updates (pure).

The contract only sums what edges declare. For a task with DP noise (one fixed
``noise_multiplier``, or sites that calibrate their own, ``noise_calibration="per_site"``), the
mechanism behind every update is fixed by the spec and the update's ``num_examples``: its noise
multiplier (``site_privacy_spec``), sampling rate and steps (``dp_steps_per_round``). So the
auditor can recompute, after each of an edge's updates in ledger order, the epsilon its updates
so far cost under the task's accountant, and flag an edge whose declared sum is lower
(``privacy_underdeclared``). What it cannot see is whether a device really added the noise;
that stays the device's word. Edge-cohort tasks (``extra["edge_cohort"]``) are not re-derived:
a cohort update carries the members' summed ``num_examples``, while each member ran its own
mechanism on its own rows.

Tolerance: the declared sum may be below the recomputed epsilon by at most
``max(k, UNDERDECLARE_REL * epsilon)`` micro-epsilons after ``k`` updates: one micro-epsilon per
update for the rounding, and a relative share for the noise bisection (a machine whose last
floating-point bits differ can land one bisection step apart).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from fednode.auditor.checks import Finding, aggregated_in
from fednode.privacy import composed_epsilon, dp_steps_per_round, site_privacy_spec
from fednode.types import EPSILON_SCALE, GlobalModelRecord, LedgerUpdate, TaskSpec

__all__ = ["UNDERDECLARE_REL", "check_privacy_declarations"]

UNDERDECLARE_REL = 2e-3
"""Relative slack of the declared sum (twice ``noise_for_epsilon``'s bisection tolerance)."""


def check_privacy_declarations(
    spec: TaskSpec, records: Sequence[GlobalModelRecord], updates: Sequence[LedgerUpdate]
) -> list[Finding]:
    """Each edge declared at least the epsilon its updates cost under the task's mechanism.

    Tasks without DP noise and edge-cohort tasks are not checked. The first update after
    which an edge's declared sum falls short is at fault; the finding taints the version that
    aggregated it.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, rounds=2, clip_norm=1.0,
      ...                 epsilon_budget=1.0, extra={"noise_calibration": "per_site"})
      >>> u = LedgerUpdate(1, 1, 0, "0xE", b"", 40, 0, b"", 1, b"")
      >>> [f.kind for f in check_privacy_declarations(spec, [], [u])]
      ['privacy_underdeclared']
    """
    if not (spec.per_site_noise or spec.noise_multiplier > 0) or "edge_cohort" in spec.extra:
        return []
    version_of = aggregated_in(records)
    mechanisms: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    declared: dict[str, int] = defaultdict(int)
    flagged: set[str] = set()
    findings = []
    for update in sorted(updates, key=lambda u: u.update_id):
        mechanisms[update.edge].append(_mechanism(spec, update.num_examples))
        declared[update.edge] += update.epsilon_micro
        required = composed_epsilon(mechanisms[update.edge], delta=spec.delta,
                                    accountant=spec.accountant) * EPSILON_SCALE
        slack = max(len(mechanisms[update.edge]), UNDERDECLARE_REL * required)
        if update.edge not in flagged and declared[update.edge] < math.floor(required - slack):
            flagged.add(update.edge)
            findings.append(Finding(
                "privacy_underdeclared", version_of.get(update.update_id),
                f"update {update.update_id} from {update.edge}",
                f"edge {update.edge} declared epsilon {declared[update.edge] / EPSILON_SCALE:g} "
                f"for {len(mechanisms[update.edge])} update(s); the task's mechanism "
                f"({spec.accountant}) costs {required / EPSILON_SCALE:.6g}",
            ))
    return findings


def _mechanism(spec: TaskSpec, num_examples: int) -> tuple[float, float, int]:
    site = site_privacy_spec(spec, max(1, num_examples))
    sampling, steps = dp_steps_per_round(site, max(1, num_examples))
    return site.noise_multiplier, sampling, steps
