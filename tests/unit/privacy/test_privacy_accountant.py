"""Privacy: the dp-accounting RDP and PLD accountants, pinned to known values."""

from __future__ import annotations

import pytest

from fednode.errors import FednodeValueError
from fednode.privacy import epsilon_micro_increment, epsilon_spent, noise_for_epsilon


def test_rdp_epsilon_of_the_reference_setting() -> None:
    # sampling 10 of 100, noise 1.0, 100 rounds, delta 1e-5
    assert epsilon_spent(1.0, 0.1, 100, delta=1e-5, accountant="rdp") == pytest.approx(7.90, abs=0.01)


def test_pld_epsilon_of_the_reference_setting_is_tighter() -> None:
    assert epsilon_spent(1.0, 0.1, 100, delta=1e-5, accountant="pld") == pytest.approx(7.05, abs=0.02)


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
    assert epsilon_spent(z, 1.0, 10, delta=1e-5) <= 1.0 < epsilon_spent(z * 0.98, 1.0, 10, delta=1e-5)


@pytest.mark.parametrize("kwargs", [dict(accountant="moments"), dict(delta=0.0)])
def test_bad_arguments_are_refused(kwargs) -> None:
    args = dict(delta=1e-5) | kwargs
    with pytest.raises(FednodeValueError):
        epsilon_spent(1.0, 0.1, 10, **args)
