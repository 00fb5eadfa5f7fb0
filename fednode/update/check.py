"""Update: the one check every stage runs on an update before it counts (edge, aggregator, auditor).

``check_update`` decodes a payload (dense canonical bytes, or one of the packed layouts of
``packing.py``, entropy-coded or not), checks that its compression layout is the one the
task's ``spec.compression`` prescribes, that the dense delta has the global model's keys,
dtypes and shapes, that every value is finite, and that the L2 norm *after decompression* is
within ``spec.max_update_norm``. It returns the dense delta and its norm, or raises
``UpdateRejectedError`` with a ``RejectReason``. ``check_num_examples`` bounds the example
count an update claims by ``spec.max_examples``.

An edge operator can always sign ``submitUpdate`` with its own key and skip its edge server;
this is why the aggregator and the auditor run the very same check on what the ledger holds.

A task with compression also accepts the dense layout (a secure-aggregation cohort sum is
dense); a task without compression accepts the dense layout only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fednode.codec import decode_params, digest_bytes, flatten_params, unflatten_params
from fednode.errors import CodecError, UpdateRejectedError
from fednode.types import TaskSpec
from fednode.update.packing import PACKED_KEYS, PACKED_LAYOUTS, decompress_delta
from fednode.update.reasons import RejectReason

__all__ = [
    "CheckedUpdate",
    "TensorSpec",
    "check_num_examples",
    "check_payload",
    "check_privacy_spend",
    "check_update",
    "expected_layout",
    "is_finite_model",
    "l2_norm",
    "template_of",
]


@dataclass(frozen=True)
class TensorSpec:
    """The dtype name and shape one tensor of a delta must have."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class CheckedUpdate:
    """An update that passed the check: its dense float32 delta (nested) and its L2 norm."""

    delta: dict[str, Any]
    norm: float


def template_of(payload: bytes) -> dict[str, TensorSpec]:
    """The per-key dtype and shape of a canonical parameter payload (a global model).

    Example:
      >>> from fednode.codec import encode_params
      >>> template_of(encode_params({"w": np.zeros((2, 3), np.float32)}))
      {'w': TensorSpec(dtype='float32', shape=(2, 3))}
    """
    flat = flatten_params(decode_params(payload))
    return {key: TensorSpec(array.dtype.name, tuple(array.shape)) for key, array in flat.items()}


def expected_layout(compression: Sequence[str]) -> tuple[str, ...] | None:
    """The packed layout (sorted part names) a task's compression chain produces; None: dense.

    Example:
      >>> expected_layout(()), expected_layout(("int8",)), expected_layout(("topk:0.1", "int8"))
      (None, ('q', 'scale'), ('idx', 'q', 'scale'))
    """
    names = {step.partition(":")[0] for step in compression}
    if not names:
        return None
    if names == {"int8"}:
        return ("q", "scale")
    return ("idx", "q", "scale") if "int8" in names else ("idx", "val")


def check_update(
    payload: bytes, template: Mapping[str, TensorSpec], spec: TaskSpec, *,
    digest: bytes | None = None, max_payload_bytes: int | None = None,
) -> CheckedUpdate:
    """Checks one update payload against its task and the global model it is based on.

    Args:
      payload: the update's canonical bytes (as signed by the device, as held by the ledger).
      template: ``template_of`` the global model the update is based on.
      spec: the task; ``spec.compression`` and ``spec.max_update_norm`` are enforced.
      digest: the digest recorded for the payload (the ledger's), checked when given.
      max_payload_bytes: the largest payload accepted (None: no limit here; the chain has one).

    Returns:
      The dense float32 delta and its L2 norm.

    Raises:
      UpdateRejectedError: with a ``RejectReason`` (see ``check_payload``).

    Example:
      >>> from fednode.codec import encode_params
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, max_update_norm=10.0)
      >>> p = encode_params({"w": np.array([3.0, 4.0], np.float32)})
      >>> check_update(p, template_of(p), spec).norm
      5.0
    """
    return check_payload(
        payload, template, max_norm=spec.max_update_norm, compression=spec.compression,
        digest=digest, max_payload_bytes=max_payload_bytes,
    )


def check_payload(
    payload: bytes, template: Mapping[str, TensorSpec], *, max_norm: float,
    compression: Sequence[str] = (), digest: bytes | None = None,
    max_payload_bytes: int | None = None,
) -> CheckedUpdate:
    """``check_update`` with the bounds given one by one (for callers without a spec).

    Raises:
      UpdateRejectedError: ``payload_too_large``, ``digest_mismatch``, ``bad_payload``,
        ``wrong_keys``, ``wrong_dtype``, ``wrong_shape``, ``wrong_compression``,
        ``wrong_layout``, ``bad_index``, ``bad_coding``, ``bad_scale``, ``not_finite`` or
        ``norm_too_large``.

    Example:
      >>> from fednode.codec import encode_params
      >>> p = encode_params({"w": np.array([3.0, 4.0], np.float32)})
      >>> check_payload(p, template_of(p), max_norm=1.0)
      Traceback (most recent call last):
      ...
      fednode.errors.UpdateRejectedError: norm_too_large: L2 norm 5 exceeds 1
    """
    if max_payload_bytes is not None and len(payload) > max_payload_bytes:
        detail = f"payload is {len(payload)} bytes, the limit is {max_payload_bytes}"
        raise UpdateRejectedError(RejectReason.PAYLOAD_TOO_LARGE, detail)
    if digest is not None and digest_bytes(payload) != bytes(digest):
        detail = "payload does not hash to its digest"
        raise UpdateRejectedError(RejectReason.DIGEST_MISMATCH, detail)
    flat = _decode(payload)
    if set(flat) == set(template):
        dense = _check_dense(flat, template)
    elif flat and set(flat) <= PACKED_KEYS:
        dense = _unpack(flat, template, compression)
    else:
        detail = (f"tensors {sorted(flat)} are neither the model's {sorted(template)} "
                  f"nor a packed layout")
        raise UpdateRejectedError(RejectReason.WRONG_KEYS, detail)
    norm = l2_norm(dense)
    if not norm <= max_norm:
        raise UpdateRejectedError(RejectReason.NORM_TOO_LARGE,
                                  f"L2 norm {norm:.6g} exceeds {max_norm:.6g}")
    return CheckedUpdate(unflatten_params(dense), norm)


