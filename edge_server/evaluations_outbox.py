"""Edge: moves stored evaluations onto the chain exactly once (``EvaluationLedger``).

It runs inside the update submitter's worker (``Submitter.add_pass``), under the same lock,
because both kinds of transaction are signed by the one edge account and must not pick account
nonces concurrently. With a ledger that signs, sends and confirms separately (``Web3Ledger``) a
row goes ``accepted -> signed -> sent -> committed`` like an update: the raw transaction and its
nonce are stored before sending, re-broadcast byte for byte while no receipt shows up, and
counted ``confirmations`` blocks deep. Other ledgers get one ``submit_evaluation`` call.

The contract takes one evaluation per (task, version, edge): whenever a row's slot may already
be taken (a retry after a crash, a duplicate refusal, a nonce used elsewhere) the row is
reconciled with what the chain holds, so an evaluation is neither lost nor submitted twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from edge_server.evaluation_store import EvaluationRow, EvaluationStatus, EvaluationStore
from fednode.errors import ChainError, ChainTimeoutError, ContractRevertError, FednodeError
from fednode.types import METRIC_SCALE, NO_METRIC_MICRO, EvaluationRecord

__all__ = ["DUPLICATE_EVALUATION", "EvaluationOutbox"]

logger = logging.getLogger(__name__)

DUPLICATE_EVALUATION = "EvaluationLedgerDuplicateEvaluation"
_SIGNING_METHODS = ("sign_submit_evaluation", "send_raw", "wait_for_receipt", "transactions")


class EvaluationOutbox:
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
        self._store = store
        self._ledger = ledger
        self._depth = confirmations
        self._nonce_floor = nonce_floor or store.next_tx_nonce
        self._resend_after_s = resend_after_s
        self._signs = all(hasattr(ledger, name) for name in _SIGNING_METHODS)
        self._last_send: dict[int, float] = {}

    def run_pass(self) -> int:
        """Advances in-flight rows, then submits accepted ones; returns rows that moved.

        Raises:
          ChainError, OSError: the node could not be reached; rows keep their state.
        """
        moved = 0
        for row in self._store.with_status(EvaluationStatus.SIGNED, EvaluationStatus.SENT):
            moved += self._advance(row)
        for row in self._store.with_status(EvaluationStatus.ACCEPTED):
            moved += self._submit(row)
        return moved

    # ---- accepted -> committed (direct) or -> signed -> sent (outbox) --------------------

    def _submit(self, row: EvaluationRow) -> int:
        if row.attempts > 0:  # tried before: it may have landed
            settled = self._reconcile(row, refusal=None)
            if settled:
                return settled
        values = _values(row)
        try:
            if not self._signs:
                self._store.mark_attempt(row.local_id)
                chain_id = self._ledger.submit_evaluation(row.task_id, row.version, **values)
                self._commit(row, chain_id, self._landed_block(row))
                return 1
            nonce = max(self._ledger.transactions.pending_nonce(), self._nonce_floor())
            signed = self._ledger.sign_submit_evaluation(
                row.task_id, row.version, nonce=nonce, **values
            )
        except ContractRevertError as exc:
            return self._refused(row, exc)
        except ChainError:
            raise
        except FednodeError as exc:  # a value the ledger refuses before signing: final
            return self._fail(row, f"{type(exc).__name__}: {exc}")
        self._store.record_signed(
            row.local_id, nonce=signed.nonce, raw_tx=signed.raw, tx_hash=signed.tx_hash
        )
        fresh = self._store.get(row.ref)
        assert fresh is not None
        return 1 + self._send(fresh)

    def _send(self, row: EvaluationRow) -> int:
        assert row.raw_tx is not None
        try:
            self._ledger.send_raw(row.raw_tx)
        except ChainError as exc:
            if "nonce too low" not in str(exc).lower():
                raise
            if self._reconcile(row, refusal=None):
                return 1
            self._store.reset_to_accepted(row.local_id, f"re-signing: {exc}")
            return 1
        self._last_send[row.local_id] = time.monotonic()
        if row.status == EvaluationStatus.SIGNED:
            self._store.mark_sent(row.local_id)
        return 1

    # ---- sent -> committed ---------------------------------------------------------------

    def _advance(self, row: EvaluationRow) -> int:
        if row.status == EvaluationStatus.SIGNED:
            return self._send(row)
        assert row.tx_hash is not None
        try:
            mined = self._receipt(row.tx_hash, 0) is not None
            receipt = self._receipt(row.tx_hash, self._depth) if mined else None
        except ContractRevertError as exc:
            return self._refused(row, exc)
        if not mined:
            last = self._last_send.get(row.local_id)
            if last is not None and time.monotonic() - last < self._resend_after_s:
                return 0
            return self._send(row)
        if receipt is None:
            return 0
        chain_id = self._ledger.evaluation_id_from_receipt(receipt)
        self._commit(row, chain_id, int(receipt["blockNumber"]))
        return 1

    def _receipt(self, tx_hash: bytes, depth: int) -> Any:
        try:
            return self._ledger.wait_for_receipt(tx_hash, confirmations=depth, timeout=0)
        except ChainTimeoutError:
            return None

    # ---- refusals and reconciliation -----------------------------------------------------

    def _refused(self, row: EvaluationRow, exc: ContractRevertError) -> int:
        if exc.name == DUPLICATE_EVALUATION:
            return self._reconcile(row, refusal=exc.name)
        return self._fail(row, exc.name or str(exc))

    def _reconcile(self, row: EvaluationRow, *, refusal: str | None) -> int:
        """Settles a row whose slot may be taken on chain; returns 1 when the row moved."""
        landed = self._landed(row)
        if landed is None:
            return 0 if refusal is None else self._fail(row, refusal)
        if (landed.metric_micro, _secondary(landed), landed.num_examples) != (
            row.metric_micro, row.secondary_micro, row.num_examples
        ):
            return self._fail(row, f"{DUPLICATE_EVALUATION}: another evaluation holds this version")
        head = int(self._ledger.w3.eth.block_number) if hasattr(self._ledger, "w3") else None
        if head is not None and head < landed.block_number + self._depth:
            return 0
        self._commit(row, landed.evaluation_id, landed.block_number)
        return 1

    def _landed(self, row: EvaluationRow) -> EvaluationRecord | None:
        sender = self._ledger.sender.lower()
        for record in self._ledger.read_evaluations(row.task_id, row.version):
            if record.edge.lower() == sender:
                return record
        return None

    def _landed_block(self, row: EvaluationRow) -> int | None:
        try:
            landed = self._landed(row)
        except (ChainError, OSError):  # the id is known; the block is a convenience
            return None
        return None if landed is None else landed.block_number

    # ---- bookkeeping ---------------------------------------------------------------------

    def _commit(self, row: EvaluationRow, chain_id: int, block: int | None) -> None:
        self._store.mark_committed(row.local_id, chain_id, block)
        self._last_send.pop(row.local_id, None)
        logger.info("evaluation %s committed as chain evaluation %d", row.ref, chain_id)

    def _fail(self, row: EvaluationRow, error: str) -> int:
        self._store.mark_failed(row.local_id, error)
        self._last_send.pop(row.local_id, None)
        logger.warning("evaluation %s failed: %s", row.ref, error)
        return 1


def _values(row: EvaluationRow) -> dict[str, Any]:
    secondary = None if row.secondary_micro == NO_METRIC_MICRO else row.secondary_micro
    return {
        "metric": row.metric_micro / METRIC_SCALE,
        "num_examples": row.num_examples,
        "secondary": None if secondary is None else secondary / METRIC_SCALE,
    }


def _secondary(record: EvaluationRecord) -> int:
    return NO_METRIC_MICRO if record.secondary_micro is None else record.secondary_micro
