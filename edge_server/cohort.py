"""Edge: cohort aggregation math: N devices' deltas become one weighted-mean update (pure).

A task opts in with ``spec.extra["edge_cohort"] = {"size": N, "secure": bool}`` (optional
``threshold`` and ``min_size``, secure only, and ``timeout_s``). The edge then collects N
devices' deltas for one (task, base version) and submits one update: the mean of the deltas
weighted by ``num_examples``, with ``num_examples`` the cohort total and ``epsilon_micro`` the
largest of the members' (the members' data are disjoint, so their spends compose in parallel).

With ``secure`` the devices send masked fixed-point vectors (edge_server.secagg): each device
encodes ``n_i / N_total * delta_i`` at the cohort's ``scale``, so the survivors' sum decodes to
``sum_S n_i delta_i / N_total`` and the edge rescales it by ``N_total / N_S``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np

from edge_server.intake import TensorSpec
from edge_server.secagg import choose_scale, dequantize
from fednode.codec import decode_params, encode_params, flatten_params, unflatten_params
from fednode.errors import CodecError, UpdateRejectedError
from fednode.types import TaskSpec

__all__ = [
    "COHORT_KEY",
    "CohortConfig",
    "MIN_SECURE_INPUTS",
    "cohort_config",
    "payload_from_vector",
    "plain_mean_payload",
    "secure_mean_payload",
    "secure_scale",
    "vector_from_params",
    "vector_size",
]

COHORT_KEY = "edge_cohort"
_MAX_SIZE = 256
MIN_SECURE_INPUTS = 3
"""Fewest masked inputs a secure cohort's sum may hold: the sum goes on chain, and a sum of two
tells each of the two the other's delta."""
_KEYS = frozenset({"size", "secure", "threshold", "min_size", "timeout_s"})


@dataclass(frozen=True)
class CohortConfig:
    """How one task's cohorts are formed at the edge.

    Attributes:
      size: devices per cohort (N).
      secure: whether devices mask their inputs (double masking + Shamir dropout recovery).
      threshold: Shamir threshold t (secure only): shares needed to rebuild a mask key or a
        self-mask seed; more than half of ``size``, so the edge cannot gather t shares of both
        secrets of one device from honest survivors (each reveals one kind per peer).
      min_size: fewest devices a secure cohort may hold at any round, and fewest masked inputs
        its sum may hold (at least :data:`MIN_SECURE_INPUTS`).
      timeout_s: how long a secure cohort waits in each round before it declares the silent
        devices dropped (or fails).
    """

    size: int
    secure: bool = False
    threshold: int = 1
    min_size: int = 1
    timeout_s: float = 60.0

    @property
    def min_inputs(self) -> int:
        """Fewest masked inputs (and consistency signatures, reveals) a secure cohort needs."""
        return max(self.threshold, self.min_size)


def cohort_config(spec: TaskSpec) -> CohortConfig | None:
    """The task's cohort settings, or None when devices' updates go on chain one by one.

    A secure cohort needs ``size >= 3``, ``size // 2 < threshold <= size`` (default
    ``size // 2 + 1``) and ``3 <= min_size <= size`` (default ``max(3, threshold)``).

    Raises:
      UpdateRejectedError: ``bad_cohort`` when ``extra["edge_cohort"]`` is malformed.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2,
      ...                 extra={"edge_cohort": {"size": 4, "secure": True}})
      >>> cohort_config(spec)
      CohortConfig(size=4, secure=True, threshold=3, min_size=3, timeout_s=60.0)
    """
    raw = spec.extra.get(COHORT_KEY)
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) - _KEYS:
        raise UpdateRejectedError("bad_cohort", f"{COHORT_KEY} must be an object of known keys")
    size, secure = raw.get("size"), raw.get("secure", False)
    if not _is_int(size) or not 1 <= size <= _MAX_SIZE or not isinstance(secure, bool):
        raise UpdateRejectedError("bad_cohort", f"size must be 1..{_MAX_SIZE}, secure a bool")
    timeout_s = raw.get("timeout_s", 60.0)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
        raise UpdateRejectedError("bad_cohort", "timeout_s must be a number > 0")
    if not secure:
        if set(raw) & {"threshold", "min_size"}:
            raise UpdateRejectedError("bad_cohort", "threshold and min_size are for secure cohorts")
        return CohortConfig(size, False, size, size, float(timeout_s))
    threshold, min_size = _secure_bounds(raw, size)
    return CohortConfig(size, True, threshold, min_size, float(timeout_s))