def check_num_examples(num_examples: Any, spec: TaskSpec) -> int:
    """An update's example count: an int (not a bool) in ``1 .. spec.max_examples``.

    FedAvg weighs each update by its count, so an unbounded count lets one device or edge own
    the global model.

    Raises:
      UpdateRejectedError: ``bad_num_examples`` or ``too_many_examples``.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, max_examples=100)
      >>> check_num_examples(100, spec)
      100
    """
    if isinstance(num_examples, bool) or not isinstance(num_examples, int | np.integer) \
            or num_examples < 1:
        detail = f"num_examples must be an int >= 1, got {num_examples!r}"
        raise UpdateRejectedError(RejectReason.BAD_NUM_EXAMPLES, detail)
    if num_examples > spec.max_examples:
        detail = f"num_examples {num_examples} exceeds the task's max_examples {spec.max_examples}"
        raise UpdateRejectedError(RejectReason.TOO_MANY_EXAMPLES, detail)
    return int(num_examples)


def check_privacy_spend(epsilon_micro: int, spec: TaskSpec) -> int:
    """A DP task's update declares a privacy spend > 0 (``UpdateLedger`` refuses 0 too).

    Raises:
      UpdateRejectedError: ``zero_privacy_spend``.

    Example:
      >>> check_privacy_spend(0, TaskSpec(name="t", data_schema="s", num_features=2))
      0
    """
    if spec.epsilon_budget > 0 and epsilon_micro == 0:
        detail = f"the task has an epsilon budget of {spec.epsilon_budget:g}: declare the spend"
        raise UpdateRejectedError(RejectReason.ZERO_PRIVACY_SPEND, detail)
    return epsilon_micro


def is_finite_model(payload: bytes) -> bool:
    """Whether every value of a canonical parameter payload is finite.

    Example:
      >>> from fednode.codec import encode_params
      >>> is_finite_model(encode_params({"w": np.array([1.0, np.nan], np.float32)}))
      False
    """
    flat = flatten_params(decode_params(payload))
    return all(bool(np.all(np.isfinite(a))) for a in flat.values() if a.dtype.kind == "f")


def l2_norm(flat: Mapping[str, np.ndarray]) -> float:
    """L2 norm over every tensor: ``math.fsum`` of float64 squares (exact, order-free).

    Example:
      >>> l2_norm({"a": np.array([3.0], np.float32), "b": np.array([4.0], np.float32)})
      5.0
    """
    with np.errstate(over="ignore"):  # an overflowing square is an infinite norm: refused
        squares = [float(np.sum(np.square(a.astype(np.float64)))) for a in flat.values()]
    return math.sqrt(math.fsum(squares))


def _decode(payload: bytes) -> dict[str, np.ndarray]:
    try:
        return flatten_params(decode_params(payload))
    except (CodecError, ValueError) as exc:
        raise UpdateRejectedError(RejectReason.BAD_PAYLOAD, str(exc)) from exc


def _check_dense(
    flat: Mapping[str, np.ndarray], template: Mapping[str, TensorSpec]
) -> dict[str, np.ndarray]:
    for key, expected in sorted(template.items()):
        array = flat[key]
        if array.dtype.name != expected.dtype:
            detail = f"{key}: dtype {array.dtype.name}, expected {expected.dtype}"
            raise UpdateRejectedError(RejectReason.WRONG_DTYPE, detail)
        if tuple(array.shape) != expected.shape:
            detail = f"{key}: shape {tuple(array.shape)}, expected {expected.shape}"
            raise UpdateRejectedError(RejectReason.WRONG_SHAPE, detail)
        if not np.all(np.isfinite(array)):
            raise UpdateRejectedError(RejectReason.NOT_FINITE, f"{key} holds NaN or infinity")
    return {key: flat[key] for key in sorted(template)}


def _unpack(
    flat: Mapping[str, np.ndarray], template: Mapping[str, TensorSpec], compression: Sequence[str]
) -> dict[str, np.ndarray]:
    """The dense delta of a packed payload whose layout is the one the task prescribes."""
    layout = tuple(sorted(name.removesuffix("z") for name in flat))
    expected = expected_layout(compression)
    if layout in PACKED_LAYOUTS and layout != expected:
        wanted = "the dense layout" if expected is None else f"packed {list(expected)}"
        detail = (f"packed {list(layout)}, but the task's compression {list(compression)} "
                  f"prescribes {wanted}")
        raise UpdateRejectedError(RejectReason.WRONG_COMPRESSION, detail)
    if any(spec.dtype != "float32" for spec in template.values()):
        raise UpdateRejectedError(RejectReason.WRONG_LAYOUT, "only float32 models are packed")
    shapes = {key: spec.shape for key, spec in template.items()}
    dense = flatten_params(decompress_delta(unflatten_params(dict(flat)), shapes))
    if not all(bool(np.all(np.isfinite(a))) for a in dense.values()):
        raise UpdateRejectedError(RejectReason.NOT_FINITE, "the decompressed delta is not finite")
    return dense
