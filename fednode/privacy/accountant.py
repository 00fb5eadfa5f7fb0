"""Device: differential-privacy accounting with dp-accounting (RDP and PLD accountants).

A site's training is a composition of Poisson-subsampled Gaussian mechanisms: per round, one
(``dp_unit="update"``: the site's whole update is clipped and noised once, sampling
probability 1 unless a site is sampled) or many (``dp_unit="example"``: DP-SGD inside local
training, one step per batch with sampling probability ``batch / n``; fixed shuffled batches are
accounted as Poisson sampling, the usual approximation). ``epsilon_spent`` gives the total
epsilon after ``steps`` steps; ``epsilon_micro_increment`` gives what one more update adds, the
integer ``epsilon_micro`` an edge declares on chain (the contract sums them against the task's
budget, so the sum of increments equals the composed epsilon, not a naive sum);
``dp_steps_per_round`` reads the mechanism off a task.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import dp_accounting

from fednode.device.data import batch_shape
from fednode.errors import FednodeValueError
from fednode.types import ACCOUNTANT_KINDS, TaskSpec

__all__ = [
    "ACCOUNTANTS",
    "EPSILON_SCALE",
    "composed_epsilon",
    "dp_steps_per_round",
    "epsilon_micro_increment",
    "epsilon_spent",
    "noise_for_epsilon",
]

ACCOUNTANTS = ACCOUNTANT_KINDS
EPSILON_SCALE = 1_000_000
"""On-chain privacy spend is an integer number of micro-epsilons (``fednode.types``)."""

_PLD_DISCRETIZATION = 1e-4
logging.getLogger("absl").setLevel(logging.ERROR)  # RDP warns about orders it cannot use


@functools.lru_cache(maxsize=1024)
def epsilon_spent(
    noise_multiplier: float, sampling_probability: float, steps: int, *, delta: float,
    accountant: str = "rdp",
) -> float:
    """Epsilon of ``steps`` compositions of a Poisson-subsampled Gaussian mechanism.

    Args:
      noise_multiplier: noise stddev / clip norm (> 0).
      sampling_probability: chance that a record (or site) takes part in one step, in (0, 1].
      steps: number of compositions (0 gives epsilon 0).
      delta: target delta.
      accountant: ``"rdp"`` (Renyi DP, Mironov 2017) or ``"pld"`` (privacy loss distributions,
        tighter).

    Raises:
      FednodeValueError: on an unknown accountant or out-of-range arguments.

    Example:
      >>> round(epsilon_spent(1.0, 0.1, 100, delta=1e-5), 2)
      7.9
    """
    _check(noise_multiplier, sampling_probability, steps, delta, accountant)
    if steps == 0:
        return 0.0
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(
            sampling_probability, dp_accounting.GaussianDpEvent(noise_multiplier)
        ),
        steps,
    )
    tracker = _tracker(accountant)
    tracker.compose(event)
    return float(tracker.get_epsilon(delta))


def composed_epsilon(
    mechanisms: Sequence[tuple[float, float, int]], *, delta: float, accountant: str = "rdp"
) -> float:
    """Epsilon of a sequence of ``(noise_multiplier, sampling_probability, steps)`` mechanisms.

    Equal mechanisms are merged into one self-composition first, so a site whose rounds all
    ran the same mechanism gets exactly :func:`epsilon_spent` of the summed steps.

    Example:
      >>> composed_epsilon([(1.0, 0.1, 40), (1.0, 0.1, 60)], delta=1e-5) == epsilon_spent(
      ...     1.0, 0.1, 100, delta=1e-5)
      True
    """
    steps_of: dict[tuple[float, float], int] = {}
    for noise, sampling, steps in mechanisms:
        steps_of[(noise, sampling)] = steps_of.get((noise, sampling), 0) + steps
    if not steps_of:
        return 0.0
    if len(steps_of) == 1:
        (noise, sampling), steps = next(iter(steps_of.items()))
        return epsilon_spent(noise, sampling, steps, delta=delta, accountant=accountant)
    for (noise, sampling), steps in steps_of.items():
        _check(noise, sampling, steps, delta, accountant)
    events = [dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(
        sampling, dp_accounting.GaussianDpEvent(noise)), steps)
        for (noise, sampling), steps in steps_of.items()]
    tracker = _tracker(accountant)
    tracker.compose(dp_accounting.ComposedDpEvent(events))
    return float(tracker.get_epsilon(delta))


def _tracker(accountant: str) -> dp_accounting.PrivacyAccountant:
    if accountant == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    return dp_accounting.pld.PLDAccountant(value_discretization_interval=_PLD_DISCRETIZATION)


def epsilon_micro_increment(
    noise_multiplier: float, sampling_probability: float, *, steps_before: int, steps_now: int,
    delta: float, accountant: str = "rdp",
) -> int:
    """Micro-epsilons one update adds: ``ceil(1e6 * (eps(after) - eps(before)))``.

    Rounding up each increment keeps the on-chain sum an upper bound of the true spend.

    Example:
      >>> epsilon_micro_increment(1.0, 1.0, steps_before=0, steps_now=0, delta=1e-5)
      0
    """
    after = epsilon_spent(noise_multiplier, sampling_probability, steps_before + steps_now,
                          delta=delta, accountant=accountant)
    before = epsilon_spent(noise_multiplier, sampling_probability, steps_before,
                           delta=delta, accountant=accountant)
    return max(0, math.ceil((after - before) * EPSILON_SCALE))


def noise_for_epsilon(
    target_epsilon: float, sampling_probability: float, steps: int, *, delta: float,
    accountant: str = "rdp", tolerance: float = 1e-3,
) -> float:
    """The smallest noise multiplier whose epsilon after ``steps`` is at most the target.

    Bisection on ``epsilon_spent`` (monotone in the noise).

    Example:
      >>> z = noise_for_epsilon(8.0, 0.1, 100, delta=1e-5)
      >>> 0.95 < z < 1.0
      True
    """
    if not target_epsilon > 0:
        raise FednodeValueError(f"target epsilon must be > 0, got {target_epsilon}")
    low, high = 0.05, 1.0
    while epsilon_spent(high, sampling_probability, steps, delta=delta, accountant=accountant) > target_epsilon:
        low, high = high, high * 2.0
        if high > 1e4:
            raise FednodeValueError("no noise multiplier below 1e4 reaches the target epsilon")
    while high - low > tolerance * high:
        middle = (low + high) / 2.0
        eps = epsilon_spent(middle, sampling_probability, steps, delta=delta, accountant=accountant)
        low, high = (middle, high) if eps > target_epsilon else (low, middle)
    return high


def _check(noise: float, q: float, steps: int, delta: float, accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise FednodeValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    if not noise > 0 or not 0 < q <= 1 or steps < 0 or not 0 < delta < 1:
        raise FednodeValueError(
            f"need noise > 0, 0 < q <= 1, steps >= 0, 0 < delta < 1; got {noise}, {q}, {steps}, "
            f"{delta}"
        )


def dp_steps_per_round(spec: TaskSpec, num_examples: int) -> tuple[float, int]:
    """``(sampling_probability, steps)`` one round of a site adds to its privacy ledger.

    ``dp_unit="example"``: DP-SGD, ``batch width / n`` per step, ``local_epochs * batches``
    steps; ``dp_unit="update"`` (default): one Gaussian mechanism on the whole update, with
    ``spec.extra["site_sampling"]`` (default 1: every site takes part in every round).

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, batch_size=32,
      ...                 local_epochs=2, extra={"dp_unit": "example"})
      >>> dp_steps_per_round(spec, 199)
      (0.1457286432160804, 14)
    """
    if spec.extra.get("dp_unit", "update") == "example":
        num_batches, width = batch_shape(num_examples, batch_size=spec.batch_size)
        return width / num_examples, spec.local_epochs * num_batches
    return float(spec.extra.get("site_sampling", 1.0)), 1
