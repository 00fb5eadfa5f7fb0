"""Edge: checks one device delta against its task before the edge stores and submits it.

The task must still take updates and the base version must be within the task's staleness
window; the delta itself goes through the one check every stage runs
(``fednode.update.check_update``: canonical payload, compression layout, the global model's
keys, dtypes and shapes, finiteness, the L2 norm after decompression) and the example count
through ``fednode.update.check_num_examples`` (``spec.max_examples``). Each refusal is an
``UpdateRejectedError`` with a machine-readable ``reason``, the same for a dense and a
compressed delta.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence

from fednode.chain.ledger import Ledger
from fednode.errors import ContractRevertError, UpdateRejectedError
from fednode.types import GlobalModelRecord, TaskRecord, TaskState
from fednode.update import (
    TensorSpec,
    check_num_examples,
    check_payload,
    check_privacy_spend,
    check_update,
    template_of,
)
from fednode.update.envelope import UpdateEnvelope

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
    compression: Sequence[str] = (),
) -> float:
    """Validates a delta payload against the global model's template; returns its L2 norm.

    The edge's name for ``fednode.update.check_payload`` where no task spec is at hand (a
    secure-aggregation cohort's sum): a packed layout is accepted only if ``compression``
    prescribes it.

    Raises:
      UpdateRejectedError: any ``fednode.update.RejectReason`` of ``check_payload``.

    Example:
      >>> import numpy as np
      >>> from fednode.codec import encode_params
      >>> payload = encode_params({"w": np.array([3.0, 4.0], np.float32)})
      >>> check_delta(payload, template_of(payload), max_norm=10.0, max_payload_bytes=2**20)
      5.0
    """
    checked = check_payload(payload, template, max_norm=max_norm, compression=compression,
                            max_payload_bytes=max_payload_bytes)
    return checked.norm


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
        task = self.task(envelope.task_id)
        check_num_examples(envelope.num_examples, task.spec)
        check_privacy_spend(envelope.epsilon_micro, task.spec)
        check_task_accepts(task, envelope.base_version)
        template = self.template(envelope.task_id, envelope.base_version)
        checked = check_update(
            envelope.payload, template, task.spec, max_payload_bytes=self._max_payload_bytes
        )
        return checked.norm

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

