"""Aggregator: the rule state after a committed version, kept between rounds of one process.

``replay_rule_state`` rebuilds the rule state (server optimizer moments, FedBuff's version
counter, ...) from version 1 every time it is called, so a round's cost would grow with the
number of versions. A ``RuleCheckpoint`` remembers the state after version ``v`` together with
what it was built from: the task, its spec digest and the digest and update ids of versions
``0..v``. :func:`resume_rule_state` reuses it only when that lineage is a prefix of what the
ledger holds now and replays just the versions after it; a fresh process, a version another
aggregator committed, or a rewound chain therefore still replays correctly. Pure: values in,
values out; the aggregator's ``run_task`` loop carries the checkpoint from round to round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from fednode.aggregator.build import build_global_model
from fednode.aggregator.rules import rule_for_spec
from fednode.errors import FednodeValueError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskRecord

__all__ = [
    "RuleCheckpoint", "advance_checkpoint", "lineage_of", "replay_needed", "resume_rule_state",
]

Lineage = tuple[tuple[bytes, tuple[int, ...]], ...]


class RuleCheckpoint(NamedTuple):
    """The rule state after version ``len(lineage) - 1`` of a task, and what built it.

    ``lineage[v]`` is ``(digest, update_ids)`` of version ``v`` (version 0: the initial model,
    no updates).
    """

    task_id: int
    spec_digest: bytes
    lineage: Lineage
    rule_state: Any

    @property
    def version(self) -> int:
        """The last version the rule state includes."""
        return len(self.lineage) - 1


def lineage_of(records: Sequence[GlobalModelRecord]) -> Lineage:
    """``(digest, update_ids)`` per version, version 0 first; refuses gaps in the versions.

    Example:
      >>> r = GlobalModelRecord(1, 0, b"\\x01", (), "0x0", b"", 0, b"")
      >>> lineage_of([r])
      ((b'\\x01', ()),)
    """
    ordered = sorted(records, key=lambda r: r.version)
    if [r.version for r in ordered] != list(range(len(ordered))):
        raise FednodeValueError("records must hold versions 0..n without gaps")
    return tuple((bytes(r.digest), tuple(r.update_ids)) for r in ordered)


def _usable(checkpoint: RuleCheckpoint | None, task: TaskRecord, lineage: Lineage) -> bool:
    if checkpoint is None:
        return False
    same_task = (checkpoint.task_id, checkpoint.spec_digest) == (task.task_id, task.spec_digest)
    return same_task and lineage[: len(checkpoint.lineage)] == checkpoint.lineage


def replay_needed(
    task: TaskRecord, records: Sequence[GlobalModelRecord], checkpoint: RuleCheckpoint | None
) -> bool:
    """Whether :func:`resume_rule_state` has versions to replay (and so needs the updates).

    Example:
      >>> from fednode.types import TaskSpec, TaskState
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1)
      >>> task = TaskRecord(1, spec, spec.digest, "0x0", TaskState.OPEN, 0, 1)
      >>> v0 = GlobalModelRecord(1, 0, b"\\x01", (), "0x0", b"", 0, b"")
      >>> replay_needed(task, [v0], None)
      False
    """
    lineage = lineage_of(records)
    if _usable(checkpoint, task, lineage):
        assert checkpoint is not None
        return checkpoint.version < len(lineage) - 1
    return len(lineage) > 1


def resume_rule_state(
    task: TaskRecord,
    records: Sequence[GlobalModelRecord],
    updates: Sequence[LedgerUpdate],
    checkpoint: RuleCheckpoint | None = None,
) -> RuleCheckpoint:
    """The rule state after the last of ``records``, replaying only what ``checkpoint`` lacks.

    Args:
      task: the task (its id and spec digest key the checkpoint; its spec picks the rule).
      records: every final version of the task as read from the ledger, version 0 included.
      updates: the task's updates (must include every update a version to replay lists).
      checkpoint: the state a previous round left, or ``None``; ignored unless its task, spec
        digest and lineage match a prefix of ``records``.

    Returns:
      A checkpoint at the last version of ``records``; its ``rule_state`` equals
      ``replay_rule_state(task.spec, records, updates)``.

    Raises:
      FednodeValueError: if ``records`` has gaps or a listed update is missing.

    Example:
      >>> from fednode.types import TaskSpec, TaskState
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1)
      >>> task = TaskRecord(1, spec, spec.digest, "0x0", TaskState.OPEN, 0, 1)
      >>> v0 = GlobalModelRecord(1, 0, b"\\x01", (), "0x0", b"", 0, b"")
      >>> resume_rule_state(task, [v0], []).version
      0
    """
    lineage = lineage_of(records)
    ordered = sorted(records, key=lambda r: r.version)
    if _usable(checkpoint, task, lineage):
        assert checkpoint is not None
        start, state = checkpoint.version, checkpoint.rule_state
    else:
        start, state = 0, rule_for_spec(task.spec).init()
    by_id = {u.update_id: u for u in updates}
    for version in range(start + 1, len(ordered)):
        missing = [i for i in ordered[version].update_ids if i not in by_id]
        if missing:
            raise FednodeValueError(f"version {version} lists updates {missing} not given")
        listed = [by_id[i] for i in ordered[version].update_ids]
        previous = ordered[version - 1].payload
        state = build_global_model(task.spec, previous, listed, rule_state=state).rule_state
    return RuleCheckpoint(task.task_id, task.spec_digest, lineage, state)


def advance_checkpoint(
    checkpoint: RuleCheckpoint, record: GlobalModelRecord, rule_state: Any
) -> RuleCheckpoint:
    """The checkpoint after ``record``, the version built on top of ``checkpoint``.

    Raises:
      FednodeValueError: if ``record`` is not the version right after the checkpoint's.

    Example:
      >>> cp = RuleCheckpoint(1, b"s", ((b"\\x00", ()),), None)
      >>> r = GlobalModelRecord(1, 1, b"\\x01", (3,), "0x0", b"", 0, b"")
      >>> advance_checkpoint(cp, r, "state").lineage
      ((b'\\x00', ()), (b'\\x01', (3,)))
    """
    if record.version != checkpoint.version + 1 or record.task_id != checkpoint.task_id:
        raise FednodeValueError(
            f"task {record.task_id} version {record.version} does not follow checkpoint "
            f"task {checkpoint.task_id} version {checkpoint.version}"
        )
    entry = (bytes(record.digest), tuple(record.update_ids))
    return checkpoint._replace(lineage=(*checkpoint.lineage, entry), rule_state=rule_state)
