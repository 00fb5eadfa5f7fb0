"""Device: local training (client_init / client_step / client_final, train_local, FedProx)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from fednode.codec import digest
from fednode.device.model import apply_model, init_params
from fednode.device.train import (
    _compiled_run,
    _config,
    client_final,
    client_init,
    client_step,
    local_loss,
    train_local,
)
from fednode.errors import FednodeValueError
from fednode.types import TaskSpec

SPEC = TaskSpec(
    name="t",
    data_schema="s",
    num_features=3,
    local_epochs=3,
    batch_size=8,
    learning_rate=0.1,
    local_optimizer="sgd",
)


def _data(n: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([2.0, -1.0, 0.5], np.float32) > 0.0).astype(np.float32)
    return x, y


def _params(key: jax.Array, model: str = "logreg") -> dict:
    hidden = (4,) if model == "mlp" else ()
    params = init_params(key, model=model, num_features=3, hidden_sizes=hidden)
    return jax.tree_util.tree_map(np.asarray, params)


def _norm(tree: dict) -> float:
    return float(np.sqrt(sum(np.sum(np.square(leaf)) for leaf in jax.tree_util.tree_leaves(tree))))


def _loss(params: dict, data: tuple[np.ndarray, np.ndarray]) -> float:
    x, y = data
    return float(local_loss(params, params, (x, y, np.ones_like(y)), proximal_mu=0.0))


@pytest.mark.parametrize(
    ("model", "optimizer"), [("logreg", "sgd"), ("logreg", "momentum"), ("mlp", "adam")]
)
def test_train_local_returns_float32_numpy_delta(
    key: jax.Array, model: str, optimizer: str
) -> None:
    # Arrange
    spec = dataclasses.replace(SPEC, model=model, local_optimizer=optimizer)
    params = _params(key, model)
    # Act
    update = train_local(params, _data(), key=key, spec=spec)
    # Assert
    assert update.num_examples == 30
    leaves = jax.tree_util.tree_leaves(update.delta)
    assert all(isinstance(leaf, np.ndarray) and leaf.dtype == np.float32 for leaf in leaves)
    assert jax.tree_util.tree_structure(update.delta) == jax.tree_util.tree_structure(params)
    assert _norm(update.delta) > 0.0


def test_train_local_lowers_the_loss(key: jax.Array) -> None:
    # Arrange
    params, data = _params(key), _data()
    # Act
    delta = train_local(params, data, key=key, spec=SPEC).delta
    trained = jax.tree_util.tree_map(np.add, params, delta)
    # Assert
    assert _loss(trained, data) < 0.8 * _loss(params, data)


def test_train_local_is_deterministic_given_key(key: jax.Array) -> None:
    # Arrange
    params, data = _params(key), _data()
    # Act
    first = train_local(params, data, key=key, spec=SPEC).delta
    again = train_local(params, data, key=key, spec=SPEC).delta
    other = train_local(params, data, key=jax.random.fold_in(key, 1), spec=SPEC).delta
    # Assert
    assert digest(first) == digest(again)
    assert digest(first) != digest(other)


def test_train_local_compiles_once_per_shape(key: jax.Array) -> None:
    # Arrange
    spec = dataclasses.replace(SPEC, learning_rate=0.0625)  # a config no other test uses
    params, data = _params(key), _data(n=17)
    # Act
    for round_index in range(3):
        delta = train_local(params, data, key=jax.random.fold_in(key, round_index), spec=spec).delta
        params = jax.tree_util.tree_map(np.add, params, delta)
    # Assert
    assert _compiled_run(_config(spec))._cache_size() == 1


def test_site_smaller_than_a_batch_trains(key: jax.Array) -> None:
    # Arrange
    spec = dataclasses.replace(SPEC, batch_size=32)
    # Act
    update = train_local(_params(key), _data(n=5), key=key, spec=spec)
    # Assert
    assert update.num_examples == 5 and _norm(update.delta) > 0.0


def test_proximal_term_keeps_the_delta_small(key: jax.Array) -> None:
    # Arrange
    params, data = _params(key), _data()
    prox = dataclasses.replace(SPEC, proximal_mu=10.0)
    # Act
    plain = train_local(params, data, key=key, spec=SPEC).delta
    anchored = train_local(params, data, key=key, spec=prox).delta
    # Assert
    assert _norm(anchored) < 0.5 * _norm(plain)


def test_local_loss_adds_the_proximal_term(key: jax.Array) -> None:
    # Arrange
    params = _params(key)
    shifted = jax.tree_util.tree_map(lambda leaf: leaf + np.float32(1.0), params)
    x, y = _data(n=4)
    batch = (x, y, np.ones_like(y))
    # Act
    base = float(local_loss(shifted, params, batch, proximal_mu=0.0))
    prox = float(local_loss(shifted, params, batch, proximal_mu=0.5))
    # Assert: 4 parameters each 1 away -> 0.5 * 0.5 * 4 = 1
    assert prox - base == pytest.approx(1.0, rel=1e-5)


def test_masked_rows_do_not_count(key: jax.Array) -> None:
    # Arrange
    params = _params(key)
    x, y = _data(n=4)
    padded = (np.concatenate([x, x[:1] * 100.0]), np.concatenate([y, y[:1]]))
    mask = np.array([1, 1, 1, 1, 0], np.float32)
    # Act
    real = float(local_loss(params, params, (x, y, np.ones_like(y)), proximal_mu=0.0))
    masked = float(local_loss(params, params, (*padded, mask), proximal_mu=0.0))
    # Assert
    assert masked == pytest.approx(real, rel=1e-6)


def test_client_steps_match_the_model_api(key: jax.Array) -> None:
    # Arrange
    params, (x, y) = _params(key), _data()
    state = client_init(params, spec=SPEC)
    # Act
    untouched = client_final(state)
    for start in range(0, 30, 10):
        state = client_step(state, (x[start : start + 10], y[start : start + 10]), spec=SPEC)
    delta = client_final(state)
    # Assert
    assert all(not np.any(leaf) for leaf in jax.tree_util.tree_leaves(untouched))
    assert int(state.num_steps) == 3
    trained = jax.tree_util.tree_map(np.add, params, delta)
    assert np.allclose(apply_model(trained, x), apply_model(state.params, x), atol=1e-6)
    assert _loss(trained, (x, y)) < _loss(params, (x, y))


def test_full_batch_train_local_equals_one_client_step(key: jax.Array) -> None:
    # Arrange
    spec = dataclasses.replace(SPEC, local_epochs=1, batch_size=64)
    params, data = _params(key), _data()
    # Act
    via_train = train_local(params, data, key=key, spec=spec).delta
    via_step = client_final(client_step(client_init(params, spec=spec), data, spec=spec))
    # Assert
    pairs = zip(*map(jax.tree_util.tree_leaves, (via_train, via_step)), strict=True)
    assert all(np.allclose(a, b, atol=1e-6) for a, b in pairs)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ((np.ones((4, 2)), np.ones(4)), "x must be"),
        ((np.ones((4, 3)), np.ones(3)), "y must have shape"),
        ((np.ones((4, 3)), np.full(4, 2.0)), "labels must be 0 or 1"),
        ((np.ones((0, 3)), np.ones(0)), "x must be"),
    ],
)
def test_train_local_rejects_bad_data(key: jax.Array, data: tuple, match: str) -> None:
    with pytest.raises(FednodeValueError, match=match):
        train_local(_params(key), data, key=key, spec=SPEC)


def test_unknown_local_optimizer_is_rejected() -> None:
    # Act / Assert: the spec itself refuses it, so no device can train with it
    with pytest.raises(FednodeValueError, match="local_optimizer"):
        dataclasses.replace(SPEC, local_optimizer="lbfgs")
