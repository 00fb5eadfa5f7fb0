"""Edge: checks one device delta against its task before the edge stores and submits it.

The checks mirror what the contracts and the aggregator rely on: the task still takes updates,
the base version is within the task's staleness window, the payload is canonical, its tensors
have the keys, dtypes and shapes of the global model it was trained from, every value is
finite, and the L2 norm over all tensors stays within ``spec.max_update_norm``. Each refusal is
an ``UpdateRejectedError`` with a machine-readable ``reason``.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from edge_server.protocol import UpdateEnvelope
from fednode.chain.ledger import Ledger
from fednode.codec import decode_params, flatten_params
from fednode.device.compression import decompress_delta, is_compressed
from fednode.errors import CodecError, ContractRevertError, UpdateRejectedError
from fednode.types import GlobalModelRecord, TaskRecord, TaskState

__all__ = [
    "TensorSpec",
    "UpdateIntake",
    "check_delta",
    "check_num_examples",
    "check_task_accepts",
    "template_of",
]

_ACCEPTING = (TaskState.OPEN, TaskState.TRAINING)
_UNKNOWN_TASK = "TaskRegistryUnknownTask"


@dataclass(frozen=True)
class TensorSpec:
    """The dtype name and shape one tensor of a delta must have."""

    dtype: str
    shape: tuple[int, ...]


def template_of(payload: bytes) -> dict[str, TensorSpec]:
    """The per-key dtype and shape of a canonical parameter payload (a global model).

    Example:
      >>> from fednode.codec import encode_params
      >>> template_of(encode_params({"w": np.zeros((2, 3), np.float32)}))
      {'w': TensorSpec(dtype='float32', shape=(2, 3))}
    """
    flat = flatten_params(decode_params(payload))
    return {key: TensorSpec(array.dtype.name, tuple(array.shape)) for key, array in flat.items()}


def check_num_examples(num_examples: int) -> None:
    """Refuses an update trained on no examples (``bad_num_examples``).

    Example:
      >>> check_num_examples(10)
    """
    if num_examples < 1:
        raise UpdateRejectedError("bad_num_examples", "num_examples must be > 0")


def check_task_accepts(task: TaskRecord, base_version: int) -> None:
    """Refuses updates to a closed task or on a base version outside the staleness window.

    A sync task (``max_staleness == 0``) takes only the latest version; an async one takes
    ``latest - max_staleness .. latest``.

    Raises:
      UpdateRejectedError: ``task_closed``, ``unknown_base`` (newer than latest) or ``stale_base``.

    Example:
      >>> from fednode.types import TaskSpec
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2)
      >>> task = TaskRecord(1, spec, spec.digest, "0x0", TaskState.OPEN, 0, 1)
      >>> check_task_accepts(task, 0)
    """
    latest = task.latest_version
    if task.state not in _ACCEPTING:
        state = task.state.name.lower()
        raise UpdateRejectedError("task_closed", f"task {task.task_id} is {state}")
    if base_version > latest:
        detail = f"base version {base_version} is newer than the latest version {latest}"
        raise UpdateRejectedError("unknown_base", detail)
    if base_version + task.spec.max_staleness < latest:
        detail = (
            f"base version {base_version} is stale: latest is {latest}, "
            f"max staleness {task.spec.max_staleness}"
        )
        raise UpdateRejectedError("stale_base", detail)


def check_delta(
    payload: bytes, template: Mapping[str, TensorSpec], *, max_norm: float, max_payload_bytes: int,
    compressed: bool = False,
) -> float:
    """Validates a delta payload against the global model's template; returns its L2 norm.

    With ``compressed`` (the task prescribes update compression), int8 / top-k encodings
    (``<name>.q`` + ``<name>.scale``, ``<name>.idx`` + ``<name>.val``) are decompressed exactly
    as the aggregator will (``fednode.device.compression.decompress_delta``) and the dense
    result is checked; without it only the dense float32 layout is accepted.

    Raises:
      UpdateRejectedError: ``payload_too_large``, ``bad_payload``, ``wrong_keys``,
        ``wrong_dtype``, ``wrong_shape``, ``not_finite`` or ``norm_too_large``.

    Example:
      >>> from fednode.codec import encode_params
      >>> payload = encode_params({"w": np.array([3.0, 4.0], np.float32)})
      >>> check_delta(payload, template_of(payload), max_norm=10.0, max_payload_bytes=2**20)
      5.0
    """
    if len(payload) > max_payload_bytes:
        detail = f"payload is {len(payload)} bytes, the limit is {max_payload_bytes}"
        raise UpdateRejectedError("payload_too_large", detail)
    try:
        decoded = decode_params(payload)
    except CodecError as exc:
        raise UpdateRejectedError("bad_payload", str(exc)) from exc
    if compressed and is_compressed(decoded):
        decoded = decompress_delta(decoded, {key: spec.shape for key, spec in template.items()})
    flat = flatten_params(decoded)
    _check_layout(flat, template)
    norm = _l2_norm(flat)
    if norm > max_norm:
        raise UpdateRejectedError("norm_too_large", f"L2 norm {norm:.6g} exceeds {max_norm:.6g}")
    return norm


class UpdateIntake:
    """Validates envelopes against the ledger's view of their task.

    Global model records never change once committed, so they are read once and cached;
    the task record (state, latest version) is read on every request.

    Args:
      ledger: any Ledger (only reads are used).
      max_payload_bytes: largest payload accepted.
    """

    def __init__(self, ledger: Ledger, *, max_payload_bytes: int) -> None:
        self._ledger = ledger
        self._max_payload_bytes = max_payload_bytes
        self._lock = threading.Lock()
        self._models: dict[tuple[int, int], GlobalModelRecord] = {}
        self._templates: dict[tuple[int, int], dict[str, TensorSpec]] = {}

    def validate(self, envelope: UpdateEnvelope) -> float:
        """Runs every check on one envelope; returns the delta's L2 norm.

        Raises:
          UpdateRejectedError: the first check that fails (see module docstring).
          ChainError: the ledger could not be read.
        """
        check_num_examples(envelope.num_examples)
        task = self.task(envelope.task_id)
        check_task_accepts(task, envelope.base_version)
        template = self.template(envelope.task_id, envelope.base_version)
        return check_delta(
            envelope.payload,
            template,
            max_norm=task.spec.max_update_norm,
            max_payload_bytes=self._max_payload_bytes,
            compressed=bool(task.spec.compression),
        )

    def task(self, task_id: int) -> TaskRecord:
        """Reads a task from the ledger; an unknown id raises ``unknown_task``."""
        with _unknown_task_refused(task_id):
            return self._ledger.get_task(task_id)

    def global_model(self, task_id: int, version: int) -> GlobalModelRecord:
        """Global model ``version`` of a task (cached); a missing one raises ``unknown_version``."""
        key = (task_id, version)
        with self._lock:
            if key in self._models:
                return self._models[key]
        with _unknown_task_refused(task_id):
            records = self._ledger.read_global_models(task_id)
        with self._lock:
            self._models.update({(task_id, r.version): r for r in records})
            if key not in self._models:
                detail = f"task {task_id} has no global model version {version}"
                raise UpdateRejectedError("unknown_version", detail)
            return self._models[key]

    def template(self, task_id: int, version: int) -> dict[str, TensorSpec]:
        """Per-key dtype and shape of global model ``version`` (cached)."""
        key = (task_id, version)
        with self._lock:
            cached = self._templates.get(key)
        if cached is None:
            cached = template_of(self.global_model(task_id, version).payload)
            with self._lock:
                self._templates[key] = cached
        return cached


@contextlib.contextmanager
def _unknown_task_refused(task_id: int) -> Iterator[None]:
    try:
        yield
    except ContractRevertError as exc:
        if exc.name != _UNKNOWN_TASK:
            raise
        raise UpdateRejectedError("unknown_task", f"no task {task_id} on the ledger") from exc


def _check_layout(flat: Mapping[str, np.ndarray], template: Mapping[str, TensorSpec]) -> None:
    missing, extra = sorted(set(template) - set(flat)), sorted(set(flat) - set(template))
    if missing or extra:
        raise UpdateRejectedError("wrong_keys", f"missing tensors {missing}, unexpected {extra}")
    for key, expected in template.items():
        array = flat[key]
        if array.dtype.name != expected.dtype:
            detail = f"{key}: dtype {array.dtype.name}, expected {expected.dtype}"
            raise UpdateRejectedError("wrong_dtype", detail)
        if tuple(array.shape) != expected.shape:
            detail = f"{key}: shape {tuple(array.shape)}, expected {expected.shape}"
            raise UpdateRejectedError("wrong_shape", detail)
        if not np.all(np.isfinite(array)):
            raise UpdateRejectedError("not_finite", f"{key} holds NaN or infinite values")


def _l2_norm(flat: Mapping[str, np.ndarray]) -> float:
    with np.errstate(over="ignore"):  # an overflowing square is an infinite norm: refused
        squares = [float(np.sum(np.square(a.astype(np.float64)))) for a in flat.values()]
    return math.sqrt(math.fsum(squares))
