"""Chain: the state and the contract rules behind InMemoryLedger, one function per check.

Each check raises ``ContractRevertError`` with the contracts' custom-error name and args, so
the fake and the chain refuse the same things in the same words.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak

from fednode.chain.constants import (
    DEFAULT_VOTE_QUORUM_PERCENT,
    DEFAULT_VOTING_PERIOD,
    MAX_PAYLOAD_SIZE,
)
from fednode.chain.records import GlobalModelCommit, Proposal, Reputation
from fednode.errors import ContractRevertError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskSpec, TaskState

__all__ = [
    "ACTIVE_STATES",
    "MemoryChain",
    "MemoryTask",
    "require_candidate_set",
    "require_distinct_edges",
    "require_eligible_updates",
    "require_fresh_base",
    "require_payload_size",
    "require_rejected_updates",
    "revert",
]

ACTIVE_STATES = (TaskState.OPEN, TaskState.TRAINING)


def revert(name: str, **args: Any) -> ContractRevertError:
    """The error a contract would revert with: custom error ``name`` with ``args``."""
    return ContractRevertError(name, args)


@dataclass
class MemoryTask:
    """What TaskRegistry stores about a task, plus its calldata (spec and initial model)."""

    spec: TaskSpec
    initial_payload: bytes
    publisher: str
    published_block: int
    tx_hash: bytes
    cancelled: bool = False


@dataclass
class MemoryChain:
    """State shared by every view of one in-memory ledger; each write mines one block."""

    clock: Callable[[], int] = field(default=lambda: int(time.time()))
    roles: dict[bytes, set[str]] = field(default_factory=dict)
    edges: dict[str, tuple[str, str]] = field(default_factory=dict)
    tasks: list[MemoryTask] = field(default_factory=list)
    updates: list[LedgerUpdate] = field(default_factory=list)
    aggregated_in: dict[int, int] = field(default_factory=dict)
    submissions: dict[tuple[int, int, str], int] = field(default_factory=dict)
    globals: dict[int, list[GlobalModelRecord]] = field(default_factory=dict)
    block: int = 0
    bootstrap_ended: bool = False
    vote_quorum_percent: int = DEFAULT_VOTE_QUORUM_PERCENT
    voting_period: int = DEFAULT_VOTING_PERIOD
    proposals: list[Proposal] = field(default_factory=list)
    epsilon_spent: dict[tuple[int, str], int] = field(default_factory=dict)
    reputation: dict[str, Reputation] = field(default_factory=dict)
    rejected_in: dict[int, int] = field(default_factory=dict)
    commits: dict[tuple[int, int], list[GlobalModelCommit]] = field(default_factory=dict)
    conflicted: set[tuple[int, int]] = field(default_factory=set)
    cutoffs: dict[tuple[int, int], int] = field(default_factory=dict)
    consumed: dict[int, int] = field(default_factory=dict)
    contributions: dict[tuple[int, str], int] = field(default_factory=dict)
    role_changes: list[Any] = field(default_factory=list)  # RoleChange, see memory_governance

    def mine(self, sender: str) -> tuple[int, bytes]:
        """Mines a block for one transaction of ``sender``; returns (block, fake tx hash)."""
        self.block += 1
        return self.block, keccak(f"{self.block}:{sender}".encode())

    def task(self, task_id: int) -> MemoryTask:
        """The task, or TaskRegistryUnknownTask."""
        if not 1 <= task_id <= len(self.tasks):
            raise revert("TaskRegistryUnknownTask", taskId=task_id)
        return self.tasks[task_id - 1]

    def latest(self, task_id: int) -> int:
        """Latest committed version of an existing task."""
        return len(self.globals.get(task_id, ()))

    def state(self, task_id: int) -> TaskState:
        """Derived state of an existing task, as ``TaskRegistry.state``."""
        task = self.tasks[task_id - 1]
        latest = self.latest(task_id)
        if task.cancelled:
            return TaskState.CANCELLED
        if latest >= task.spec.rounds:
            return TaskState.FINISHED
        if task.spec.deadline != 0 and self.clock() > task.spec.deadline:
            return TaskState.EXPIRED
        return TaskState.TRAINING if latest > 0 else TaskState.OPEN

    def task_ordinal(self, update_id: int) -> int:
        """The position (1-based) of update ``update_id`` among its task's updates."""
        task_id = self.updates[update_id - 1].task_id
        return sum(1 for u in self.updates[:update_id] if u.task_id == task_id)

    def require_active(self, task_id: int) -> MemoryTask:
        """The task if it is Open or Training, else UpdateLedgerUnexpectedTaskState."""
        task = self.task(task_id)
        state = self.state(task_id)
        if state not in ACTIVE_STATES:
            raise revert("UpdateLedgerUnexpectedTaskState", taskId=task_id, current=int(state))
        return task


