"""Chain: the evaluation half of Web3Ledger, over ``contracts/EvaluationLedger.sol``.

Writes: ``submit_evaluation`` (waits for the receipt), and the outbox pieces the edge server
uses to store a signed transaction before sending it (``sign_submit_evaluation``,
``evaluation_id_from_receipt``). Reads come from contract storage at one pinned block; a metric
is in micro units on chain and a fraction in [0, 1] in ``EvaluationRecord``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.contract import Contract
from web3.types import TxReceipt

from fednode.chain.constants import check_uint
from fednode.chain.records import metric_micro, secondary_micro
from fednode.chain.transactions import SignedTx, TransactionSender
from fednode.types import NO_METRIC_MICRO, EvaluationRecord

__all__ = ["Web3Evaluations", "evaluation_records"]


def evaluation_records(task_id: int, rows: Sequence[Sequence[Any]]) -> list[EvaluationRecord]:
    """``EvaluationRecord``s of one task from the contract's ``Evaluation[]`` tuples.

    Example:
      >>> row = (1, "0x" + "ab" * 20, 812500, 2**32 - 1, 40, 7, 3)
      >>> [record] = evaluation_records(2, [row])
      >>> record.secondary, record.metric
      (None, 0.8125)
    """
    records = []
    for version, edge, metric, secondary, examples, block, evaluation_id in rows:
        records.append(
            EvaluationRecord(
                evaluation_id=int(evaluation_id),
                task_id=task_id,
                version=int(version),
                edge=to_checksum_address(edge),
                metric_micro=int(metric),
                secondary_micro=None if int(secondary) == NO_METRIC_MICRO else int(secondary),
                num_examples=int(examples),
                block_number=int(block),
            )
        )
    return records


class Web3Evaluations:
    """Evaluation methods of ``Web3Ledger``; relies on its contracts and helpers."""

    evaluations: Contract
    transactions: TransactionSender

    if TYPE_CHECKING:  # provided by Web3Ledger, which mixes this class in

        def _event(self, contract: Contract, name: str, receipt: TxReceipt) -> Any: ...

        def _call(self, fn: Any) -> Any: ...

        def _read(self, read: Any) -> Any: ...

    def encode_submit_evaluation(
        self,
        task_id: int,
        version: int,
        *,
        metric: float,
        num_examples: int,
        secondary: float | None = None,
    ) -> bytes:
        """Calldata of ``submitEvaluation``; metrics converted to micro units."""
        args = [
            check_uint("task_id", task_id, 256),
            check_uint("version", version, 32),
            metric_micro(metric),
            secondary_micro(secondary),
            check_uint("num_examples", num_examples, 64),
        ]
        return bytes(HexBytes(self.evaluations.encode_abi("submitEvaluation", args)))

    def submit_evaluation(
        self,
        task_id: int,
        version: int,
        *,
        metric: float,
        num_examples: int,
        secondary: float | None = None,
    ) -> int:
        """Submits this edge's evaluation of final ``version``, waits; returns its id."""
        data = self.encode_submit_evaluation(
            task_id, version, metric=metric, num_examples=num_examples, secondary=secondary
        )
        receipt = self.transactions.transact(self.evaluations.address, data)
        return self.evaluation_id_from_receipt(receipt)

    def sign_submit_evaluation(
        self,
        task_id: int,
        version: int,
        *,
        metric: float,
        num_examples: int,
        secondary: float | None = None,
        nonce: int,
    ) -> SignedTx:
        """Builds and signs (does not send) ``submitEvaluation`` with ``nonce``.

        The node's gas estimate checks every contract rule first: a refusal raises
        ``ContractRevertError`` before anything is stored or sent.
        """
        data = self.encode_submit_evaluation(
            task_id, version, metric=metric, num_examples=num_examples, secondary=secondary
        )
        return self.transactions.sign(self.evaluations.address, data, nonce=nonce)

    def evaluation_id_from_receipt(self, receipt: TxReceipt) -> int:
        """The evaluation id assigned by the ``EvaluationSubmitted`` event in ``receipt``."""
        return int(self._event(self.evaluations, "EvaluationSubmitted", receipt)["evaluationId"])

    def read_evaluations(self, task_id: int, version: int | None = None) -> list[EvaluationRecord]:
        """Evaluations of a task (of one version if given), in submission order."""

        def read(head: int) -> list[EvaluationRecord]:
            functions = self.evaluations.functions
            if version is None:
                fn = functions.taskEvaluations(task_id)
            else:
                fn = functions.evaluations(task_id, check_uint("version", version, 32))
            return evaluation_records(task_id, fn.call(block_identifier=head))

        result: list[EvaluationRecord] = self._read(read)
        return result

    def evaluation_of(self, task_id: int, version: int, edge: str) -> int:
        """The id of ``edge``'s evaluation of (task, version), 0 if none."""
        fn = self.evaluations.functions.evaluationOf(task_id, version, to_checksum_address(edge))
        return int(self._call(fn))
