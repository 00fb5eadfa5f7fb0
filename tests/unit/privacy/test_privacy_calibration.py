"""Privacy: per-site noise calibration meets the on-chain budget exactly as the contract sums it."""

from __future__ import annotations

import dataclasses

import pytest

from fednode.errors import TaskSpecError
from fednode.privacy import (
    EPSILON_SCALE,
    declared_spend,
    dp_steps_per_round,
    epsilon_spent,
    site_privacy_spec,
)
from fednode.tasks import HEART_DP_SGD, heart_task_spec, with_private_training, with_site_weighting
from fednode.types import TaskSpec

HEART_TRAIN_ROWS = (199, 172, 30, 85)  # FLamby train rows: Cleveland, Hungary, Switzerland, VA


def _declared_micro(site_spec: TaskSpec, rows: int) -> list[int]:
    """What a site declares on chain, round after round (as the demo's device does)."""
    _, steps = dp_steps_per_round(site_spec, rows)
    return [declared_spend(site_spec, rows, steps_before=r * steps, steps_now=steps)
            for r in range(site_spec.rounds)]


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize("rows", HEART_TRAIN_ROWS)
def test_every_round_of_every_site_fits_the_budget_the_contract_enforces(accountant, rows) -> None:
    # Arrange
    spec = with_private_training(heart_task_spec(normalization_task=1), epsilon=1.0,
                                 accountant=accountant)
    # Act
    site_spec = site_privacy_spec(spec, rows)
    declared = _declared_micro(site_spec, rows)
    # Assert: the contract's sum stays within the budget, and the budget is nearly used up
    budget_micro = round(spec.epsilon_budget * EPSILON_SCALE)
    assert sum(declared) <= budget_micro
    assert sum(declared) >= 0.995 * budget_micro
    assert site_spec.noise_calibration == "fixed"
    assert spec.noise_calibration == "per_site"


def test_a_higher_sampling_rate_needs_more_noise_and_pld_needs_less() -> None:
    # Arrange: batch 128, 2 local epochs; Poisson rate 128 / n (1 at most), ceil(n / 128) steps
    rdp = with_private_training(heart_task_spec(normalization_task=1), epsilon=1.0)
    pld = dataclasses.replace(rdp, accountant="pld")
    # Act
    noise = {rows: site_privacy_spec(rdp, rows).noise_multiplier for rows in HEART_TRAIN_ROWS}
    noise_pld = site_privacy_spec(pld, 199).noise_multiplier
    # Assert: 172 and 199 rows both run 4 steps a round, the smaller site at a higher rate
    assert [dp_steps_per_round(rdp, rows)[1] for rows in (199, 172, 85, 30)] == [4, 4, 2, 2]
    assert noise[172] > noise[199]
    assert noise[30] == noise[85]  # both include every row in each of 2 steps
    assert noise_pld < noise[199]
    sampling, steps = dp_steps_per_round(rdp, 199)
    assert epsilon_spent(noise[199], sampling, steps * rdp.rounds, delta=1e-5) <= 1.0


def test_tasks_without_per_site_calibration_keep_their_noise() -> None:
    spec = TaskSpec(name="t", data_schema="s", num_features=2, clip_norm=1.0, noise_multiplier=1.3)
    assert site_privacy_spec(spec, 50) is spec


def test_private_training_and_site_weighting_set_the_published_spec() -> None:
    # Act
    spec = with_site_weighting(
        with_private_training(heart_task_spec(normalization_task=3), epsilon=2.0,
                              accountant="pld"),
        example_power=0.0)
    # Assert
    assert spec.epsilon_budget == 2.0 and spec.accountant == "pld" and spec.noise_multiplier == 0
    assert {k: getattr(spec, k) for k in HEART_DP_SGD} == HEART_DP_SGD
    assert spec.dp_unit == "example" and spec.normalization_task == 3
    assert spec.aggregation_params == (("example_power", 0.0),)
    assert TaskSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("changes, message", [
    (dict(clip_norm=0.0), "per_site noise calibration needs"),
    (dict(epsilon_budget=0.0), "per_site noise calibration needs"),
    (dict(noise_multiplier=2.0), "per_site noise calibration needs"),
    (dict(accountant="moments"), "accountant must be one of"),
    (dict(noise_calibration="per_device"), "noise_calibration must be one of"),
])
def test_inconsistent_privacy_specs_are_refused(changes, message) -> None:
    spec = with_private_training(heart_task_spec(normalization_task=1), epsilon=1.0)
    with pytest.raises(TaskSpecError, match=message):
        dataclasses.replace(spec, **changes)


def test_a_site_without_rows_cannot_calibrate() -> None:
    spec = with_private_training(heart_task_spec(normalization_task=1), epsilon=1.0)
    with pytest.raises(TaskSpecError, match="training example"):
        site_privacy_spec(spec, 0)


def test_an_update_level_site_noises_for_twice_the_clip_norm_and_fits_its_budget() -> None:
    # Arrange: one clipped, noised update a round; removing one row can move it 2 * clip_norm
    spec = heart_task_spec(normalization_task=1, rounds=5, clip_norm=1.0, epsilon_budget=4.0)
    spec = dataclasses.replace(spec, noise_calibration="per_site")
    # Act
    site_spec = site_privacy_spec(spec, 85)
    declared = _declared_micro(site_spec, 85)
    # Assert
    accountant_noise = site_spec.noise_multiplier / 2
    assert epsilon_spent(accountant_noise, 1.0, 5, delta=spec.delta) <= 4.0
    assert epsilon_spent(accountant_noise * 0.99, 1.0, 5, delta=spec.delta) > 4.0 - 5e-6
    assert 0.995 * 4_000_000 <= sum(declared) <= 4_000_000
