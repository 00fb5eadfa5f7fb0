"""Device: DP-SGD local training samples, counts and declares what the accountant charges."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fednode.device.train as train
from fednode.device.loss import clipped_gradient_sum
from fednode.device.model import init_params
from fednode.device.train import (
    _compiled_run,
    _config,
    client_init,
    client_step,
    train_local,
)
from fednode.errors import FednodeValueError
from fednode.privacy import (
    EPSILON_SCALE,
    declared_spend,
    dp_steps_per_round,
    epsilon_spent,
    round_mechanism,
)
from fednode.types import TaskSpec

DP_SPEC = TaskSpec(
    name="t", data_schema="s", num_features=3, local_epochs=2, batch_size=20,
    learning_rate=0.1, clip_norm=1.0, noise_multiplier=1.1, dp_unit="example",
)  # fmt: skip


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x @ np.array([2.0, -1.0, 0.5], np.float32) > 0.0).astype(np.float32)


def _params(key: jax.Array) -> dict:
    return jax.tree_util.tree_map(np.asarray, init_params(key, model="logreg", num_features=3))


def _run(spec: TaskSpec, n: int, key: jax.Array):
    x, y = _data(n)
    return _compiled_run(_config(spec))(_params(key), jnp.asarray(x), jnp.asarray(y), key)


def test_realized_batches_are_poisson_with_mean_q_times_n(key: jax.Array) -> None:
    # Arrange: 200 rows, batch 20 -> q = 0.1; 40 epochs of 10 steps = 400 steps
    spec = dataclasses.replace(DP_SPEC, local_epochs=40)
    # Act
    _, steps, sizes = _run(spec, 200, key)
    sizes = np.asarray(sizes)
    # Assert: Binomial(200, 0.1): mean 20, sd sqrt(18) = 4.24 (standard error of the mean 0.21)
    assert int(steps) == sizes.size == 400
    assert abs(sizes.mean() - 20.0) < 1.0
    assert 3.6 < sizes.std() < 4.9
    assert len(set(sizes.tolist())) > 8 and sizes.min() < 15 and sizes.max() > 25


def test_a_site_smaller_than_a_batch_includes_every_row_each_step(key: jax.Array) -> None:
    _, steps, sizes = _run(DP_SPEC, 7, key)
    assert int(steps) == 2 and np.asarray(sizes).tolist() == [7, 7]


@pytest.mark.parametrize("rows", [7, 45, 200])
def test_the_device_counts_the_steps_the_accountant_charges(key: jax.Array, rows: int) -> None:
    # Act
    update = train_local(_params(key), _data(rows), key=key, spec=DP_SPEC)
    # Assert
    assert update.dp_steps == dp_steps_per_round(DP_SPEC, rows)[1]
    assert update.dp_steps == round_mechanism(DP_SPEC, rows).steps
    assert update.dp_steps == DP_SPEC.local_epochs * -(-rows // DP_SPEC.batch_size)


def test_declared_spend_of_the_trained_steps_is_the_accountant_epsilon(key: jax.Array) -> None:
    # Arrange: a site trains 4 rounds and declares each update as the device does
    rows, params, declared, steps_so_far = 45, _params(key), [], 0
    # Act
    for round_index in range(4):
        update = train_local(params, _data(rows), key=jax.random.fold_in(key, round_index),
                             spec=DP_SPEC)
        declared.append(declared_spend(DP_SPEC, rows, steps_before=steps_so_far,
                                       steps_now=update.dp_steps))
        steps_so_far += update.dp_steps
        params = jax.tree_util.tree_map(np.add, params, update.delta)
    # Assert: the on-chain sum is the accountant's epsilon of all trained steps, rounded up
    epsilon = epsilon_spent(1.1, 20 / 45, steps_so_far, delta=DP_SPEC.delta)
    assert steps_so_far == 4 * 2 * 3
    assert 0 <= sum(declared) - epsilon * EPSILON_SCALE <= 4
    assert sum(declared) > 0


def test_each_step_divides_by_the_expected_batch_not_the_realized_one(key: jax.Array) -> None:
    # Arrange: no noise, plain SGD at learning rate 1; 20 rows, batch 10 -> q = 0.5, 2 steps
    spec = dataclasses.replace(DP_SPEC, local_epochs=1, batch_size=10, learning_rate=1.0,
                               noise_multiplier=0.0, clip_norm=0.3)
    x, y = _data(20)
    sample_key = jax.random.fold_in(key, train._SAMPLE_STREAM)
    # Act
    local, steps, sizes = _run(spec, 20, key)
    # Assert: replaying the two steps with the same samples, each divided by q * n = 10
    expected = _params(key)
    for step in range(2):
        include = np.asarray(jax.random.bernoulli(jax.random.fold_in(sample_key, step), 0.5,
                                                  (20,)), np.float32)
        assert int(sizes[step]) == include.sum()
        total = clipped_gradient_sum(expected, (x, y, include), clip_norm=0.3)
        expected = jax.tree_util.tree_map(lambda p, g: p - g / 10.0, expected, total)
    assert int(steps) == 2 and np.asarray(sizes).tolist() != [10, 10]
    for got, want in zip(jax.tree_util.tree_leaves(local), jax.tree_util.tree_leaves(expected),
                         strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_a_batch_larger_than_one_chunk_is_processed_in_full(
    key: jax.Array, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: chunks of mean + 1 rows overflow on about half of the steps
    config = _config(dataclasses.replace(DP_SPEC, noise_multiplier=0.5))
    x, y = (jnp.asarray(a) for a in _data(120))
    params = _params(key)
    wide = train._run_poisson(config, params, x, y, key)
    # Act
    monkeypatch.setattr(train, "_CAPACITY_SIGMAS", 0.0)
    narrow = train._run_poisson(config, params, x, y, key)
    # Assert: same samples, same sums, however many chunks each batch took
    assert train._chunk_width(120, 20 / 120) == 21
    assert np.asarray(narrow[2]).max() > 21
    assert np.array_equal(np.asarray(wide[2]), np.asarray(narrow[2]))
    for a, b in zip(jax.tree_util.tree_leaves(wide[0]), jax.tree_util.tree_leaves(narrow[0]),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_dp_sgd_compiles_once_per_shape(key: jax.Array) -> None:
    spec = dataclasses.replace(DP_SPEC, learning_rate=0.0703125)  # a config no other test uses
    for round_index in range(3):
        train_local(_params(key), _data(33), key=jax.random.fold_in(key, round_index), spec=spec)
    assert _compiled_run(_config(spec))._cache_size() == 1


def test_client_step_refuses_a_dp_sgd_task(key: jax.Array) -> None:
    state = client_init(_params(key), spec=DP_SPEC)
    with pytest.raises(FednodeValueError, match="Poisson"):
        client_step(state, _data(5), spec=DP_SPEC)


@pytest.mark.parametrize(("noise", "steps"), [(2.0, 1), (0.0, 0)])
def test_an_update_level_task_declares_one_release_per_update(
    key: jax.Array, noise: float, steps: int
) -> None:
    spec = dataclasses.replace(DP_SPEC, noise_multiplier=noise, dp_unit="update")
    update = train_local(_params(key), _data(30), key=key, spec=spec)
    assert update.dp_steps == steps
    if noise:
        assert round_mechanism(spec, 30).steps == steps
