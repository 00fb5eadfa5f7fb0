"""Device: the JAX models (parameter layout, codec compatibility, logits) and package exports."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fednode.device
from fednode.codec import decode_params, digest, encode_params
from fednode.device.model import apply_model, count_params, init_params
from fednode.errors import FednodeValueError


def _isort_key(name: str) -> tuple[int, str]:
    """ruff RUF022 order: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_logreg_layout(key: jax.Array) -> None:
    # Act
    params = init_params(key, model="logreg", num_features=10)
    # Assert
    assert list(params) == ["output"]
    assert params["output"]["kernel"].shape == (10, 1)
    assert params["output"]["bias"].dtype == jnp.float32
    assert count_params(params) == 11


def test_mlp_layout(key: jax.Array) -> None:
    # Act
    params = init_params(key, model="mlp", num_features=10, hidden_sizes=(16, 8))
    # Assert
    assert sorted(params) == ["dense_0", "dense_1", "output"]
    assert params["dense_1"]["kernel"].shape == (16, 8)
    assert params["output"]["kernel"].shape == (8, 1)
    leaves = jax.tree_util.tree_leaves(params)
    assert all(leaf.dtype == jnp.float32 for leaf in leaves)


def test_params_round_trip_through_codec(key: jax.Array) -> None:
    # Arrange
    params = jax.tree_util.tree_map(
        np.asarray, init_params(key, model="mlp", num_features=4, hidden_sizes=(3,))
    )
    # Act
    decoded = decode_params(encode_params(params))
    # Assert
    assert digest(decoded) == digest(params)
    assert np.array_equal(decoded["dense_0"]["kernel"], params["dense_0"]["kernel"])


def test_init_is_deterministic_given_key(key: jax.Array) -> None:
    # Act
    first = init_params(key, model="logreg", num_features=5)
    again = init_params(key, model="logreg", num_features=5)
    other = init_params(jax.random.fold_in(key, 1), model="logreg", num_features=5)
    # Assert
    assert np.array_equal(first["output"]["kernel"], again["output"]["kernel"])
    assert not np.array_equal(first["output"]["kernel"], other["output"]["kernel"])


@pytest.mark.parametrize("hidden", [(), (4,)])
def test_apply_returns_one_logit_per_row(key: jax.Array, hidden: tuple[int, ...]) -> None:
    # Arrange
    model = "mlp" if hidden else "logreg"
    params = init_params(key, model=model, num_features=3, hidden_sizes=hidden)
    x = jnp.ones((5, 3), jnp.float32)
    # Act
    logits = jax.jit(apply_model)(params, x)
    # Assert
    assert logits.shape == (5,) and logits.dtype == jnp.float32


def test_apply_accepts_decoded_numpy_params(key: jax.Array) -> None:
    # Arrange
    params = jax.tree_util.tree_map(np.asarray, init_params(key, model="logreg", num_features=2))
    decoded = decode_params(encode_params(params))
    x = np.array([[1.0, -1.0]], np.float32)
    # Act
    logits = apply_model(decoded, x)
    # Assert
    expected = x @ params["output"]["kernel"][:, 0] + params["output"]["bias"][0]
    assert np.allclose(logits, expected)


@pytest.mark.parametrize(
    ("model", "hidden", "match"),
    [
        ("svm", (), "model must be one of"),
        ("logreg", (4,), "no hidden_sizes"),
        ("mlp", (), "at least one hidden"),
        ("mlp", (0,), "widths must be >= 1"),
    ],
)
def test_init_rejects_bad_specs(
    key: jax.Array, model: str, hidden: tuple[int, ...], match: str
) -> None:
    with pytest.raises(FednodeValueError, match=match):
        init_params(key, model=model, num_features=3, hidden_sizes=hidden)


def test_device_all_is_sorted_and_importable() -> None:
    # Act
    names = fednode.device.__all__
    # Assert
    assert names == sorted(names, key=_isort_key)
    assert all(hasattr(fednode.device, name) for name in names)
