"""Aggregator: the candidate set of the next version, the same for every honest aggregator.

``UpdateLedger.commitGlobalModel`` accepts a commit only if its aggregated and rejected updates
together are exactly the version's candidate set: every update of the task that no final
version consumed (aggregated or rejected), up to a cut-off update id. The version's first
commit fixes the cut-off (its largest listed id) and every later commit must list the same
set, so an update that lands between two aggregators' reads cannot split them.

This module decides, from ledger values alone, which updates an aggregator lists:

- with a cut-off already fixed (another aggregator committed first), the unconsumed updates up
  to it, however many valid ones they hold (``None`` while this node has not seen them all);
- otherwise a sync task takes every unconsumed update seen, once the valid ones come from at
  least ``min_updates`` distinct edges; an async task (FedBuff) stops at the update with which
  the valid ones first come from ``min_updates`` distinct edges (its buffer size K), so one
  edge submitting on several base versions never fills a version alone, and two async
  aggregators pick the same prefix whatever their read timing.

Updates too stale for the version (base older than ``latest - max_staleness``) and updates that
fail :func:`~fednode.aggregator.build.check_update_payload` are listed as rejected, with the
reason, so they count as consumed and the next version's candidate set starts after them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fednode.aggregator.build import check_update_payload
from fednode.chain.records import GlobalModelCommit
from fednode.errors import UpdateRejectedError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskRecord

__all__ = [
    "CandidateSet",
    "consumed_update_ids",
    "distinct_edges",
    "fixed_cutoff",
    "refusal_reason",
    "select_candidates",
]


@dataclass(frozen=True)
class CandidateSet:
    """What one commit lists: the updates to aggregate, the refused ones (id, reason), and the
    cut-off (the largest id of either list)."""

    accepted: tuple[LedgerUpdate, ...]
    rejected: tuple[tuple[int, str], ...]
    cutoff: int

    @property
    def rejected_ids(self) -> tuple[int, ...]:
        """The refused update ids, in ledger order."""
        return tuple(update_id for update_id, _ in self.rejected)


def fixed_cutoff(commits: Iterable[GlobalModelCommit], version: int) -> int:
    """The cut-off the first commit of ``version`` fixed (0 while it has none).

    Example:
      >>> fixed_cutoff([], 1)
      0
    """
    for commit in commits:
        if commit.version == version:
            return max((*commit.update_ids, *commit.rejected_ids))
    return 0


def consumed_update_ids(
    records: Iterable[GlobalModelRecord], commits: Iterable[GlobalModelCommit]
) -> frozenset[int]:
    """Ids of every update a final version aggregated or rejected.

    Example:
      >>> consumed_update_ids([], [])
      frozenset()
    """
    aggregated = {i for record in records for i in record.update_ids}
    rejected = {i for commit in commits if commit.final for i in commit.rejected_ids}
    return frozenset(aggregated | rejected)


def distinct_edges(updates: Iterable[LedgerUpdate]) -> int:
    """How many distinct edges submitted ``updates``.

    Example:
      >>> distinct_edges([])
      0
    """
    return len({update.edge for update in updates})


def refusal_reason(task: TaskRecord, update: LedgerUpdate, global_payload: bytes) -> str:
    """Why the next version of ``task`` cannot aggregate ``update`` ("" if it can).

    Example:
      >>> import numpy as np
      >>> from fednode.codec import digest_bytes, encode_params
      >>> from fednode.types import TaskSpec, TaskState
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1)
      >>> task = TaskRecord(1, spec, spec.digest, "0x0", TaskState.TRAINING, 2, 1)
      >>> g = encode_params({"w": np.zeros(2, np.float32)})
      >>> u = LedgerUpdate(1, 1, 1, "0xE", digest_bytes(g), 1, 0, g, 1, b"")
      >>> refusal_reason(task, u, g)
      'stale'
    """
    if update.base_version < task.latest_version - task.spec.max_staleness:
        return "stale"
    try:
        check_update_payload(update, global_payload, task.spec)
    except UpdateRejectedError as exc:
        return str(exc.reason)
    return ""


def select_candidates(
    task: TaskRecord, updates: Sequence[LedgerUpdate], global_payload: bytes, *,
    consumed: frozenset[int], cutoff: int = 0,
) -> CandidateSet | None:
    """The candidate set the next version of ``task`` lists, or None if it is not ready yet.

    Args:
      task: the task (its latest version, ``min_updates``, ``max_staleness`` and ``mode``).
      updates: the task's updates this aggregator has read (at least every unconsumed one on
        a base the version may use, and those one version older).
      global_payload: the latest final global model, to check each update against.
      consumed: update ids final versions already aggregated or rejected.
      cutoff: the cut-off fixed by the version's first commit (0: none yet, choose one).

    Returns:
      The updates to aggregate and to reject, or None while the valid ones come from fewer
      than ``min_updates`` distinct edges (or, under a fixed cut-off, while this node has not
      read the update at the cut-off).

    Raises:
      UpdateRejectedError: ("too_few_valid") when a fixed cut-off holds valid updates of fewer
        than ``min_updates`` edges: no honest commit of this version is possible.

    Example:
      >>> from fednode.types import TaskSpec, TaskState
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1)
      >>> task = TaskRecord(1, spec, spec.digest, "0x0", TaskState.OPEN, 0, 1)
      >>> select_candidates(task, [], b"", consumed=frozenset()) is None
      True
    """
    pending = sorted((u for u in updates if u.update_id not in consumed),
                     key=lambda u: u.update_id)
    if cutoff:
        pending = [u for u in pending if u.update_id <= cutoff]
        if not pending or pending[-1].update_id != cutoff:
            return None
    stop_early = not cutoff and task.spec.mode == "async"
    accepted: list[LedgerUpdate] = []
    rejected: list[tuple[int, str]] = []
    for update in pending:
        reason = refusal_reason(task, update, global_payload)
        if reason:
            rejected.append((update.update_id, reason))
        else:
            accepted.append(update)
        if stop_early and distinct_edges(accepted) >= task.spec.min_updates:
            return CandidateSet(tuple(accepted), tuple(rejected), update.update_id)
    edges = distinct_edges(accepted)
    if edges < task.spec.min_updates and cutoff:
        raise UpdateRejectedError(
            "too_few_valid", f"the cut-off {cutoff} another aggregator fixed holds valid updates "
            f"of {edges} edges, the task needs {task.spec.min_updates}; refused: {rejected}")
    if edges < task.spec.min_updates:
        return None
    return CandidateSet(tuple(accepted), tuple(rejected), pending[-1].update_id)
