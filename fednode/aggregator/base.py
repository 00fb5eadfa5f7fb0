"""Aggregator: the shared, bit-reproducible arithmetic every aggregation rule is built from.

Rules see deltas as flattened ``{dotted name: float32 array}`` dicts (checked against one
``ParamTemplate``) and do their work in float64 with one numpy ufunc call per elementwise
operation, in ledger order, then round once to float32. Elementwise IEEE add, multiply, divide
and square root are correctly rounded on every platform; reductions (``np.sum``, ``np.mean``,
BLAS) are not used, because their summation order depends on the build and the CPU. Where a
rule needs a scalar over many coordinates (a norm, a distance) it uses ``math.fsum``, whose
result is the correctly rounded exact sum and so independent of any order. Subnormal float32
values are flushed to zero on the way in and out (see ``rules.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from fednode.codec import flatten_params
from fednode.errors import CodecError, UpdateRejectedError
from fednode.update import RejectReason

__all__ = [
    "Aggregator",
    "Flat",
    "ParamTemplate",
    "check_delta",
    "check_weight",
    "flat_sq_norm",
    "param_template",
    "scale_flat",
    "to_float32",
    "to_float64",
    "weighted_sum",
]

ParamTemplate = tuple[tuple[str, tuple[int, ...]], ...]
"""Sorted dotted names and shapes of a float32 parameter set."""

Flat = dict[str, np.ndarray]
"""A flattened delta: sorted dotted names -> arrays."""

_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


class Aggregator(NamedTuple):
    """A stateful aggregation rule as a pair of pure functions.

    ``apply(deltas, weights, state) -> (delta, state)``: decoded deltas in ledger order, their
    example counts, and the state after the previous version.
    """

    init: Callable[[], Any]
    apply: Callable[..., tuple[dict[str, Any], Any]]


def param_template(params: Mapping[str, Any]) -> ParamTemplate:
    """Sorted names and shapes of a float32 parameter set.

    Raises:
      UpdateRejectedError: if a leaf is not float32 or a name is malformed.

    Example:
      >>> param_template({"b": np.zeros((2, 3), np.float32), "a": np.zeros(1, np.float32)})
      (('a', (1,)), ('b', (2, 3)))
    """
    flat = _flatten(params)
    for name, array in flat.items():
        if array.dtype != np.float32:
            detail = f"{name} is {array.dtype}, not float32"
            raise UpdateRejectedError(RejectReason.WRONG_DTYPE, detail)
    return tuple((name, tuple(array.shape)) for name, array in flat.items())


def check_delta(delta: Mapping[str, Any], template: ParamTemplate) -> Flat:
    """Validates one delta against a template; returns its flattened arrays.

    Raises:
      UpdateRejectedError: with reason ``bad_payload``, ``wrong_keys``, ``wrong_dtype``,
        ``wrong_shape`` or ``not_finite`` (``fednode.update.RejectReason``).

    Example:
      >>> check_delta({"w": np.zeros(2, np.float32)}, (("w", (2,)),))["w"].shape
      (2,)
    """
    flat = _flatten(delta)
    names = tuple(name for name, _ in template)
    if tuple(flat) != names:
        raise UpdateRejectedError(RejectReason.WRONG_KEYS, f"names {list(flat)} != {list(names)}")
    for name, shape in template:
        array = flat[name]
        if array.dtype != np.float32:
            detail = f"{name} is {array.dtype}, not float32"
            raise UpdateRejectedError(RejectReason.WRONG_DTYPE, detail)
        if array.shape != shape:
            detail = f"{name} is {array.shape}, not {shape}"
            raise UpdateRejectedError(RejectReason.WRONG_SHAPE, detail)
        if not np.all(np.isfinite(array)):
            raise UpdateRejectedError(RejectReason.NOT_FINITE, f"{name} holds NaN or infinity")
    return flat


def check_weight(weight: Any) -> int:
    """Validates an example count: an int (not a bool) >= 1.

    Raises:
      UpdateRejectedError: with reason ``bad_num_examples``.

    Example:
      >>> check_weight(3)
      3
    """
    if isinstance(weight, bool) or not isinstance(weight, int | np.integer) or weight < 1:
        detail = f"num_examples must be an int >= 1, got {weight!r}"
        raise UpdateRejectedError(RejectReason.BAD_NUM_EXAMPLES, detail)
    return int(weight)


def weighted_sum(flats: Sequence[Flat], factors: Sequence[float], template: ParamTemplate) -> Flat:
    """``sum_i factors_i * flats_i`` sequentially in float64 (ledger order), as float32.

    Example:
      >>> out = weighted_sum([{"w": np.ones(2, np.float32)}] * 2, [0.25, 0.5], (("w", (2,)),))
      >>> out["w"].tolist()
      [0.75, 0.75]
    """
    total: Flat = {}
    for name, shape in template:
        acc = np.zeros(shape, np.float64)
        for flat, factor in zip(flats, factors, strict=True):
            acc = np.add(acc, np.multiply(to_float64(flat[name]), float(factor)))
        total[name] = to_float32(acc)
    return total


def scale_flat(flat: Flat, factor: float) -> Flat:
    """``factor * flat`` computed in float64 and rounded once to float32.

    Example:
      >>> scale_flat({"w": np.array([2.0], np.float32)}, 0.5)["w"].tolist()
      [1.0]
    """
    return {name: to_float32(np.multiply(to_float64(a), float(factor))) for name, a in flat.items()}


def flat_sq_norm(flat: Flat) -> float:
    """Squared L2 norm over every tensor: ``math.fsum`` of float64 squares (order-free, exact).

    Example:
      >>> flat_sq_norm({"a": np.array([3.0], np.float32), "b": np.array([4.0], np.float32)})
      25.0
    """
    squares = [np.multiply(w, w).ravel() for w in (to_float64(a) for a in flat.values())]
    return math.fsum(x for part in squares for x in part.tolist())


def to_float64(array: np.ndarray) -> np.ndarray:
    """Widens float32 to float64, subnormal inputs flushed to zero (independent of DAZ mode).

    Example:
      >>> to_float64(np.array([1e-40], np.float32)).tolist()
      [0.0]
    """
    wide = np.asarray(array, np.float32).astype(np.float64)
    return np.where(np.abs(wide) < _FLOAT32_TINY, 0.0, wide)


def to_float32(array: np.ndarray) -> np.ndarray:
    """Rounds float64 to float32 once, results below the float32 normal range flushed to zero.

    Example:
      >>> to_float32(np.array([0.1])).dtype
      dtype('float32')
    """
    flushed = np.where(np.abs(array) < _FLOAT32_TINY, 0.0, array)
    return np.ascontiguousarray(flushed.astype(np.float32))


def _flatten(params: Mapping[str, Any]) -> Flat:
    try:
        return flatten_params(params)
    except CodecError as exc:
        raise UpdateRejectedError(RejectReason.BAD_PAYLOAD, str(exc)) from exc
