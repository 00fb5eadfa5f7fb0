"""Device: the pure JAX models a task can name (logistic regression and a small MLP).

Parameters are nested dicts of float32 arrays whose names contain no dots, so they go through
``fednode.codec`` unchanged: ``{"dense_0": {"kernel", "bias"}, ..., "output": {"kernel", "bias"}}``
(a logistic regression has only ``output``). Models map ``(n, num_features)`` float32 inputs to
``(n,)`` logits of the positive class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from fednode.errors import FednodeValueError
from fednode.types import MODEL_KINDS

__all__ = ["apply_model", "count_params", "init_params"]

_OUTPUT = "output"


def init_params(
    key: jax.Array, *, model: str, num_features: int, hidden_sizes: Sequence[int] = ()
) -> dict[str, dict[str, jax.Array]]:
    """Initializes a model's parameters: Glorot-normal kernels, zero biases, all float32.

    Args:
      key: PRNG key.
      model: ``"logreg"`` (``hidden_sizes`` must be empty) or ``"mlp"`` (at least one hidden layer).
      num_features: input width.
      hidden_sizes: widths of the MLP's ReLU hidden layers.

    Returns:
      Nested dict ``layer -> {"kernel": (in, out), "bias": (out,)}``.

    Raises:
      FednodeValueError: on an unknown model or inconsistent sizes.

    Example:
      >>> params = init_params(jax.random.key(0), model="mlp", num_features=10, hidden_sizes=(8,))
      >>> sorted(params), params["dense_0"]["kernel"].shape
      (['dense_0', 'output'], (10, 8))
    """
    widths = _layer_widths(model, num_features, hidden_sizes)
    names = [f"dense_{i}" for i in range(len(widths) - 2)] + [_OUTPUT]
    keys = jax.random.split(key, len(names))
    layers = zip(names, keys, widths[:-1], widths[1:], strict=True)
    return {
        name: _init_dense(layer_key, fan_in, fan_out) for name, layer_key, fan_in, fan_out in layers
    }


def apply_model(params: Mapping[str, Any], x: jax.Array) -> jax.Array:
    """Computes ``(n,)`` logits; hidden layers (``dense_i``) use ReLU. Jit- and grad-friendly.

    Example:
      >>> params = init_params(jax.random.key(0), model="logreg", num_features=3)
      >>> apply_model(params, jnp.ones((2, 3), jnp.float32)).shape
      (2,)
    """
    hidden = jnp.asarray(x, jnp.float32)
    for index in range(len(params) - 1):
        hidden = jax.nn.relu(_dense(params[f"dense_{index}"], hidden))
    return _dense(params[_OUTPUT], hidden)[:, 0]


def count_params(params: Mapping[str, Any]) -> int:
    """Total number of scalars in a parameter tree.

    Example:
      >>> count_params(init_params(jax.random.key(0), model="logreg", num_features=10))
      11
    """
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))


def _layer_widths(model: str, num_features: int, hidden_sizes: Sequence[int]) -> list[int]:
    if model not in MODEL_KINDS:
        raise FednodeValueError(f"model must be one of {MODEL_KINDS}, got {model!r}")
    if model == "logreg" and hidden_sizes:
        raise FednodeValueError(f"logreg takes no hidden_sizes, got {tuple(hidden_sizes)}")
    if model == "mlp" and not hidden_sizes:
        raise FednodeValueError("mlp needs at least one hidden size")
    widths = [int(num_features), *(int(size) for size in hidden_sizes), 1]
    if min(widths) < 1:
        raise FednodeValueError(f"layer widths must be >= 1, got {widths}")
    return widths


def _init_dense(key: jax.Array, fan_in: int, fan_out: int) -> dict[str, jax.Array]:
    kernel = jax.nn.initializers.glorot_normal()(key, (fan_in, fan_out), jnp.float32)
    return {"kernel": kernel, "bias": jnp.zeros((fan_out,), jnp.float32)}


def _dense(layer: Mapping[str, jax.Array], x: jax.Array) -> jax.Array:
    return x @ layer["kernel"] + layer["bias"][None, :]
