"""Edge: the transactional outbox that moves stored updates onto the chain, exactly once.

The state machine is the edge account's one transaction outbox (edge_server.tx_outbox); this
module supplies what is particular to updates (:class:`UpdateKind`): rows of the
:class:`EdgeStore`, ``sign_submit_update``, the ``UpdateSubmitted`` id of a receipt, and the
slot lookup. The contract takes one submission per edge and base version, so a duplicate
refusal means the update is already on chain: the row is reconciled through
``submission_of`` / ``read_updates`` and settled when the digest is the row's. At most
``max_in_flight`` transactions are pending at once (geth guarantees 16 slots).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from edge_server.crash import CrashHook
from edge_server.store import EdgeStore, UpdateRow, UpdateStatus
from edge_server.tx_kind import Landed
from edge_server.tx_outbox import TxOutbox

__all__ = ["DUPLICATE_ERROR", "OUTBOX_METHODS", "Outbox", "UpdateKind", "supports_outbox"]

logger = logging.getLogger(__name__)

OUTBOX_METHODS = ("sign_submit_update", "send_raw", "wait_for_receipt", "update_id_from_receipt")
DUPLICATE_ERROR = "UpdateLedgerDuplicateSubmission"


def supports_outbox(ledger: Any) -> bool:
    """Whether ``ledger`` can sign, send and confirm separately (Web3Ledger can).

    Example:
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> supports_outbox(InMemoryLedger())
      False
    """
    return all(hasattr(ledger, name) for name in OUTBOX_METHODS) and hasattr(
        ledger, "transactions"
    )


@dataclass(frozen=True)
class UpdateKind:
    """The update rows of an :class:`EdgeStore`, as the outbox state machine sees them.

    Example:
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> kind = UpdateKind(EdgeStore(":memory:"), InMemoryLedger())
      >>> kind.noun, kind.pending()
      ('update', [])
    """

    store: EdgeStore
    ledger: Any
    noun: ClassVar[str] = "update"
    duplicate_error: ClassVar[str] = DUPLICATE_ERROR
    clash: ClassVar[str] = "another update holds this base"
    statuses: ClassVar[type[UpdateStatus]] = UpdateStatus
    logger: ClassVar[logging.Logger] = logger

    def in_flight(self) -> list[UpdateRow]:
        """Signed or sent updates, in account-nonce order."""
        return self.store.in_flight_updates()

    def pending(self) -> list[UpdateRow]:
        """Accepted updates, in acceptance order."""
        return self.store.pending_updates()

    def reload(self, row: UpdateRow) -> UpdateRow:
        """The row as the store holds it now."""
        fresh = self.store.get_update(row.ref)
        assert fresh is not None
        return fresh

    def sign(self, row: UpdateRow, *, nonce: int) -> Any:
        """Signs the row's ``submitUpdate`` with account nonce ``nonce`` (gas estimated)."""
        return self.ledger.sign_submit_update(
            row.task_id, row.base_version, row.payload, num_examples=row.num_examples,
            epsilon_micro=row.epsilon_micro, nonce=nonce,
        )  # fmt: skip

    def chain_id_from_receipt(self, receipt: Any) -> int:
        """The update id of the ``UpdateSubmitted`` event in ``receipt``."""
        return int(self.ledger.update_id_from_receipt(receipt))

    def landed(self, row: UpdateRow) -> Landed | None:
        """The update this edge holds on the row's task and base version, if any."""
        sender = self.ledger.sender
        if hasattr(self.ledger, "submission_of"):
            if self.ledger.submission_of(row.task_id, row.base_version, sender) == 0:
                return None
        for update in self.ledger.read_updates(row.task_id, base_version=row.base_version):
            if update.edge.lower() == sender.lower():
                same = update.digest == row.digest
                return Landed(update.update_id, update.tx_hash, update.block_number, same)
        return None

    def mark_committed(
        self, row: UpdateRow, chain_id: int, tx_hash: bytes | None, block: int | None
    ) -> None:
        """Records the row as chain update ``chain_id``."""
        self.store.mark_committed(row.local_id, chain_id, tx_hash, block=block)


class Outbox(TxOutbox[UpdateRow]):
    """Drives rows of an :class:`EdgeStore` through a ledger with the outbox API.

    Args:
      store: the edge store.
      ledger: a Web3Ledger-like object (see ``OUTBOX_METHODS``) acting as the edge operator.
      confirmations: blocks on top of the including block before an update counts.
      max_in_flight: most signed-but-uncommitted transactions at once.
      resend_after_s: how long a sent transaction may lack a receipt before it is re-sent.
      crash: the test-only crash hook.
      on_event: called with ``(status, row)`` after each transition (metrics).
      nonce_floor: the lowest nonce no stored transaction of the account holds, over every
        outbox of the account (``Submitter.nonce_floor``); defaults to this store's.

    Example:
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> Outbox(EdgeStore(":memory:"), InMemoryLedger(), confirmations=2).run_pass()
      0
    """

    def __init__(
        self,
        store: EdgeStore,
        ledger: Any,
        *,
        confirmations: int,
        max_in_flight: int = 16,
        resend_after_s: float = 3.0,
        crash: CrashHook | None = None,
        on_event: Any = None,
        nonce_floor: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(
            UpdateKind(store, ledger), confirmations=confirmations, max_in_flight=max_in_flight,
            resend_after_s=resend_after_s, crash=crash, on_event=on_event,
            nonce_floor=nonce_floor,
        )  # fmt: skip
