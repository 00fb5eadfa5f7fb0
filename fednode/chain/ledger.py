"""Chain: the Ledger seam, what every stage may ask of the consortium chain.

``Web3Ledger`` (web3_ledger.py) talks to real nodes; ``InMemoryLedger`` (memory_ledger.py) is the
one fake, held to the same behaviour suite (tests/behaviours/ledger_behaviour.py). A ledger object
acts as one account (``sender``): the edge server's, the aggregator's or the publisher's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from fednode.chain.records import GlobalModelCommit, Reputation
from fednode.types import (
    EvaluationRecord,
    GlobalModelRecord,
    LedgerUpdate,
    TaskRecord,
    TaskSpec,
)

__all__ = ["Ledger"]


@runtime_checkable
class Ledger(Protocol):
    """What devices, edges, aggregators and auditors need from the chain.

    Every write is checked by the contracts; a refusal raises ``ContractRevertError`` whose
    ``name`` is the Solidity custom error (for example ``UpdateLedgerDuplicateSubmission``).
    """

    @property
    def sender(self) -> str:
        """Checksummed address this ledger signs with."""
        ...

    def publish_task(self, spec: TaskSpec, initial_payload: bytes) -> int:
        """Publishes a task with its initial global model (version 0); returns the task id."""
        ...

    def cancel_task(self, task_id: int) -> None:
        """Cancels a task (publisher only)."""
        ...

    def get_task(self, task_id: int) -> TaskRecord:
        """Reads a task, its derived state and its latest global version."""
        ...

    def list_tasks(self) -> list[TaskRecord]:
        """All tasks, in publication order."""
        ...

    def submit_update(
        self,
        task_id: int,
        base_version: int,
        payload: bytes,
        *,
        num_examples: int,
        epsilon_micro: int = 0,
    ) -> int:
        """Submits one update (payload in calldata, digest + metadata in storage); returns its id."""
        ...

    def read_updates(self, task_id: int, *, base_version: int | None = None) -> list[LedgerUpdate]:
        """Updates of a task in ledger order (update id order), payloads read back from calldata."""
        ...

    def commit_global_model(
        self,
        task_id: int,
        version: int,
        payload: bytes,
        update_ids: Sequence[int],
        *,
        rejected_ids: Sequence[int] = (),
    ) -> GlobalModelRecord:
        """Commits global model ``version`` built from exactly ``update_ids`` (ledger order).

        ``rejected_ids``: updates the robust filter dropped (reputation facts). The version is
        final once the task's ``aggregator_quorum`` aggregators committed the same thing.
        """
        ...

    def read_global_models(self, task_id: int) -> list[GlobalModelRecord]:
        """All final versions of a task, version 0 (initial model) first."""
        ...

    def read_commits(self, task_id: int) -> list[GlobalModelCommit]:
        """Every aggregator commit of a task, final or not (for the auditor)."""
        ...

    def pending_writes(self) -> int:
        """Transactions this ledger's account sent that are not mined yet (0 where every write
        is applied at once)."""
        ...

    def deployment_scope(self) -> tuple[int, str]:
        """``(chain id, UpdateLedger address)`` this ledger writes to: what a device's signature
        binds (``(0, zero address)`` for a ledger without a chain)."""
        ...

    def submit_evaluation(
        self,
        task_id: int,
        version: int,
        *,
        metric: float,
        num_examples: int,
        secondary: float | None = None,
    ) -> int:
        """Records this edge's evaluation of final global ``version`` on its own test split.

        ``metric`` and ``secondary`` (None: undefined there) are fractions in [0, 1], stored in
        micro units; one evaluation per (task, version, edge). Returns the evaluation id.
        """
        ...

    def read_evaluations(
        self, task_id: int, version: int | None = None
    ) -> list[EvaluationRecord]:
        """Evaluations of a task (only of ``version`` if given), in submission order."""
        ...

    def epsilon_spent(self, task_id: int, edge: str) -> int:
        """Micro-epsilon ``edge`` has spent on a task (enforced against its budget)."""
        ...

    def reputation(self, edge: str) -> Reputation:
        """Ledger facts about an edge; ``.score_bps`` is a weight an aggregator may use."""
        ...
