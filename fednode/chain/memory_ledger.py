"""Chain: InMemoryLedger, the one fake of the Ledger seam, enforcing the contracts' rules.

Every refusal raises ``ContractRevertError`` with the same custom-error name and args
(Solidity parameter names, addresses checksummed, bytes32 as bytes, enums as int) as the
contracts in ``contracts/``, checked in the same order. Each write is mined in its own block.
Several views of one ledger act as different accounts: ``ledger.as_sender(address)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from eth_utils import to_checksum_address

from fednode.chain.constants import (
    AGGREGATOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    EDGE_ROLE,
    MAX_PAYLOAD_SIZE,
    PUBLISHER_ROLE,
    check_uint,
)
from fednode.chain.memory_evaluations import MemoryEvaluations, MemoryEvaluationState
from fednode.chain.memory_governance import MemoryConsortium
from fednode.chain.memory_rules import (
    ACTIVE_STATES,
    MemoryChain,
    MemoryTask,
    require_candidate_set,
    require_distinct_edges,
    require_eligible_updates,
    require_fresh_base,
    require_payload_size,
    require_rejected_updates,
    revert,
)
from fednode.chain.memory_votes import record_commit, spend_epsilon
from fednode.chain.records import GlobalModelCommit, Reputation, epsilon_budget_micro
from fednode.codec import digest_bytes
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskRecord, TaskSpec, TaskState

__all__ = ["InMemoryLedger"]

DEFAULT_ADMIN = "0x00000000000000000000000000000000000000Ad"


class InMemoryLedger(MemoryConsortium, MemoryEvaluations):
    """A Ledger held in memory, acting as ``sender``; the first sender is the admin.

    Args:
      sender: the account this view acts as; it becomes DEFAULT_ADMIN_ROLE holder.
      clock: returns the current "block timestamp" in unix seconds (for deadlines).

    Example:
      >>> admin = InMemoryLedger()
      >>> admin.grant_role(PUBLISHER_ROLE, admin.sender)
      >>> admin.has_role(PUBLISHER_ROLE, admin.sender)
      True
    """

    def __init__(
        self, sender: str = DEFAULT_ADMIN, *, clock: Callable[[], int] | None = None
    ) -> None:
        self._sender = to_checksum_address(sender)
        self._chain = MemoryChain(clock=clock) if clock is not None else MemoryChain()
        self._chain.roles[DEFAULT_ADMIN_ROLE] = {self._sender}
        self._evaluations = MemoryEvaluationState()

    @property
    def sender(self) -> str:
        """Checksummed address this view acts as."""
        return self._sender

    def as_sender(self, address: str) -> InMemoryLedger:
        """A view of the same ledger (shared state) acting as ``address``."""
        view = copy.copy(self)
        view._sender = to_checksum_address(address)
        return view

    # --- tasks ------------------------------------------------------------------------------

    def publish_task(self, spec: TaskSpec, initial_payload: bytes) -> int:
        """Publishes a task; see ``TaskRegistry.publishTask`` for the rules."""
        self._require_role(PUBLISHER_ROLE)
        for name, bits in (("rounds", 32), ("min_updates", 32), ("max_staleness", 32)):
            check_uint(name, getattr(spec, name), bits)
        check_uint("deadline", spec.deadline, 64)
        check_uint("epsilon_budget", epsilon_budget_micro(spec), 64)
        check_uint("aggregator_quorum", spec.aggregator_quorum, 32)
        check_uint("max_examples", spec.max_examples, 64)
        if not 0 < len(initial_payload) <= MAX_PAYLOAD_SIZE:
            raise revert(
                "TaskRegistryInvalidInitialModelSize",
                size=len(initial_payload),
                maxSize=MAX_PAYLOAD_SIZE,
            )
        if spec.deadline != 0 and spec.deadline <= self._chain.clock():
            raise revert("TaskRegistryInvalidDeadline", deadline=spec.deadline)
        block, tx_hash = self._chain.mine(self._sender)
        self._chain.tasks.append(
            MemoryTask(spec, bytes(initial_payload), self._sender, block, tx_hash)
        )
        return len(self._chain.tasks)

    def cancel_task(self, task_id: int) -> None:
        """Cancels an open or training task; its publisher only."""
        task = self._chain.task(task_id)
        if task.publisher != self._sender:
            raise revert("TaskRegistryNotPublisher", taskId=task_id, account=self._sender)
        state = self._chain.state(task_id)
        if state not in ACTIVE_STATES:
            raise revert("TaskRegistryUnexpectedState", taskId=task_id, current=int(state))
        task.cancelled = True
        self._chain.mine(self._sender)

    def get_task(self, task_id: int) -> TaskRecord:
        """Reads a task, its derived state and its latest global version."""
        task = self._chain.task(task_id)
        return TaskRecord(
            task_id=task_id,
            spec=task.spec,
            spec_digest=task.spec.digest,
            publisher=task.publisher,
            state=self._chain.state(task_id),
            latest_version=self.latest_version(task_id),
            published_block=task.published_block,
        )

    def list_tasks(self) -> list[TaskRecord]:
        """All tasks, in publication order."""
        return [self.get_task(task_id) for task_id in range(1, len(self._chain.tasks) + 1)]

    def latest_version(self, task_id: int) -> int:
        """The latest committed global version of a task (0 = only the initial model)."""
        self._chain.task(task_id)
        return len(self._chain.globals.get(task_id, ()))

    def task_state(self, task_id: int) -> TaskState:
        """The derived lifecycle state, as ``TaskRegistry.state(taskId)``."""
        self._chain.task(task_id)
        return self._chain.state(task_id)

    # --- updates ----------------------------------------------------------------------------

    def submit_update(
        self,
        task_id: int,
        base_version: int,
        payload: bytes,
        *,
        num_examples: int,
        epsilon_micro: int = 0,
    ) -> int:
        """Submits one update; see ``UpdateLedger.submitUpdate`` for the rules."""
        check_uint("base_version", base_version, 32)
        check_uint("num_examples", num_examples, 64)
        check_uint("epsilon_micro", epsilon_micro, 64)
        self._require_role(EDGE_ROLE)
        self._chain.require_active(task_id)
        require_payload_size(payload)
        if num_examples == 0:
            raise revert("UpdateLedgerZeroExamples")
        max_examples = self._chain.task(task_id).spec.max_examples
        if num_examples > max_examples:
            raise revert(
                "UpdateLedgerTooManyExamples", numExamples=num_examples, maxExamples=max_examples
            )
        require_fresh_base(self._chain, task_id, base_version)
        key = (task_id, base_version, self._sender)
        if key in self._chain.submissions:
            raise revert(
                "UpdateLedgerDuplicateSubmission",
                taskId=task_id,
                baseVersion=base_version,
                edge=self._sender,
            )
        spend_epsilon(self._chain, task_id, self._sender, epsilon_micro)
        block, tx_hash = self._chain.mine(self._sender)
        update_id = len(self._chain.updates) + 1
        self._chain.updates.append(
            LedgerUpdate(
                update_id=update_id,
                task_id=task_id,
                base_version=base_version,
                edge=self._sender,
                digest=digest_bytes(payload),
                num_examples=num_examples,
                epsilon_micro=epsilon_micro,
                payload=bytes(payload),
                block_number=block,
                tx_hash=tx_hash,
            )
        )
        self._chain.submissions[key] = update_id
        facts = self._chain.reputation.get(self._sender, Reputation())
        late = int(base_version < self._chain.latest(task_id))
        self._chain.reputation[self._sender] = Reputation(
            facts.submitted + 1, facts.accepted, facts.rejected, facts.late + late
        )
        return update_id

    def read_updates(self, task_id: int, *, base_version: int | None = None) -> list[LedgerUpdate]:
        """Updates of a task in ledger order, optionally only those on ``base_version``."""
        self._chain.task(task_id)
        return [
            update
            for update in self._chain.updates
            if update.task_id == task_id
            and (base_version is None or update.base_version == base_version)
        ]

    def submission_of(self, task_id: int, base_version: int, edge: str) -> int:
        """The update id ``edge`` submitted on ``base_version`` of a task (0 if none)."""
        key = (task_id, base_version, to_checksum_address(edge))
        return self._chain.submissions.get(key, 0)

    def update_count(self) -> int:
        """Number of updates on the ledger, over all tasks."""
        return len(self._chain.updates)

    # --- global models ----------------------------------------------------------------------

    def commit_global_model(
        self,
        task_id: int,
        version: int,
        payload: bytes,
        update_ids: Sequence[int],
        *,
        rejected_ids: Sequence[int] = (),
    ) -> GlobalModelRecord:
        """Commits a global model; see ``UpdateLedger.commitGlobalModel`` for the rules."""
        check_uint("version", version, 32)
        self._require_role(AGGREGATOR_ROLE)
        self._chain.require_active(task_id)
        expected = self.latest_version(task_id) + 1
        if version != expected:
            raise revert(
                "UpdateLedgerUnexpectedVersion", taskId=task_id, version=version, expected=expected
            )
        if any(c.aggregator == self._sender for c in self._chain.commits.get((task_id, version), ())):
            raise revert(
                "UpdateLedgerAlreadyCommitted", taskId=task_id, version=version, aggregator=self._sender
            )
        require_payload_size(payload)
        require_eligible_updates(self._chain, task_id, version, update_ids)
        require_rejected_updates(self._chain, task_id, update_ids, rejected_ids)
        require_distinct_edges(self._chain, task_id, update_ids)
        cutoff = require_candidate_set(self._chain, task_id, version, update_ids, rejected_ids)
        self._chain.cutoffs.setdefault((task_id, version), cutoff)
        block, tx_hash = self._chain.mine(self._sender)
        record = GlobalModelRecord(
            task_id=task_id,
            version=version,
            digest=digest_bytes(payload),
            update_ids=tuple(int(i) for i in update_ids),
            aggregator=self._sender,
            payload=bytes(payload),
            block_number=block,
            tx_hash=tx_hash,
        )
        record_commit(self._chain, record, tuple(int(i) for i in rejected_ids))
        return record

    def read_commits(self, task_id: int) -> list[GlobalModelCommit]:
        """Every aggregator commit of a task (final, pending or conflicting), in order."""
        self._chain.task(task_id)
        versions = range(1, self.latest_version(task_id) + 2)
        return [c for v in versions for c in self._chain.commits.get((task_id, v), ())]

    def pending_writes(self) -> int:
        """Always 0: every write of an in-memory ledger is applied at once."""
        return 0

    def deployment_scope(self) -> tuple[int, str]:
        """Chain 0 and the zero address: an in-memory ledger has no chain or deployment."""
        return 0, "0x" + "00" * 20

    def conflicted(self, task_id: int, version: int) -> bool:
        """Whether some commit of ``version`` disagreed with the first one."""
        return (task_id, version) in self._chain.conflicted

    def candidate_cutoff(self, task_id: int, version: int) -> int:
        """The largest update id the first commit of ``version`` listed (0: no commit yet)."""
        return self._chain.cutoffs.get((task_id, version), 0)

    def contributions(self, task_id: int, edge: str) -> int:
        """How many of ``edge``'s updates final versions of a task aggregated."""
        return self._chain.contributions.get((task_id, to_checksum_address(edge)), 0)

    def epsilon_spent(self, task_id: int, edge: str) -> int:
        """Micro-epsilon ``edge`` has spent on a task."""
        return self._chain.epsilon_spent.get((task_id, to_checksum_address(edge)), 0)

    def reputation(self, edge: str) -> Reputation:
        """Ledger facts about ``edge`` (submitted, accepted, rejected, late)."""
        return self._chain.reputation.get(to_checksum_address(edge), Reputation())

    def read_global_models(self, task_id: int) -> list[GlobalModelRecord]:
        """All versions of a task, version 0 (the initial model, by its publisher) first."""
        task = self._chain.task(task_id)
        initial = GlobalModelRecord(
            task_id=task_id,
            version=0,
            digest=digest_bytes(task.initial_payload),
            update_ids=(),
            aggregator=task.publisher,
            payload=task.initial_payload,
            block_number=task.published_block,
            tx_hash=task.tx_hash,
        )
        return [initial, *self._chain.globals.get(task_id, ())]
