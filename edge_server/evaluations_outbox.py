"""Edge: moves stored evaluations onto the chain exactly once (``EvaluationLedger``).

It runs inside the update submitter's worker (``Submitter.add_pass``), under the same lock,
because both kinds of transaction are signed by the one edge account and must not pick account
nonces concurrently. The state machine is the account's one transaction outbox
(edge_server.tx_outbox); this module supplies what is particular to evaluations
(:class:`EvaluationKind`). With a ledger that signs, sends and confirms separately
(``Web3Ledger``) a row goes ``accepted -> signed -> sent -> committed`` like an update; other
ledgers get one ``submit_evaluation`` call.

The contract takes one evaluation per (task, version, edge): whenever a row's slot may already
be taken (a retry after a crash, a duplicate refusal, a nonce used elsewhere) the row is
reconciled with what the chain holds, so an evaluation is neither lost nor submitted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from edge_server.evaluation_store import EvaluationRow, EvaluationStatus, EvaluationStore
from edge_server.tx_kind import Landed
from edge_server.tx_outbox import TxOutbox
from fednode.types import METRIC_SCALE, NO_METRIC_MICRO, EvaluationRecord

__all__ = ["DUPLICATE_EVALUATION", "EvaluationKind", "EvaluationOutbox"]

logger = logging.getLogger(__name__)

DUPLICATE_EVALUATION = "EvaluationLedgerDuplicateEvaluation"
_SIGNING_METHODS = ("sign_submit_evaluation", "send_raw", "wait_for_receipt", "transactions")


@dataclass(frozen=True)
class EvaluationKind:
    """The rows of an :class:`EvaluationStore`, as the outbox state machine sees them.

    Example:
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> kind = EvaluationKind(EvaluationStore(":memory:"), InMemoryLedger())
      >>> kind.noun, kind.signs, kind.pending()
      ('evaluation', False, [])
    """

    store: EvaluationStore
    ledger: Any
    noun: ClassVar[str] = "evaluation"
    duplicate_error: ClassVar[str] = DUPLICATE_EVALUATION
    clash: ClassVar[str] = "another evaluation holds this version"
    statuses: ClassVar[type[EvaluationStatus]] = EvaluationStatus
    logger: ClassVar[logging.Logger] = logger

    @property
    def signs(self) -> bool:
        """Whether the ledger signs, sends and confirms separately (else direct submits)."""
        return all(hasattr(self.ledger, name) for name in _SIGNING_METHODS)

    def in_flight(self) -> list[EvaluationRow]:
        """Signed or sent evaluations, in acceptance order."""
        return self.store.with_status(EvaluationStatus.SIGNED, EvaluationStatus.SENT)

    def pending(self) -> list[EvaluationRow]:
        """Accepted evaluations, in acceptance order."""
        return self.store.with_status(EvaluationStatus.ACCEPTED)

    def reload(self, row: EvaluationRow) -> EvaluationRow:
        """The row as the store holds it now."""
        fresh = self.store.get(row.ref)
        assert fresh is not None
        return fresh

    def sign(self, row: EvaluationRow, *, nonce: int) -> Any:
        """Signs the row's ``submitEvaluation`` with account nonce ``nonce`` (gas estimated)."""
        values = _values(row)
        return self.ledger.sign_submit_evaluation(row.task_id, row.version, nonce=nonce, **values)

    def submit(self, row: EvaluationRow) -> int:
        """Submits the row in one final call (ledgers that cannot sign separately)."""
        return int(self.ledger.submit_evaluation(row.task_id, row.version, **_values(row)))

    def chain_id_from_receipt(self, receipt: Any) -> int:
        """The evaluation id of the ``EvaluationSubmitted`` event in ``receipt``."""
        return int(self.ledger.evaluation_id_from_receipt(receipt))

    def landed(self, row: EvaluationRow) -> Landed | None:
        """The evaluation this edge holds on the row's task and version, if any."""
        sender = self.ledger.sender.lower()
        for record in self.ledger.read_evaluations(row.task_id, row.version):
            if record.edge.lower() == sender:
                same = (record.metric_micro, _secondary(record), record.num_examples) == (
                    row.metric_micro, row.secondary_micro, row.num_examples
                )  # fmt: skip
                return Landed(record.evaluation_id, None, record.block_number, same)
        return None

    def mark_committed(
        self, row: EvaluationRow, chain_id: int, tx_hash: bytes | None, block: int | None
    ) -> None:
        """Records the row as chain evaluation ``chain_id`` (the store keeps its own hash)."""
        del tx_hash
        self.store.mark_committed(row.local_id, chain_id, block)


class EvaluationOutbox(TxOutbox[EvaluationRow]):
    """Drives rows of an :class:`EvaluationStore` through a ledger acting as the edge.

    Args:
      store: the evaluation store.
      ledger: the edge's ledger (``Web3Ledger`` or ``InMemoryLedger``).
      confirmations: blocks on top of the including block before an evaluation counts.
      nonce_floor: the lowest nonce no stored transaction of the account holds, over every
        outbox of the account (``Submitter.nonce_floor``); defaults to this store's.
      resend_after_s: how long a sent transaction may lack a receipt before it is re-sent.

    Example:
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> outbox = EvaluationOutbox(EvaluationStore(":memory:"), InMemoryLedger(), confirmations=0)
      >>> outbox.run_pass()
      0
    """

    def __init__(
        self,
        store: EvaluationStore,
        ledger: Any,
        *,
        confirmations: int,
        nonce_floor: Callable[[], int] | None = None,
        resend_after_s: float = 3.0,
    ) -> None:
        kind = EvaluationKind(store, ledger)
        super().__init__(
            kind, confirmations=confirmations, resend_after_s=resend_after_s,
            nonce_floor=nonce_floor, submit=None if kind.signs else kind.submit,
        )  # fmt: skip


def _values(row: EvaluationRow) -> dict[str, Any]:
    secondary = None if row.secondary_micro == NO_METRIC_MICRO else row.secondary_micro
    return {
        "metric": row.metric_micro / METRIC_SCALE,
        "num_examples": row.num_examples,
        "secondary": None if secondary is None else secondary / METRIC_SCALE,
    }


def _secondary(record: EvaluationRecord) -> int:
    return NO_METRIC_MICRO if record.secondary_micro is None else record.secondary_micro