def require_payload_size(payload: bytes) -> None:
    """UpdateLedgerInvalidPayloadSize unless 0 < len(payload) <= MAX_PAYLOAD_SIZE."""
    if not 0 < len(payload) <= MAX_PAYLOAD_SIZE:
        raise revert("UpdateLedgerInvalidPayloadSize", size=len(payload), maxSize=MAX_PAYLOAD_SIZE)


def require_fresh_base(chain: MemoryChain, task_id: int, base_version: int) -> None:
    """latest - maxStaleness <= base_version <= latest, as ``UpdateLedger._checkBase``."""
    latest = chain.latest(task_id)
    max_staleness = chain.tasks[task_id - 1].spec.max_staleness
    if base_version > latest:
        raise revert(
            "UpdateLedgerFutureBase", taskId=task_id, baseVersion=base_version, latestVersion=latest
        )
    if base_version + max_staleness < latest:
        raise revert(
            "UpdateLedgerStaleBase",
            taskId=task_id,
            baseVersion=base_version,
            latestVersion=latest,
            maxStaleness=max_staleness,
        )


def require_eligible_updates(
    chain: MemoryChain, task_id: int, version: int, update_ids: Sequence[int]
) -> None:
    """Each id exists, increases, belongs to the task, is unused and fresh enough."""
    max_staleness = chain.tasks[task_id - 1].spec.max_staleness
    previous = 0
    for update_id in update_ids:
        update = _usable_update(chain, task_id, previous, update_id)
        if update.base_version + max_staleness + 1 < version:
            raise revert(
                "UpdateLedgerStaleUpdate",
                updateId=update_id,
                baseVersion=update.base_version,
                version=version,
            )
        previous = update_id


def require_rejected_updates(
    chain: MemoryChain, task_id: int, update_ids: Sequence[int], rejected_ids: Sequence[int]
) -> None:
    """Rejected ids: usable like aggregated ones, increasing, none of them aggregated too."""
    previous = 0
    aggregated = set(update_ids)
    for update_id in rejected_ids:
        _usable_update(chain, task_id, previous, update_id)
        if update_id in aggregated:
            raise revert("UpdateLedgerRejectedAndAggregated", updateId=update_id)
        previous = update_id


def require_distinct_edges(
    chain: MemoryChain, task_id: int, update_ids: Sequence[int]
) -> None:
    """UpdateLedgerTooFewEdges unless ``update_ids`` come from ``min_updates`` distinct edges.

    Counts no further than ``min_updates``, as ``UpdateLedger._distinctEdges``.
    """
    enough = chain.tasks[task_id - 1].spec.min_updates
    edges = len({chain.updates[i - 1].edge for i in update_ids})
    if edges < enough:
        raise revert("UpdateLedgerTooFewEdges", taskId=task_id, edges=edges, minUpdates=enough)


def require_candidate_set(
    chain: MemoryChain, task_id: int, version: int, update_ids: Sequence[int],
    rejected_ids: Sequence[int],
) -> int:
    """The cut-off of this commit (its largest listed id), once it matches the version's fixed
    cut-off and the lists are the whole candidate set, as ``UpdateLedger._checkCandidateSet``.
    """
    last = max([*update_ids, *rejected_ids])
    fixed = chain.cutoffs.get((task_id, version), 0)
    if fixed not in (0, last):
        raise revert("UpdateLedgerCutoffMismatch", taskId=task_id, version=version,
                     lastUpdateId=last, cutoffUpdateId=fixed)
    candidates = chain.task_ordinal(last) - chain.consumed.get(task_id, 0)
    listed = len(update_ids) + len(rejected_ids)
    if listed != candidates:
        raise revert("UpdateLedgerIncompleteCandidateSet", taskId=task_id, version=version,
                     listed=listed, candidates=candidates)
    return last


def _usable_update(chain: MemoryChain, task_id: int, previous: int, update_id: int) -> LedgerUpdate:
    if not 1 <= update_id <= len(chain.updates):
        raise revert("UpdateLedgerUnknownUpdate", updateId=update_id)
    if update_id <= previous:
        raise revert("UpdateLedgerUnorderedUpdates", previousId=previous, updateId=update_id)
    update = chain.updates[update_id - 1]
    if update.task_id != task_id:
        raise revert("UpdateLedgerUpdateNotInTask", updateId=update_id, taskId=task_id)
    if update_id in chain.aggregated_in:
        raise revert(
            "UpdateLedgerUpdateAlreadyAggregated",
            updateId=update_id,
            version=chain.aggregated_in[update_id],
        )
    if update_id in chain.rejected_in:
        raise revert(
            "UpdateLedgerUpdateAlreadyRejected", updateId=update_id, version=chain.rejected_in[update_id]
        )
    return update
