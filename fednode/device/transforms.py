"""Device: chainable update transforms (clip, Gaussian noise, top-k, int8) applied to a delta.

Each transform is an optax-style ``UpdateTransform(init, update)``: ``init(delta) -> state`` and
``update(delta, state, *, key) -> (delta, state)``, pure, with an explicit PRNG ``key``
(``None`` is fine for transforms without randomness). ``chain`` composes them in order, like
``optax.chain``. ``transforms_for_spec`` builds the chain a task prescribes: clip to
``spec.clip_norm`` and add ``N(0, (noise_multiplier * clip_norm)^2)`` noise (update-level DP,
when ``spec.extra["dp_unit"]`` is ``"update"``, the default), then the ``spec.compression``
steps (``"topk"`` or ``"topk:<fraction>"``, then ``"int8"``) and ``pack_compressed``, which
turns their per-tensor parts into the packed flat-model layout of ``compression.py`` (what goes
on chain). Deltas are nested dicts of float32 numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from fednode.codec import flatten_params, unflatten_params
from fednode.device.compression import encode_int8, encode_top_k, pack_delta
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

DEFAULT_TOPK_FRACTION = 0.1


class EmptyState(NamedTuple):
    """State of a stateless transform."""


class ErrorFeedbackState(NamedTuple):
    """Top-k's residual: what earlier rounds dropped, added back before the next selection."""

    residual: dict[str, np.ndarray] | None


class PackState(NamedTuple):
    """The model layout (flat ``name -> shape``) that ``pack_compressed`` packs against."""

    template: dict[str, tuple[int, ...]]


class ChainState(NamedTuple):
    """The states of a chain's transforms, in order."""

    inner: tuple[Any, ...]


class UpdateTransform(NamedTuple):
    """An update transform: ``init(delta) -> state``, ``update(delta, state, *, key)``."""

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


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


def top_k(
    fraction: float = DEFAULT_TOPK_FRACTION, *, error_feedback: bool = True
) -> UpdateTransform:
    """Keeps the ``ceil(fraction * size)`` largest entries of each tensor (per-tensor sparse
    parts; ``pack_compressed`` makes the on-chain layout).

    With ``error_feedback`` the dropped remainder is carried in the state and added to the next
    delta (Stich et al., 2018), so nothing is lost for good.

    Example:
      >>> t = top_k(0.5)
      >>> d = {"w": np.array([0.1, -2.0, 0.3, 1.0], np.float32)}
      >>> out, state = t.update(d, t.init(d), key=None)
      >>> out["w"]["idx"].tolist(), state.residual["w"].tolist()
      ([1, 3], [0.10000000149011612, 0.0, 0.30000001192092896, 0.0])
    """
    if not 0 < fraction <= 1:
        raise FednodeValueError(f"top-k fraction must be in (0, 1], got {fraction}")

    def update(delta, state: ErrorFeedbackState, *, key=None):
        del key
        flat = flatten_params(delta)
        if error_feedback and state.residual is not None:
            flat = {n: (a + state.residual[n]).astype(np.float32) for n, a in flat.items()}
        encoded, residual = {}, {}
        for name, a in flat.items():
            encoded[name] = encode_top_k(a, math.ceil(fraction * a.size))
            kept = np.zeros(a.size, np.float32)
            kept[encoded[name]["idx"]] = encoded[name]["val"]
            residual[name] = (a.ravel() - kept).reshape(a.shape).astype(np.float32)
        return unflatten_params(encoded), ErrorFeedbackState(residual if error_feedback else None)

    return UpdateTransform(lambda delta: ErrorFeedbackState(None), update)


def quantize_int8() -> UpdateTransform:
    """Per-tensor int8 quantization of dense tensors and of top-k values (per-tensor parts;
    ``pack_compressed`` makes the on-chain layout).

    Example:
      >>> t = quantize_int8()
      >>> d = {"w": np.array([1.0, -0.5], np.float32)}
      >>> sorted(t.update(d, t.init(d), key=None)[0]["w"])
      ['q', 'scale']
    """

    def update(delta, state, *, key=None):
        del key
        return _quantize_tree(delta), state

    return UpdateTransform(lambda delta: EmptyState(), update)


def pack_compressed() -> UpdateTransform:
    """Packs per-tensor int8 / top-k parts into the on-chain flat-model layout (``pack_delta``).

    ``init`` records the dense delta's layout (the global model's), so it must see the
    uncompressed delta, as ``chain`` and ``apply_transforms`` arrange. Always the last step.

    Example:
      >>> t = chain(quantize_int8(), pack_compressed())
      >>> d = {"b": np.array([1.0], np.float32), "w": np.array([2.0, -1.0], np.float32)}
      >>> packed = t.update(d, t.init(d), key=None)[0]
      >>> packed["q"].tolist(), packed["scale"].tolist()
      ([127, 127, -64], [0.007874015718698502, 0.015748031437397003])
    """

    def init(delta) -> PackState:
        return PackState({n: tuple(a.shape) for n, a in flatten_params(delta).items()})

    def update(delta, state: PackState, *, key=None):
        del key
        return pack_delta(delta, state.template), state

    return UpdateTransform(init, update)


def chain(*transforms: UpdateTransform) -> UpdateTransform:
    """Applies transforms in order; each gets its own key split from ``key``.

    Example:
      >>> t = chain(clip_update_norm(1.0), quantize_int8())
      >>> d = {"w": np.array([3.0, 4.0], np.float32)}
      >>> t.update(d, t.init(d), key=jax.random.key(0))[0]["w"]["q"].tolist()
      [95, 127]
    """

    def init(delta) -> ChainState:
        return ChainState(tuple(t.init(delta) for t in transforms))

    def update(delta, state: ChainState, *, key=None):
        count = len(transforms)
        keys = [None] * count if key is None else list(jax.random.split(key, count))
        states = []
        for transform, inner, sub_key in zip(transforms, state.inner, keys, strict=True):
            delta, inner = transform.update(delta, inner, key=sub_key)
            states.append(inner)
        return delta, ChainState(tuple(states))

    return UpdateTransform(init, update)


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
    steps: list[UpdateTransform] = []
    if spec.extra.get("dp_unit", "update") == "update":
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


def _quantize_tree(tree: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in tree.items():
        if isinstance(value, Mapping) and "idx" in value and "val" in value:
            out[name] = {"idx": value["idx"], **encode_int8(value["val"])}
        elif isinstance(value, Mapping):
            out[name] = _quantize_tree(value)
        else:
            out[name] = encode_int8(np.asarray(value, np.float32))
    return out


def _map(fn, delta: Mapping[str, Any]) -> dict[str, Any]:
    return unflatten_params({name: fn(a) for name, a in flatten_params(delta).items()})
