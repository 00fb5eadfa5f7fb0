"""Device: the DP-SGD gradient (per-example clipping, noise, padding) and the split modules."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fednode.device.train as train
import fednode.device.transforms as transforms
from fednode.device.loss import local_loss, private_grads
from fednode.device.model import init_params

MODULES = [
    "fednode.device.compression_transforms",
    "fednode.device.loss",
    "fednode.device.train",
    "fednode.device.transforms",
    "fednode.device.update_transform",
]


def _isort_key(name: str) -> tuple[int, str]:
    """ruff RUF022 order, as the device package uses: CONSTANTS, Classes, functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def _norms(grads) -> float:
    return float(jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(grads))))


def _batch(rows: int, pad: int = 0):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(rows, 3)) * 50, np.zeros((pad, 3))]).astype(np.float32)
    y = np.concatenate([np.ones(rows), np.zeros(pad)]).astype(np.float32)
    mask = np.concatenate([np.ones(rows), np.zeros(pad)]).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y), jnp.asarray(mask)


def test_without_noise_each_example_adds_at_most_the_clip_norm(key: jax.Array) -> None:
    # Arrange: large features make every example's gradient far longer than the clip norm
    params = init_params(key, model="logreg", num_features=3)
    batch = _batch(8)

    # Act
    grads = private_grads(params, params, batch, key=key, clip_norm=0.5,
                          noise_multiplier=0.0, proximal_mu=0.0)

    # Assert
    plain = jax.grad(local_loss)(params, params, batch, proximal_mu=0.0)
    assert _norms(plain) > 0.5
    assert _norms(grads) <= 0.5 + 1e-5


def test_padding_rows_add_nothing_but_count_in_the_batch_width(key: jax.Array) -> None:
    # Arrange
    params = init_params(key, model="logreg", num_features=3)
    real, padded = _batch(4), _batch(4, pad=4)

    # Act
    kwargs = {"key": key, "clip_norm": 0.5, "noise_multiplier": 0.0, "proximal_mu": 0.0}
    g_real = private_grads(params, params, real, **kwargs)
    g_padded = private_grads(params, params, padded, **kwargs)

    # Assert: same clipped sum, divided by 8 instead of 4
    for a, b in zip(jax.tree_util.tree_leaves(g_real), jax.tree_util.tree_leaves(g_padded),
                    strict=True):
        np.testing.assert_allclose(np.asarray(b) * 2, np.asarray(a), rtol=1e-5, atol=1e-7)


def test_noise_has_the_requested_scale_and_follows_the_key(key: jax.Array) -> None:
    # Arrange: one example with a zero gradient (mask 0) leaves only the noise
    params = init_params(key, model="logreg", num_features=3)
    x, y, _ = _batch(1)
    batch = (x, y, jnp.zeros(1, jnp.float32))
    kwargs = {"clip_norm": 2.0, "noise_multiplier": 1.5, "proximal_mu": 0.0}

    # Act
    a = private_grads(params, params, batch, key=jax.random.key(1), **kwargs)
    b = private_grads(params, params, batch, key=jax.random.key(1), **kwargs)
    c = private_grads(params, params, batch, key=jax.random.key(2), **kwargs)

    # Assert
    assert np.array_equal(a["output"]["kernel"], b["output"]["kernel"])
    assert not np.array_equal(a["output"]["kernel"], c["output"]["kernel"])
    draws = np.concatenate([np.asarray(leaf).ravel() for seed in range(200) for leaf in
                            jax.tree_util.tree_leaves(private_grads(
                                params, params, batch, key=jax.random.key(seed), **kwargs))])
    assert draws.std() == pytest.approx(3.0, rel=0.1)  # 1.5 * 2.0, batch width 1


def test_the_proximal_term_is_added_after_the_noise(key: jax.Array) -> None:
    # Arrange: local params 1.0 away from the anchor in every coordinate, no data in the batch
    anchor = init_params(key, model="logreg", num_features=3)
    params = jax.tree_util.tree_map(lambda w: w + 1.0, anchor)
    x, y, _ = _batch(2)
    batch = (x, y, jnp.zeros(2, jnp.float32))

    # Act
    grads = private_grads(params, anchor, batch, key=key, clip_norm=1.0,
                          noise_multiplier=0.0, proximal_mu=0.3)

    # Assert
    for leaf in jax.tree_util.tree_leaves(grads):
        np.testing.assert_allclose(np.asarray(leaf), 0.3, rtol=1e-6)


@pytest.mark.parametrize("name", MODULES)
def test_split_modules_export_sorted_existing_names(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__, key=_isort_key)
    assert all(hasattr(module, public) for public in module.__all__)


def test_old_import_paths_still_give_the_same_objects() -> None:
    from fednode.device import compression_transforms, loss, update_transform

    assert train.local_loss is loss.local_loss
    assert transforms.chain is update_transform.chain
    assert transforms.UpdateTransform is update_transform.UpdateTransform
    assert transforms.top_k is compression_transforms.top_k
    assert transforms.pack_compressed is compression_transforms.pack_compressed