def _secure_bounds(raw: Mapping[str, Any], size: int) -> tuple[int, int]:
    if size < MIN_SECURE_INPUTS:
        raise UpdateRejectedError("bad_cohort", "a secure cohort needs at least 3 devices")
    threshold = raw.get("threshold", size // 2 + 1)
    if not _is_int(threshold) or not size // 2 < threshold <= size:
        raise UpdateRejectedError(
            "bad_cohort", f"threshold must be more than half of the cohort: {size // 2 + 1}..{size}"
        )
    min_size = raw.get("min_size", max(MIN_SECURE_INPUTS, threshold))
    if not _is_int(min_size) or not MIN_SECURE_INPUTS <= min_size <= size:
        raise UpdateRejectedError("bad_cohort", f"min_size must be in {MIN_SECURE_INPUTS}..{size}")
    return threshold, min_size


def secure_scale(spec: TaskSpec) -> float:
    """Fixed-point scale of a secure cohort: no coordinate of the weighted sum exceeds the
    task's ``max_update_norm`` (weights sum to 1 and every delta respects the norm bound).

    Example:
      >>> secure_scale(TaskSpec(name="t", data_schema="s", num_features=2,
      ...                       max_update_norm=5.0)) == 2.0**27
      True
    """
    return choose_scale(spec.max_update_norm)


def vector_size(template: Mapping[str, TensorSpec]) -> int:
    """Number of values in a delta of this template.

    Example:
      >>> vector_size({"a": TensorSpec("float32", (4, 1)), "b": TensorSpec("float32", (1,))})
      5
    """
    return sum(int(np.prod(spec.shape, dtype=np.int64)) for spec in template.values())


def vector_from_params(params: Any, template: Mapping[str, TensorSpec]) -> np.ndarray:
    """Flattens a delta to one float64 vector in sorted-key order, checking it fits the template.

    Raises:
      UpdateRejectedError: ``wrong_keys`` or ``wrong_shape``.

    Example:
      >>> vector_from_params({"w": np.ones((2,), np.float32)},
      ...                    {"w": TensorSpec("float32", (2,))}).tolist()
      [1.0, 1.0]
    """
    flat = flatten_params(params)
    if sorted(flat) != sorted(template):
        raise UpdateRejectedError("wrong_keys", f"keys {sorted(flat)}, expected {sorted(template)}")
    parts = []
    for key in sorted(template):
        if tuple(flat[key].shape) != template[key].shape:
            raise UpdateRejectedError("wrong_shape", f"{key}: shape {flat[key].shape}")
        parts.append(np.asarray(flat[key], np.float64).ravel())
    return np.concatenate(parts)


def payload_from_vector(vector: np.ndarray, template: Mapping[str, TensorSpec]) -> bytes:
    """The canonical payload of a flat vector, with the template's keys, shapes and dtypes.

    Example:
      >>> t = {"w": TensorSpec("float32", (2,))}
      >>> decode_params(payload_from_vector(np.array([1.0, 2.0]), t))["w"].tolist()
      [1.0, 2.0]
    """
    flat, offset = {}, 0
    for key in sorted(template):
        spec = template[key]
        count = int(np.prod(spec.shape, dtype=np.int64))
        flat[key] = vector[offset : offset + count].reshape(spec.shape).astype(spec.dtype)
        offset += count
    return encode_params(unflatten_params(flat))


def plain_mean_payload(
    payloads: Sequence[bytes], num_examples: Sequence[int], template: Mapping[str, TensorSpec]
) -> bytes:
    """Weighted mean (by ``num_examples``) of validated delta payloads, in member order.

    Example:
      >>> t = {"w": TensorSpec("float32", (1,))}
      >>> a, b = (payload_from_vector(np.array([v]), t) for v in (1.0, 4.0))
      >>> decode_params(plain_mean_payload([a, b], [2, 1], t))["w"].tolist()
      [2.0]
    """
    total = np.zeros(vector_size(template), np.float64)
    for payload, weight in zip(payloads, num_examples, strict=True):
        try:
            total += weight * vector_from_params(decode_params(payload), template)
        except CodecError as exc:  # stored payloads were validated; this is a corrupt store
            raise UpdateRejectedError("bad_payload", str(exc)) from exc
    return payload_from_vector(total / sum(num_examples), template)


def secure_mean_payload(
    masked_sum: np.ndarray,
    *,
    scale: float,
    cohort_examples: int,
    survivor_examples: int,
    template: Mapping[str, TensorSpec],
) -> bytes:
    """The survivors' weighted mean from their unmasked fixed-point sum.

    Example:
      >>> from edge_server.secagg import quantize
      >>> t = {"w": TensorSpec("float32", (1,))}
      >>> s = quantize(np.array([0.25]), scale=2.0**20)  # inputs weighted by n_i / 4
      >>> decode_params(secure_mean_payload(s, scale=2.0**20, cohort_examples=4,
      ...                                   survivor_examples=2, template=t))["w"].tolist()
      [0.5]
    """
    weighted = dequantize(masked_sum, scale=scale)
    return payload_from_vector(weighted * (cohort_examples / survivor_examples), template)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
