"""Device: per-site noise calibration: every site meets the task's epsilon budget on its data.

A task that says ``noise_calibration = "per_site"`` fixes the privacy *target* on
chain (``epsilon_budget``, ``delta``, ``accountant``, ``clip_norm``) instead of one noise
multiplier for everyone: a site's epsilon depends on its own sampling rate (batch / n for DP-SGD)
and step count, so one multiplier would over-noise large sites and under-protect small ones.
Each site solves for the smallest multiplier whose epsilon after all ``spec.rounds`` rounds of
its own mechanism stays within the budget, trains and accounts with it, and declares the
increments on chain, where the contract sums them against the same budget.
"""

from __future__ import annotations

import dataclasses

from fednode.errors import TaskSpecError
from fednode.privacy.accountant import (
    EPSILON_SCALE,
    dp_steps_per_round,
    noise_for_epsilon,
    sensitivity,
)
from fednode.types import NOISE_CALIBRATIONS, TaskSpec

__all__ = ["NOISE_CALIBRATIONS", "calibrated_epsilon_target", "site_privacy_spec"]


def calibrated_epsilon_target(spec: TaskSpec) -> float:
    """The epsilon a per-site calibration aims at: the budget less one micro-epsilon per round.

    Each round's on-chain increment is rounded *up* to a whole micro-epsilon
    (``epsilon_micro_increment``), so the declared sum can exceed the composed epsilon by up to
    one micro-epsilon per round; aiming that much lower keeps the last round inside the budget.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, rounds=10, clip_norm=1.0,
      ...                 epsilon_budget=1.0, noise_calibration="per_site")
      >>> calibrated_epsilon_target(spec)
      0.99999
    """
    return spec.epsilon_budget - spec.rounds / EPSILON_SCALE


def site_privacy_spec(spec: TaskSpec, num_examples: int) -> TaskSpec:
    """The spec one site trains and accounts with: its own noise multiplier where the task asks.

    Tasks without ``noise_calibration == "per_site"`` come back unchanged (one multiplier, the
    spec's own). Otherwise the site's spec is the same task with a fixed ``noise_multiplier``:
    the smallest one whose epsilon after ``spec.rounds`` rounds of this site's mechanism
    (``round_mechanism``) is at most :func:`calibrated_epsilon_target`, under the task's
    accountant. It is local to the site (the published spec, and its digest, stay as they are).

    Args:
      spec: the task spec as published on chain.
      num_examples: the site's number of training rows (sets its DP-SGD sampling rate).

    Raises:
      TaskSpecError: if ``num_examples`` < 1.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, rounds=10, clip_norm=1.0,
      ...                 epsilon_budget=8.0, noise_calibration="per_site")
      >>> round(site_privacy_spec(spec, 100).noise_multiplier, 2)  # update-level: sensitivity 2
      4.04
      >>> fixed = dataclasses.replace(spec, noise_calibration="fixed")
      >>> site_privacy_spec(fixed, 100) is fixed
      True
    """
    if not spec.per_site_noise:
        return spec
    if num_examples < 1:
        raise TaskSpecError(f"a site needs >= 1 training example to calibrate, got {num_examples}")
    sampling, steps = dp_steps_per_round(spec, num_examples)
    noise = sensitivity(spec) * noise_for_epsilon(
        calibrated_epsilon_target(spec), sampling, steps * spec.rounds, delta=spec.delta,
        accountant=spec.accountant,
    )  # the accountant's multiplier is per unit of sensitivity
    # this site's multiplier is now fixed
    return dataclasses.replace(spec, noise_multiplier=noise, noise_calibration="fixed")
