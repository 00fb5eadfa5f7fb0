"""Privacy: the dp-accounting RDP and PLD accountants, pinned to known values."""

from __future__ import annotations

import dataclasses

import pytest

from fednode.errors import FednodeValueError
from fednode.privacy import (
    DpMechanism,
    declared_spend,
    dp_steps_per_round,
    epsilon_micro_increment,
    epsilon_spent,
    noise_for_epsilon,
    round_mechanism,
)
from fednode.types import TaskSpec


def test_rdp_epsilon_of_the_reference_setting() -> None:
    # sampling 10 of 100, noise 1.0, 100 rounds, delta 1e-5
    rdp = epsilon_spent(1.0, 0.1, 100, delta=1e-5, accountant="rdp")
    assert rdp == pytest.approx(7.90, abs=0.01)


def test_pld_epsilon_of_the_reference_setting_is_tighter() -> None:
    pld = epsilon_spent(1.0, 0.1, 100, delta=1e-5, accountant="pld")
    assert pld == pytest.approx(7.05, abs=0.02)


def test_increments_add_up_to_the_composed_epsilon() -> None:
    # Arrange / Act
    steps = [epsilon_micro_increment(2.0, 0.5, steps_before=10 * r, steps_now=10, delta=1e-5)
             for r in range(5)]
    # Assert
    total = epsilon_spent(2.0, 0.5, 50, delta=1e-5)
    assert sum(steps) == pytest.approx(total * 1e6, abs=5)
    assert steps == sorted(steps, reverse=True)  # composition is sublinear


def test_noise_for_epsilon_inverts_the_accountant() -> None:
    z = noise_for_epsilon(1.0, 1.0, 10, delta=1e-5)
    assert epsilon_spent(z, 1.0, 10, delta=1e-5) <= 1.0
    assert epsilon_spent(z * 0.98, 1.0, 10, delta=1e-5) > 1.0


@pytest.mark.parametrize("kwargs", [dict(accountant="moments"), dict(delta=0.0)])
def test_bad_arguments_are_refused(kwargs) -> None:
    args = dict(delta=1e-5) | kwargs
    with pytest.raises(FednodeValueError):
        epsilon_spent(1.0, 0.1, 10, **args)


def test_dp_sgd_rounds_are_poisson_rate_batch_over_rows_for_ceil_rows_over_batch_steps() -> None:
    spec = TaskSpec(name="t", data_schema="s", num_features=2, batch_size=32, local_epochs=3,
                    clip_norm=1.0, noise_multiplier=1.2, dp_unit="example")
    assert dp_steps_per_round(spec, 199) == (32 / 199, 3 * 7)
    assert dp_steps_per_round(spec, 32) == (1.0, 3)
    assert dp_steps_per_round(spec, 5) == (1.0, 3)  # a site smaller than a batch: every row
    assert round_mechanism(spec, 199) == DpMechanism(1.2, 32 / 199, 21)


def test_an_update_level_release_is_charged_for_a_sensitivity_of_twice_the_clip_norm() -> None:
    spec = TaskSpec(name="t", data_schema="s", num_features=2, clip_norm=0.5, noise_multiplier=3.0)
    assert round_mechanism(spec, 10) == DpMechanism(1.5, 1.0, 1)
    assert declared_spend(spec, 10, steps_before=2, steps_now=1) == epsilon_micro_increment(
        1.5, 1.0, steps_before=2, steps_now=1, delta=1e-5)


def test_site_sampling_is_refused_because_updates_are_attributed_on_chain() -> None:
    spec = TaskSpec(name="t", data_schema="s", num_features=2, clip_norm=1.0,
                    noise_multiplier=1.0, site_sampling=0.1)
    with pytest.raises(FednodeValueError, match="site_sampling"):
        round_mechanism(spec, 10)


def test_a_declaration_for_another_number_of_steps_than_the_mechanism_is_refused() -> None:
    spec = TaskSpec(name="t", data_schema="s", num_features=2, batch_size=10, local_epochs=1,
                    clip_norm=1.0, noise_multiplier=1.0, dp_unit="example")
    with pytest.raises(FednodeValueError, match="ran 3 DP steps"):
        declared_spend(spec, 100, steps_before=0, steps_now=3)
    assert declared_spend(dataclasses.replace(spec, noise_multiplier=0.0), 100,
                          steps_before=0, steps_now=0) == 0
