"""Device: the pure JAX models a task can name (logistic regression, a small MLP, a 1D-CNN).

Parameters are nested dicts of float32 arrays whose names contain no dots, so they go through
``fednode.codec`` unchanged: ``{"dense_0": {"kernel", "bias"}, ..., "output": {"kernel", "bias"}}``
(a logistic regression has only ``output``). ``logreg`` and ``mlp`` map ``(n, num_features)``
float32 inputs to ``(n,)`` logits of the positive class (binary tasks).

``cnn1d`` (multiclass, for sensor time series) maps ``(n, channels, steps)`` inputs (channels =
``num_features``) to ``(n, num_classes)`` logits: ``conv_i`` layers (kernel ``(out, in, width)``,
"SAME" padding, stride 1, ReLU; widths = ``hidden_sizes``), global average pooling over time, then
``output`` (dense to the classes). The output's rank tells binary from multiclass everywhere else
(loss, metrics). ``model_options(spec)`` reads ``num_classes`` / ``kernel_size`` from the spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from fednode.errors import FednodeValueError
from fednode.types import MODEL_KINDS, TaskSpec

__all__ = ["DEFAULT_KERNEL_SIZE", "apply_model", "count_params", "init_params", "model_options"]

_OUTPUT = "output"
_CONV = "conv_{}"
_CONV_DIMENSIONS = ("NCH", "OIH", "NCH")
DEFAULT_KERNEL_SIZE = 5


def init_params(
    key: jax.Array, *, model: str, num_features: int, hidden_sizes: Sequence[int] = (),
    num_classes: int = 2, kernel_size: int = DEFAULT_KERNEL_SIZE,
) -> dict[str, dict[str, jax.Array]]:
    """Initializes a model's parameters: Glorot-normal kernels, zero biases, all float32.

    Args:
      key: PRNG key.
      model: ``"logreg"`` (``hidden_sizes`` must be empty), ``"mlp"`` (at least one hidden
        layer) or ``"cnn1d"`` (at least one conv layer).
      num_features: input width (input channels for ``cnn1d``).
      hidden_sizes: widths of the MLP's ReLU hidden layers (the CNN's conv channels).
      num_classes: ``cnn1d`` only: output classes (>= 2).
      kernel_size: ``cnn1d`` only: conv kernel width.

    Returns:
      Nested dict ``layer -> {"kernel": (in, out), "bias": (out,)}``.

    Raises:
      FednodeValueError: on an unknown model or inconsistent sizes.

    Example:
      >>> params = init_params(jax.random.key(0), model="mlp", num_features=10, hidden_sizes=(8,))
      >>> sorted(params), params["dense_0"]["kernel"].shape
      (['dense_0', 'output'], (10, 8))
    """
    if model == "cnn1d":
        return _init_cnn(key, num_features, hidden_sizes, num_classes, kernel_size)
    widths = _layer_widths(model, num_features, hidden_sizes)
    names = [f"dense_{i}" for i in range(len(widths) - 2)] + [_OUTPUT]
    keys = jax.random.split(key, len(names))
    layers = zip(names, keys, widths[:-1], widths[1:], strict=True)
    return {
        name: _init_dense(layer_key, fan_in, fan_out) for name, layer_key, fan_in, fan_out in layers
    }


def apply_model(params: Mapping[str, Any], x: jax.Array) -> jax.Array:
    """Computes ``(n,)`` logits (``(n, classes)`` for a CNN); hidden layers use ReLU.

    Jit- and grad-friendly; the layer names say which model the parameters belong to.

    Example:
      >>> params = init_params(jax.random.key(0), model="logreg", num_features=3)
      >>> apply_model(params, jnp.ones((2, 3), jnp.float32)).shape
      (2,)
      >>> cnn = init_params(jax.random.key(0), model="cnn1d", num_features=6, hidden_sizes=(4,),
      ...                   num_classes=4)
      >>> apply_model(cnn, jnp.ones((2, 6, 100), jnp.float32)).shape
      (2, 4)
    """
    if _CONV.format(0) in params:
        return _apply_cnn(params, x)
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


def model_options(spec: TaskSpec) -> dict[str, Any]:
    """The ``init_params`` keywords a task spec selects (CNN options are typed spec fields).

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=6, model="cnn1d",
      ...                 hidden_sizes=(8,), num_classes=4)
      >>> sorted(model_options(spec).items())[:2]
      [('hidden_sizes', (8,)), ('kernel_size', 5)]
    """
    options: dict[str, Any] = {"model": spec.model, "num_features": spec.num_features,
                               "hidden_sizes": tuple(spec.hidden_sizes)}
    if spec.model == "cnn1d":
        options["num_classes"] = spec.num_classes
        options["kernel_size"] = spec.kernel_size
    return options


def _init_cnn(
    key: jax.Array, channels: int, conv_sizes: Sequence[int], num_classes: int, kernel_size: int
) -> dict[str, dict[str, jax.Array]]:
    widths = [int(channels), *(int(size) for size in conv_sizes)]
    if len(widths) < 2 or min(widths) < 1 or num_classes < 2 or kernel_size < 1:
        raise FednodeValueError(
            f"cnn1d needs channels and conv widths >= 1 (at least one conv layer), "
            f"num_classes >= 2 and kernel_size >= 1; got {widths}, {num_classes}, {kernel_size}"
        )
    keys = jax.random.split(key, len(widths))
    init = jax.nn.initializers.glorot_normal(in_axis=1, out_axis=0)
    params = {
        _CONV.format(i): {
            "kernel": init(keys[i], (fan_out, fan_in, kernel_size), jnp.float32),
            "bias": jnp.zeros((fan_out,), jnp.float32),
        }
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True))
    }
    params[_OUTPUT] = _init_dense(keys[-1], widths[-1], num_classes)
    return params


def _apply_cnn(params: Mapping[str, Any], x: jax.Array) -> jax.Array:
    hidden = jnp.asarray(x, jnp.float32)
    for index in range(len(params) - 1):
        layer = params[_CONV.format(index)]
        hidden = jax.lax.conv_general_dilated(
            hidden, layer["kernel"], window_strides=(1,), padding="SAME",
            dimension_numbers=_CONV_DIMENSIONS,
        )
        hidden = jax.nn.relu(hidden + layer["bias"][None, :, None])
    return _dense(params[_OUTPUT], jnp.mean(hidden, axis=2))


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
