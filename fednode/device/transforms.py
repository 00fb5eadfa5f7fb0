"""Device: chainable update transforms (clip, Gaussian noise, top-k, int8) applied to a delta.

Each transform is an optax-style ``UpdateTransform(init, update)``: ``init(delta) -> state`` and
``update(delta, state, *, key) -> (delta, state)``, pure, with an explicit PRNG ``key``
(``None`` is fine for transforms without randomness). ``chain`` composes them in order, like
``optax.chain``. ``transforms_for_spec`` builds the chain a task prescribes: clip to
``spec.clip_norm`` and add ``N(0, (noise_multiplier * clip_norm)^2)`` noise (update-level DP,
when ``spec.dp_unit`` is ``"update"``, the default), then the ``spec.compression``
steps (``"topk"`` or ``"topk:<fraction>"``, then ``"int8"``) and ``pack_compressed``, which
turns their per-tensor parts into the packed flat-model layout of ``fednode.update.packing``
(what goes on chain). Deltas are nested dicts of float32 numpy arrays.

The protocol and ``chain`` live in ``fednode.device.update_transform``, the compression steps in
``fednode.device.compression_transforms``; this module re-exports both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from fednode.codec import flatten_params, unflatten_params
from fednode.device.compression_transforms import (
    DEFAULT_TOPK_FRACTION,
    ErrorFeedbackState,
    PackState,
    pack_compressed,
    quantize_int8,
    top_k,
)
from fednode.device.update_transform import EmptyState, UpdateTransform, chain
from fednode.errors import FednodeValueError
from fednode.types import TaskSpec

__all__ = [
    "DEFAULT_TOPK_FRACTION",
    "EmptyState",
    "ErrorFeedbackState",
    "PackState",
    "UpdateTransform",
    "add_gaussian_noise",
    "apply_transforms",
    "chain",
    "clip_update_norm",
    "pack_compressed",
    "quantize_int8",
    "top_k",
    "transforms_for_spec",
    "update_norm",
]


def update_norm(delta: Mapping[str, Any]) -> float:
    """L2 norm over every tensor of a float delta, in float64.

    Example:
      >>> update_norm({"a": np.array([3.0], np.float32), "b": {"c": np.array([4.0], np.float32)}})
      5.0
    """
    squares = [float(np.dot(a.ravel().astype(np.float64), a.ravel().astype(np.float64)))
               for a in flatten_params(delta).values()]
    return math.sqrt(math.fsum(squares))


def clip_update_norm(clip_norm: float) -> UpdateTransform:
    """Scales the delta down to L2 norm ``clip_norm`` if it is longer (the DP sensitivity).

    Example:
      >>> t = clip_update_norm(1.0)
      >>> d = {"w": np.array([3.0, 4.0], np.float32)}
      >>> t.update(d, t.init(d), key=None)[0]["w"].tolist()
      [0.6000000238418579, 0.800000011920929]
    """
    if not clip_norm > 0:
        raise FednodeValueError(f"clip_norm must be > 0, got {clip_norm}")

    def update(delta, state, *, key=None):
        del key
        norm = update_norm(delta)
        if norm <= clip_norm:
            return delta, state
        factor = clip_norm / norm
        return _map(lambda a: (a.astype(np.float64) * factor).astype(np.float32), delta), state

    return UpdateTransform(lambda delta: EmptyState(), update)


def add_gaussian_noise(stddev: float) -> UpdateTransform:
    """Adds i.i.d. ``N(0, stddev^2)`` noise to every coordinate (drawn with ``key``).

    Example:
      >>> t = add_gaussian_noise(0.5)
      >>> d = {"w": np.zeros(3, np.float32)}
      >>> t.update(d, t.init(d), key=jax.random.key(0))[0]["w"].shape
      (3,)
    """
    if stddev < 0:
        raise FednodeValueError(f"noise stddev must be >= 0, got {stddev}")

    def update(delta, state, *, key=None):
        if stddev == 0:
            return delta, state
        if key is None:
            raise FednodeValueError("add_gaussian_noise needs a PRNG key")
        flat = flatten_params(delta)
        keys = jax.random.split(key, len(flat))
        noisy = {
            name: (a + stddev * np.asarray(jax.random.normal(k, a.shape, np.float32))).astype(
                np.float32
            )
            for (name, a), k in zip(flat.items(), keys, strict=True)
        }
        return unflatten_params(noisy), state

    return UpdateTransform(lambda delta: EmptyState(), update)


def transforms_for_spec(spec: TaskSpec) -> UpdateTransform:
    """The device-side chain a task prescribes (privacy first, then compression).

    Raises:
      FednodeValueError: on an unknown compression step or a noise without a clip norm.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, compression=("int8",))
      >>> d = {"w": np.array([1.0], np.float32)}
      >>> t = transforms_for_spec(spec)
      >>> t.update(d, t.init(d), key=jax.random.key(0))[0]["q"].tolist()
      [127]
    """
    spec.require_fixed_noise()
    steps: list[UpdateTransform] = []
    if spec.dp_unit == "update":
        if spec.noise_multiplier > 0 and not spec.clip_norm > 0:
            raise FednodeValueError("a noise_multiplier needs a clip_norm > 0")
        if spec.clip_norm > 0:
            steps.append(clip_update_norm(spec.clip_norm))
        if spec.noise_multiplier > 0:
            steps.append(add_gaussian_noise(spec.noise_multiplier * spec.clip_norm))
    for step in spec.compression:
        steps.append(_compression_step(step))
    if spec.compression:
        steps.append(pack_compressed())
    return chain(*steps)


def apply_transforms(
    delta: Mapping[str, Any], spec: TaskSpec, *, key: jax.Array, state: Any = None
) -> tuple[dict[str, Any], Any]:
    """Runs ``transforms_for_spec(spec)`` once; pass the returned state to the next round.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2)
      >>> d = {"w": np.array([1.0], np.float32)}
      >>> apply_transforms(d, spec, key=jax.random.key(0))[0]["w"].tolist()
      [1.0]
    """
    transform = transforms_for_spec(spec)
    state = transform.init(delta) if state is None else state
    return transform.update(dict(delta), state, key=key)


def _compression_step(step: str) -> UpdateTransform:
    name, _, argument = step.partition(":")
    if name == "int8" and not argument:
        return quantize_int8()
    if name == "topk":
        return top_k(float(argument) if argument else DEFAULT_TOPK_FRACTION)
    raise FednodeValueError(f"unknown compression step {step!r}; use 'int8', 'topk[:fraction]'")


def _map(fn, delta: Mapping[str, Any]) -> dict[str, Any]:
    return unflatten_params({name: fn(a) for name, a in flatten_params(delta).items()})
