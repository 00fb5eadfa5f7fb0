"""Chain: the evaluation half of InMemoryLedger, mirroring ``contracts/EvaluationLedger.sol``.

Same rules, same order of checks, same custom-error names and args as the contract: EDGE_ROLE,
a final version other than 0 of an existing task, an edge with an update aggregated into a
final version of it, metrics within [0, 1] micro units, at least one test example, one
evaluation per (task, version, edge).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eth_utils import to_checksum_address

from fednode.chain.constants import EDGE_ROLE, check_uint
from fednode.chain.memory_rules import MemoryChain, revert
from fednode.chain.records import metric_micro, secondary_micro
from fednode.types import METRIC_SCALE, NO_METRIC_MICRO, EvaluationRecord

__all__ = ["MemoryEvaluations", "MemoryEvaluationState"]


@dataclass
class MemoryEvaluationState:
    """Evaluations of one in-memory chain, shared by all its views."""

    records: list[EvaluationRecord] = field(default_factory=list)
    submitted: dict[tuple[int, int, str], int] = field(default_factory=dict)


class MemoryEvaluations:
    """Evaluation methods of ``InMemoryLedger``; acts as ``self._sender`` on ``self._chain``."""

    _sender: str
    _chain: MemoryChain
    _evaluations: MemoryEvaluationState

    if TYPE_CHECKING:  # provided by MemoryConsortium, which InMemoryLedger also mixes in

        def _require_role(self, role: bytes) -> None: ...

    def submit_evaluation(
        self,
        task_id: int,
        version: int,
        *,
        metric: float,
        num_examples: int,
        secondary: float | None = None,
    ) -> int:
        """Records this edge's evaluation of final ``version``; returns its evaluation id."""
        check_uint("task_id", task_id, 256)
        check_uint("version", version, 32)
        check_uint("num_examples", num_examples, 64)
        main, second = metric_micro(metric), secondary_micro(secondary)
        self._require_role(EDGE_ROLE)
        self._chain.task(task_id)
        latest = self._chain.latest(task_id)
        if version == 0:
            raise revert("EvaluationLedgerInitialVersion", taskId=task_id)
        if version > latest:
            raise revert(
                "EvaluationLedgerUnknownVersion",
                taskId=task_id, version=version, latestVersion=latest,
            )  # fmt: skip
        if not self._chain.contributions.get((task_id, self._sender), 0):
            raise revert("EvaluationLedgerNotContributor", taskId=task_id, edge=self._sender)
        for value in (main, second):
            if value > METRIC_SCALE and value != NO_METRIC_MICRO:
                raise revert(
                    "EvaluationLedgerMetricOutOfRange", valueMicro=value, maxMicro=METRIC_SCALE
                )
        if num_examples == 0:
            raise revert("EvaluationLedgerZeroExamples")
        key = (task_id, version, self._sender)
        if key in self._evaluations.submitted:
            raise revert(
                "EvaluationLedgerDuplicateEvaluation",
                taskId=task_id, version=version, edge=self._sender,
            )  # fmt: skip
        block, _ = self._chain.mine(self._sender)
        record = EvaluationRecord(
            evaluation_id=len(self._evaluations.records) + 1,
            task_id=task_id,
            version=version,
            edge=self._sender,
            metric_micro=main,
            secondary_micro=None if second == NO_METRIC_MICRO else second,
            num_examples=num_examples,
            block_number=block,
        )
        self._evaluations.records.append(record)
        self._evaluations.submitted[key] = record.evaluation_id
        return record.evaluation_id

    def read_evaluations(self, task_id: int, version: int | None = None) -> list[EvaluationRecord]:
        """Evaluations of a task (of one version if given), in submission order."""
        self._chain.task(task_id)
        return [
            record
            for record in self._evaluations.records
            if record.task_id == task_id and (version is None or record.version == version)
        ]

    def evaluation_of(self, task_id: int, version: int, edge: str) -> int:
        """The id of ``edge``'s evaluation of (task, version), 0 if none."""
        return self._evaluations.submitted.get((task_id, version, to_checksum_address(edge)), 0)
