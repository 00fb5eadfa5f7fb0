"""Edge: cohort aggregation math: N devices' deltas become one weighted-mean update (pure).

A task opts in with ``spec.edge_cohort = EdgeCohort(size=N, secure=bool)`` (optional
``threshold`` and ``min_size``, secure only, and ``timeout_s``; ``fednode.types`` checks
them). The edge then collects N
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
from typing import Any

import numpy as np

from edge_server.intake import TensorSpec
from edge_server.secagg import choose_scale, dequantize
from fednode.codec import decode_params, encode_params, flatten_params, unflatten_params
from fednode.errors import CodecError, UpdateRejectedError
from fednode.types import MIN_SECURE_INPUTS, TaskSpec

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
"""The task spec field (and job-file table) naming a task's cohorts."""


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

    ``TaskSpec.edge_cohort`` is checked when the spec is built (``fednode.types.EdgeCohort``):
    a secure cohort has ``size >= 3``, ``size // 2 < threshold <= size`` (default
    ``size // 2 + 1``) and ``3 <= min_size <= size`` (default ``max(3, threshold)``); a spec
    read from the chain that breaks these never becomes a TaskSpec.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2,
      ...                 edge_cohort={"size": 4, "secure": True})
      >>> cohort_config(spec)
      CohortConfig(size=4, secure=True, threshold=3, min_size=3, timeout_s=60.0)
    """
    cohort = spec.edge_cohort
    if cohort is None:
        return None
    threshold, min_size = cohort.bounds()
    return CohortConfig(cohort.size, cohort.secure, threshold, min_size, cohort.timeout_s)


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
