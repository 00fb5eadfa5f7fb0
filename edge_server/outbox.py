"""Edge: the transactional outbox that moves stored updates onto the chain, exactly once.

One pass (:meth:`Outbox.run_pass`) first advances every in-flight row, then signs new ones:

- ``signed`` rows are (re-)broadcast byte for byte (``send_raw`` is idempotent) -> ``sent``;
- ``sent`` rows are checked for a receipt: ``confirmations`` blocks deep it is ``committed``
  (or ``failed`` with the decoded revert); a receipt that vanished (a reorg, a node that lost
  its pool) gets the very same bytes re-sent;
- ``accepted`` rows get the next account nonce; the node estimates gas (a refusal is decoded
  here, before anything is stored), and the raw transaction and nonce land on disk in one write
  before they are sent.

The contract takes one submission per edge and base version, so a duplicate refusal means the
update is already on chain: the row is reconciled through ``submission_of`` / ``read_updates``.
At most ``max_in_flight`` transactions are pending at once (geth guarantees 16 slots).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from edge_server.crash import CrashHook
from edge_server.store import EdgeStore, UpdateRow, UpdateStatus
from fednode.errors import ChainError, ChainTimeoutError, ContractRevertError, FednodeError
from fednode.types import LedgerUpdate

__all__ = ["DUPLICATE_ERROR", "OUTBOX_METHODS", "Outbox", "supports_outbox"]

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


class Outbox:
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
        self._store = store
        self._nonce_floor = nonce_floor or store.next_tx_nonce
        self._ledger = ledger
        self._depth = confirmations
        self._max_in_flight = max_in_flight
        self._resend_after_s = resend_after_s
        self._crash = crash or CrashHook(None)
        self._on_event = on_event or (lambda status, row: None)
        self._last_send: dict[int, float] = {}

    def run_pass(self) -> int:
        """Advances in-flight rows, then signs and sends new ones; returns rows that moved.

        Raises:
          ChainError, OSError: the node could not be reached; rows keep their state.
        """
        moved = 0
        for row in self._store.in_flight_updates():
            moved += self._advance(row)
        room = self._max_in_flight - len(self._store.in_flight_updates())
        pending = [r for r in self._store.pending_updates() if self._crash.ready(r.local_id)]
        for row in pending[: max(room, 0)]:
            moved += self._sign_and_send(row)
        return moved

    # ---- accepted -> signed -> sent ------------------------------------------------------

    def _sign_and_send(self, row: UpdateRow) -> int:
        self._crash.reached("before_sign", row.local_id)
        nonce = max(self._ledger.transactions.pending_nonce(), self._nonce_floor())
        try:
            signed = self._ledger.sign_submit_update(
                row.task_id, row.base_version, row.payload, num_examples=row.num_examples,
                epsilon_micro=row.epsilon_micro, nonce=nonce,
            )  # fmt: skip
        except ContractRevertError as exc:
            return self._refused(row, exc)
        except ChainError:
            raise
        except FednodeError as exc:  # a value the ledger refuses before signing: final
            return self._fail(row, f"{type(exc).__name__}: {exc}")
        self._store.record_signed(
            row.local_id, nonce=signed.nonce, raw_tx=signed.raw, tx_hash=signed.tx_hash
        )
        self._emit(UpdateStatus.SIGNED, row)
        self._crash.reached("after_sign", row.local_id)
        return 1 + self._send(self._reload(row))

    def _send(self, row: UpdateRow) -> int:
        assert row.raw_tx is not None
        try:
            self._ledger.send_raw(row.raw_tx)
        except ChainError as exc:
            if "nonce too low" not in str(exc).lower():
                raise  # e.g. insufficient funds, full pool: keep the bytes, retry later
            return self._nonce_taken(row, exc)  # a transaction not ours took its nonce
        self._last_send[row.local_id] = time.monotonic()
        self._crash.reached("after_send", row.local_id)
        if row.status == UpdateStatus.SIGNED:
            self._store.mark_sent(row.local_id)
            self._emit(UpdateStatus.SENT, row)
        return 1

    # ---- sent -> committed ---------------------------------------------------------------

    def _advance(self, row: UpdateRow) -> int:
        if row.status == UpdateStatus.SIGNED:
            return self._send(row)
        assert row.tx_hash is not None
        try:
            mined = self._receipt(row.tx_hash, 0) is not None
        except ContractRevertError:
            mined = True
        if not mined:
            return self._resend_if_quiet(row)
        try:
            receipt = self._receipt(row.tx_hash, self._depth)
        except ContractRevertError as exc:
            return self._refused(row, exc)
        if receipt is None:
            return 0  # mined, not deep enough yet
        update_id = self._ledger.update_id_from_receipt(receipt)
        self._commit(row, update_id, row.tx_hash, int(receipt["blockNumber"]))
        return 1

    def _receipt(self, tx_hash: bytes, depth: int) -> Any:
        try:
            return self._ledger.wait_for_receipt(tx_hash, confirmations=depth, timeout=0)
        except ChainTimeoutError:
            return None

    def _resend_if_quiet(self, row: UpdateRow) -> int:
        last = self._last_send.get(row.local_id)
        if last is not None and time.monotonic() - last < self._resend_after_s:
            return 0
        logger.info("update %s: no receipt for 0x%s, re-sending it", row.ref, row.tx_hash.hex())
        return self._send(row)

    # ---- refusals and reconciliation -----------------------------------------------------

    def _refused(self, row: UpdateRow, exc: ContractRevertError) -> int:
        if exc.name == DUPLICATE_ERROR:
            return self._reconcile(row, exc.name)
        return self._fail(row, exc.name or str(exc))

    def _nonce_taken(self, row: UpdateRow, exc: ChainError) -> int:
        if self._reconcile(row, None):
            return 1
        logger.warning("update %s: nonce %s taken elsewhere, re-signing", row.ref, row.tx_nonce)
        self._store.reset_to_accepted(row.local_id, f"re-signing: {exc}")
        return 1

    def _reconcile(self, row: UpdateRow, refusal: str | None) -> int:
        """Settles a row whose slot is taken on chain; returns 1 when the row moved."""
        landed = self._landed(row)
        if landed is None:
            if refusal is None:
                return 0
            return self._fail(row, refusal)  # refused, yet nothing of ours is there
        if landed.digest != row.digest:
            return self._fail(row, f"{DUPLICATE_ERROR}: another update holds this base")
        if not self._deep_enough(landed.block_number):
            return 0
        self._commit(row, landed.update_id, landed.tx_hash, landed.block_number)
        return 1

    def _landed(self, row: UpdateRow) -> LedgerUpdate | None:
        sender = self._ledger.sender
        if hasattr(self._ledger, "submission_of"):
            update_id = self._ledger.submission_of(row.task_id, row.base_version, sender)
            if update_id == 0:
                return None
        for update in self._ledger.read_updates(row.task_id, base_version=row.base_version):
            if update.edge.lower() == sender.lower():
                return update
        return None

    def _deep_enough(self, block: int) -> bool:
        head = int(self._ledger.w3.eth.block_number) if hasattr(self._ledger, "w3") else block
        return head >= block + self._depth

    # ---- bookkeeping ---------------------------------------------------------------------

    def _commit(self, row: UpdateRow, update_id: int, tx_hash: bytes | None, block: int) -> None:
        self._store.mark_committed(row.local_id, update_id, tx_hash, block=block)
        self._last_send.pop(row.local_id, None)
        self._emit(UpdateStatus.COMMITTED, row)
        logger.info("update %s committed as chain update %d (block %d)", row.ref, update_id, block)

    def _fail(self, row: UpdateRow, error: str) -> int:
        self._store.mark_failed(row.local_id, error)
        self._last_send.pop(row.local_id, None)
        self._emit(UpdateStatus.FAILED, row)
        logger.warning("update %s failed: %s", row.ref, error)
        return 1

    def _emit(self, status: UpdateStatus, row: UpdateRow) -> None:
        self._on_event(status, row)

    def _reload(self, row: UpdateRow) -> UpdateRow:
        fresh = self._store.get_update(row.ref)
        assert fresh is not None
        return fresh
