"""Device: the on-chain encoding of compressed deltas (int8, top-k) and its exact decoding.

A compressed delta keeps the model's nested names; each float32 tensor ``T`` becomes a small
dict of tensors, so the canonical codec flattens it to ``"<name>.<part>"`` keys:

==============  ==========================================================================
dense           ``T`` float32, model shape (uncompressed)
int8            ``T.q`` int8 (model shape, values in [-127, 127]), ``T.scale`` float32 (1,)
top-k           ``T.idx`` int32 (k,) strictly increasing flat indices, ``T.val`` float32 (k,)
top-k + int8    ``T.idx`` int32 (k,), ``T.q`` int8 (k,), ``T.scale`` float32 (1,)
==============  ==========================================================================

``decompress_delta`` turns any mix of these back into the dense float32 layout of the global
model: ``q * scale`` in float64, rounded once to float32, scattered into zeros for top-k. It is
exact and the same on every machine, so the aggregator and the auditor agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fednode.codec import flatten_params, unflatten_params
from fednode.errors import CodecError, UpdateRejectedError

__all__ = ["COMPRESSED_PARTS", "decompress_delta", "encode_int8", "encode_top_k", "is_compressed"]

COMPRESSED_PARTS = (("q", "scale"), ("idx", "val"), ("idx", "q", "scale"))
"""The part-name sets a compressed tensor may have (sorted)."""


def encode_int8(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per-tensor symmetric int8: ``scale = max|x| / 127``, ``q = round(x / scale)``.

    Example:
      >>> enc = encode_int8(np.array([0.5, -1.0], np.float32))
      >>> enc["q"].tolist(), enc["scale"].dtype
      ([64, -127], dtype('float32'))
    """
    x = np.asarray(values, np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    scale = np.float32(peak / 127.0) if peak > 0 else np.float32(1.0)
    q = np.clip(np.rint(x.astype(np.float64) / np.float64(scale)), -127, 127).astype(np.int8)
    return {"q": q, "scale": np.asarray([scale], np.float32)}


def encode_top_k(values: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The ``k`` largest-magnitude entries as flat indices (ascending) and float32 values.

    Example:
      >>> enc = encode_top_k(np.array([[0.1, -3.0], [2.0, 0.0]], np.float32), 2)
      >>> enc["idx"].tolist(), enc["val"].tolist()
      ([1, 2], [-3.0, 2.0])
    """
    flat = np.asarray(values, np.float32).ravel()
    k = max(1, min(int(k), flat.size))
    chosen = np.sort(np.argsort(-np.abs(flat), kind="stable")[:k])
    return {"idx": chosen.astype(np.int32), "val": flat[chosen].astype(np.float32)}


def is_compressed(delta: Mapping[str, Any]) -> bool:
    """Whether a decoded delta holds any compressed tensor (an int8 or int32 leaf).

    Example:
      >>> is_compressed({"w": np.zeros(2, np.float32)})
      False
    """
    return any(a.dtype != np.float32 for a in flatten_params(delta).values())


def decompress_delta(delta: Mapping[str, Any], template: Mapping[str, tuple[int, ...]]) -> dict:
    """Dense float32 delta from a (possibly) compressed one, checked against the model layout.

    Args:
      delta: decoded payload (nested dict).
      template: the global model's flat ``name -> shape`` (float32 tensors).

    Returns:
      A nested dict of float32 arrays with exactly the template's names and shapes.

    Raises:
      UpdateRejectedError: ``wrong_layout`` (names, parts, dtypes or shapes), ``bad_index``
        (out of range, unsorted or repeated), ``bad_scale`` or ``non_finite``.

    Example:
      >>> enc = {"w": encode_int8(np.array([1.0, -0.5], np.float32))}
      >>> decompress_delta(enc, {"w": (2,)})["w"].tolist()
      [1.0, -0.5039370059967041]
    """
    try:
        flat = flatten_params(delta)
    except CodecError as exc:
        raise UpdateRejectedError("wrong_layout", str(exc)) from exc
    groups = _group(flat, template)
    dense = {name: _decode(name, parts, template[name]) for name, parts in groups.items()}
    return unflatten_params(dense)


def _group(
    flat: Mapping[str, np.ndarray], template: Mapping[str, tuple[int, ...]]
) -> dict[str, dict[str, np.ndarray]]:
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, array in flat.items():
        if key in template:
            groups.setdefault(key, {})[""] = array
            continue
        name, _, part = key.rpartition(".")
        if name not in template:
            raise UpdateRejectedError("wrong_layout", f"{key} is not a tensor of the model")
        groups.setdefault(name, {})[part] = array
    if sorted(groups) != sorted(template):
        raise UpdateRejectedError("wrong_layout", f"tensors {sorted(groups)} != {sorted(template)}")
    return groups


def _decode(name: str, parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    if "" in parts:
        return _dense(name, parts, shape)
    if tuple(sorted(parts)) not in COMPRESSED_PARTS:
        raise UpdateRejectedError("wrong_layout", f"{name}: parts {sorted(parts)}")
    values = _int8_values(name, parts) if "q" in parts else parts["val"]
    if "idx" not in parts:
        return _expect(name, values, shape)
    return _scatter(name, parts["idx"], values, shape)


def _dense(name: str, parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    if len(parts) != 1:
        raise UpdateRejectedError("wrong_layout", f"{name} is both dense and compressed")
    return _expect(name, parts[""], shape)


def _int8_values(name: str, parts: dict[str, np.ndarray]) -> np.ndarray:
    q, scale = parts["q"], parts["scale"]
    if q.dtype != np.int8 or scale.dtype != np.float32 or scale.shape != (1,):
        raise UpdateRejectedError("wrong_layout", f"{name}: q must be int8, scale float32 (1,)")
    if not (np.isfinite(scale[0]) and scale[0] > 0) or np.any(q == -128):
        raise UpdateRejectedError("bad_scale", f"{name}: scale must be finite > 0, q >= -127")
    return np.multiply(q.astype(np.float64), np.float64(scale[0])).astype(np.float32)


def _scatter(name: str, idx: np.ndarray, values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape, dtype=np.int64))
    if idx.dtype != np.int32 or idx.ndim != 1 or values.shape != idx.shape:
        raise UpdateRejectedError("wrong_layout", f"{name}: idx int32 (k,) and k values")
    if idx.size and (idx[0] < 0 or idx[-1] >= size or np.any(np.diff(idx) <= 0)):
        raise UpdateRejectedError("bad_index", f"{name}: indices must be increasing in [0, {size})")
    dense = np.zeros(size, np.float32)
    dense[idx] = _expect(name, values, values.shape)
    return dense.reshape(shape)


def _expect(name: str, values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if values.dtype != np.float32 or tuple(values.shape) != tuple(shape):
        raise UpdateRejectedError(
            "wrong_layout", f"{name} is {values.dtype}{values.shape}, expected float32{shape}"
        )
    if not np.all(np.isfinite(values)):
        raise UpdateRejectedError("non_finite", f"{name} holds NaN or infinity")
    return np.ascontiguousarray(values)
