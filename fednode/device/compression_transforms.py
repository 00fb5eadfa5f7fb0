"""Device: the compression update transforms (top-k with error feedback, int8, packing).

``top_k`` and ``quantize_int8`` produce per-tensor parts; ``pack_compressed`` turns them into
the packed flat-model layout of ``fednode.update.packing`` (what goes on chain), so it is
always the last step. ``fednode.device.transforms.transforms_for_spec`` chains them as a task's
``spec.compression`` says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from fednode.codec import flatten_params, unflatten_params
from fednode.device.update_transform import EmptyState, UpdateTransform
from fednode.errors import FednodeValueError
from fednode.update.entropy import entropy_code
from fednode.update.packing import encode_int8, encode_top_k, pack_delta

__all__ = [
    "DEFAULT_TOPK_FRACTION",
    "ErrorFeedbackState",
    "PackState",
    "pack_compressed",
    "quantize_int8",
    "top_k",
]

DEFAULT_TOPK_FRACTION = 0.1


class ErrorFeedbackState(NamedTuple):
    """Top-k's residual: what earlier rounds dropped, added back before the next selection."""

    residual: dict[str, np.ndarray] | None


class PackState(NamedTuple):
    """The model layout (flat ``name -> shape``) that ``pack_compressed`` packs against."""

    template: dict[str, tuple[int, ...]]


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
    """Packs per-tensor int8 / top-k parts into the on-chain flat-model layout (``pack_delta``),
    with the int8 codes entropy-coded (``qz``) whenever that is smaller (``entropy_code``).

    ``init`` records the dense delta's layout (the global model's), so it must see the
    uncompressed delta, as ``chain`` and ``apply_transforms`` arrange. Always the last step.

    Example:
      >>> from fednode.device.update_transform import chain
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
        return entropy_code(pack_delta(delta, state.template)), state

    return UpdateTransform(init, update)


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
