"""Device: differential-privacy accounting with dp-accounting (RDP and PLD accountants).

A site's training is a composition of Gaussian mechanisms, and this module is the one place
that says which (``round_mechanism``); the device trains exactly that mechanism
(``fednode.device.train``) and the auditor re-derives it (``fednode.auditor.privacy_checks``).
Neighbouring data sets differ by adding or removing one training example.

- ``dp_unit="example"`` (DP-SGD inside local training): each step includes every row
  independently with probability ``q = min(1, batch_size / n)`` (Poisson subsampling, a
  variable batch size), clips each included example's gradient to ``clip_norm``, adds
  ``N(0, (noise_multiplier * clip_norm)^2)`` to the clipped sum and divides by the *expected*
  batch size ``q * n`` (Abadi et al. 2016; Opacus). A round is
  ``local_epochs * ceil(n / batch_size)`` such steps: ``PoissonSampledDpEvent(q, Gaussian(z))``
  composed that many times. Poisson sampling is what the accountant assumes; the alternative, a
  shuffling accountant, was not chosen: dp-accounting has none for DP-SGD that is tight, and
  accounting shuffled fixed batches as if they were Poisson under-states epsilon (Chua et al.,
  "How Private are DP-SGD Implementations?", ICML 2024).
- ``dp_unit="update"`` (the default): the site's whole delta is clipped to ``clip_norm`` and
  noised once per round. Removing one example can move the clipped delta anywhere in the
  ``clip_norm`` ball, so the L2 sensitivity is ``2 * clip_norm``: the accountant charges a
  Gaussian mechanism of multiplier ``noise_multiplier / 2`` (``UPDATE_SENSITIVITY``), sampled
  with probability 1. There is no amplification by site sampling: each update is attributed to
  its edge on chain, so whether a site took part in a round is public (a spec that asks for
  ``spec.site_sampling`` other than 1 is refused).

``epsilon_spent`` gives the total epsilon after ``steps`` steps; ``epsilon_micro_increment``
gives what one more update adds, the integer ``epsilon_micro`` an edge declares on chain (the
contract sums them against the task's budget, so the sum of increments equals the composed
epsilon, not a naive sum); ``declared_spend`` is that increment for the DP steps a device
actually ran.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from typing import NamedTuple

import dp_accounting

from fednode.errors import FednodeValueError
from fednode.types import ACCOUNTANT_KINDS, TaskSpec

__all__ = [
    "ACCOUNTANTS",
    "EPSILON_SCALE",
    "UPDATE_SENSITIVITY",
    "DpMechanism",
    "composed_epsilon",
    "declared_spend",
    "dp_steps_per_round",
    "epsilon_micro_increment",
    "epsilon_spent",
    "noise_for_epsilon",
    "round_mechanism",
    "sensitivity",
]

ACCOUNTANTS = ACCOUNTANT_KINDS
EPSILON_SCALE = 1_000_000
"""On-chain privacy spend is an integer number of micro-epsilons (``fednode.types``)."""
UPDATE_SENSITIVITY = 2.0
"""L2 sensitivity of an update-level release in units of ``clip_norm`` (module docstring)."""

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
    while epsilon_spent(high, sampling_probability, steps, delta=delta,
                        accountant=accountant) > target_epsilon:
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


class DpMechanism(NamedTuple):
    """What one round of one site costs: ``steps`` Poisson-subsampled Gaussian mechanisms.

    ``noise_multiplier`` is the accountant's (noise stddev over the L2 sensitivity), which for
    update-level DP is half the spec's (``UPDATE_SENSITIVITY``).
    """

    noise_multiplier: float
    sampling_probability: float
    steps: int


def dp_steps_per_round(spec: TaskSpec, num_examples: int) -> tuple[float, int]:
    """``(sampling_probability, steps)`` one round of a site adds to its privacy ledger.

    ``dp_unit="example"``: DP-SGD with Poisson sampling at ``min(1, batch_size / n)`` per step,
    ``local_epochs * ceil(n / batch_size)`` steps (the steps ``fednode.device.train`` runs and
    counts); ``dp_unit="update"`` (default): one Gaussian mechanism on the whole update,
    sampling probability 1.

    Raises:
      FednodeValueError: if ``num_examples`` < 1 or the spec asks for site sampling.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, batch_size=32,
      ...                 local_epochs=2, dp_unit="example")
      >>> dp_steps_per_round(spec, 199)
      (0.16080402010050251, 14)
      >>> dp_steps_per_round(spec, 20)
      (1.0, 2)
    """
    if num_examples < 1:
        raise FednodeValueError(f"a round needs num_examples >= 1, got {num_examples}")
    if spec.dp_unit == "example":
        per_epoch = -(-num_examples // spec.batch_size)
        return min(1.0, spec.batch_size / num_examples), spec.local_epochs * per_epoch
    sampling = spec.site_sampling
    if sampling != 1.0:
        raise FednodeValueError(
            f"site_sampling {sampling!r} is not supported: an update is attributed to its edge on "
            "chain, so sampling sites gives no amplification; remove it (every round counts)"
        )
    return 1.0, 1


def round_mechanism(spec: TaskSpec, num_examples: int) -> DpMechanism:
    """The mechanism one round of a site runs, as the accountant charges it.

    ``spec`` must carry the site's own noise multiplier (``site_privacy_spec`` first for a
    per-site calibrated task).

    Raises:
      FednodeValueError: if the spec has no noise (nothing to account) or as
        :func:`dp_steps_per_round`.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, clip_norm=1.0,
      ...                 noise_multiplier=3.0)
      >>> round_mechanism(spec, 50)
      DpMechanism(noise_multiplier=1.5, sampling_probability=1.0, steps=1)
    """
    spec.require_fixed_noise()
    if not spec.noise_multiplier > 0:
        raise FednodeValueError("a task without DP noise has no mechanism to account")
    sampling, steps = dp_steps_per_round(spec, num_examples)
    return DpMechanism(spec.noise_multiplier / sensitivity(spec), sampling, steps)


def sensitivity(spec: TaskSpec) -> float:
    """L2 sensitivity of one mechanism in units of ``clip_norm`` (module docstring).

    Example:
      >>> sensitivity(TaskSpec(name="t", data_schema="s", num_features=2))
      2.0
    """
    return UPDATE_SENSITIVITY if spec.dp_unit == "update" else 1.0


def declared_spend(spec: TaskSpec, num_examples: int, *, steps_before: int, steps_now: int) -> int:
    """Micro-epsilons a site declares for an update after running ``steps_now`` DP steps.

    ``steps_before`` counts the DP steps of the site's updates its edge already accepted; the
    sum of these declarations is the composed epsilon of what the site published, rounded up.
    A task without noise declares 0.

    Raises:
      FednodeValueError: if ``steps_now`` is not the number of steps the accountant charges
        for a round of this site (``round_mechanism``): a device that ran another number of
        steps would declare a spend that does not match its mechanism.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, clip_norm=1.0,
      ...                 noise_multiplier=3.0)
      >>> declared_spend(spec, 50, steps_before=0, steps_now=1) == epsilon_micro_increment(
      ...     1.5, 1.0, steps_before=0, steps_now=1, delta=1e-5)
      True
    """
    if not spec.noise_multiplier > 0:
        return 0
    mechanism = round_mechanism(spec, num_examples)
    if steps_now != mechanism.steps:
        raise FednodeValueError(
            f"the device ran {steps_now} DP steps; a round of {num_examples} rows is accounted "
            f"as {mechanism.steps}"
        )
    return epsilon_micro_increment(
        mechanism.noise_multiplier, mechanism.sampling_probability, steps_before=steps_before,
        steps_now=steps_now, delta=spec.delta, accountant=spec.accountant,
    )  # fmt: skip
