"""Device: differential-privacy accounting (dp-accounting RDP and PLD) for per-site budgets."""

from fednode.privacy.accountant import (
    ACCOUNTANTS,
    EPSILON_SCALE,
    UPDATE_SENSITIVITY,
    DpMechanism,
    composed_epsilon,
    declared_spend,
    dp_steps_per_round,
    epsilon_micro_increment,
    epsilon_spent,
    noise_for_epsilon,
    round_mechanism,
    sensitivity,
)
from fednode.privacy.calibration import (
    NOISE_CALIBRATIONS,
    calibrated_epsilon_target,
    site_privacy_spec,
)

__all__ = [
    "ACCOUNTANTS",
    "EPSILON_SCALE",
    "NOISE_CALIBRATIONS",
    "UPDATE_SENSITIVITY",
    "DpMechanism",
    "calibrated_epsilon_target",
    "composed_epsilon",
    "declared_spend",
    "dp_steps_per_round",
    "epsilon_micro_increment",
    "epsilon_spent",
    "noise_for_epsilon",
    "round_mechanism",
    "sensitivity",
    "site_privacy_spec",
]
