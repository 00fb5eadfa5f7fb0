"""Edge: the one transaction outbox of the edge account, driven over a per-kind adapter.

The edge account signs more than one kind of row (updates, evaluations); every kind goes
through the same state machine, :class:`TxOutbox`. One pass first advances every in-flight
row, then takes new ones:

- ``signed`` rows are (re-)broadcast byte for byte (``send_raw`` is idempotent) -> ``sent``;
- ``sent`` rows are checked for a receipt: ``confirmations`` blocks deep the row is
  ``committed`` (or ``failed`` with the decoded revert, also counted at that depth); a receipt
  that vanished (a reorg, a node that lost its pool) gets the very same bytes re-sent once the
  transaction has been quiet for ``resend_after_s``;
- ``accepted`` rows get the next account nonce (never below ``nonce_floor``, which covers the
  nonces every outbox of the account has stored); the node estimates gas (a refusal is decoded
  here, before anything is stored), and the raw transaction and nonce land on disk in one write
  before they are sent. With a ledger that cannot sign separately (``submit`` given), a row
  is submitted with one call instead and is final at once.

The contracts hold one row per slot (one update per edge and base version, one evaluation per
task, version and edge), so whenever a row's slot may already be taken (a row tried before, a
duplicate refusal, its nonce taken by another transaction) the row is reconciled with what the
chain holds: the same content settles it, other content fails it, nothing leaves it to retry.
What differs between kinds (queries, signing, receipts, the slot lookup, the duplicate error)
comes from a :class:`edge_server.tx_kind.TxKind` adapter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge_server.crash import CrashHook
from edge_server.tx_kind import OutboxRow, TxKind
from fednode.errors import ChainError, ChainTimeoutError, ContractRevertError, FednodeError

__all__ = ["TxOutbox"]


class TxOutbox[RowT: OutboxRow]:
    """Drives the rows of one kind through a ledger acting as the edge account.

    Args:
      kind: the adapter of the kind (store, ledger and what differs).
      confirmations: blocks on top of the including block before a row counts.
      max_in_flight: most signed-but-uncommitted transactions at once (None: no limit).
      resend_after_s: how long a sent transaction may lack a receipt before it is re-sent.
      crash: the test-only crash hook (updates only; rows of other kinds leave it off).
      on_event: called with ``(status, row)`` after each transition (metrics).
      nonce_floor: the lowest nonce no stored transaction of the account holds, over every
        outbox of the account (``Submitter.nonce_floor``); defaults to this kind's store's.
      submit: for a ledger that cannot sign separately: submits a row in one final call and
        returns its chain id; rows are then never signed here.

    Example:
      >>> from edge_server.evaluation_store import EvaluationStore
      >>> from edge_server.evaluations_outbox import EvaluationKind
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> kind = EvaluationKind(EvaluationStore(":memory:"), InMemoryLedger())
      >>> TxOutbox(kind, confirmations=0, submit=kind.submit).run_pass()
      0
    """

    def __init__(
        self,
        kind: TxKind[RowT],
        *,
        confirmations: int,
        max_in_flight: int | None = None,
        resend_after_s: float = 3.0,
        crash: CrashHook | None = None,
        on_event: Callable[[Any, RowT], None] | None = None,
        nonce_floor: Callable[[], int] | None = None,
        submit: Callable[[RowT], int] | None = None,
    ) -> None:
        self._kind = kind
        self._store = kind.store
        self._ledger = kind.ledger
        self._depth = confirmations
        self._max_in_flight = max_in_flight
        self._resend_after_s = resend_after_s
        self._crash = crash or CrashHook(None)
        self._on_event = on_event or (lambda status, row: None)
        self._nonce_floor = nonce_floor or kind.store.next_tx_nonce
        self._submit = submit
        self._last_send: dict[int, float] = {}

    def run_pass(self) -> int:
        """Advances in-flight rows, then takes accepted ones; returns rows that moved.

        Raises:
          ChainError, OSError: the node could not be reached; rows keep their state.
        """
        moved = 0
        for row in self._kind.in_flight():
            moved += self._advance(row)
        pending = [r for r in self._kind.pending() if self._crash.ready(r.local_id)]
        if self._max_in_flight is not None:
            room = self._max_in_flight - len(self._kind.in_flight())
            pending = pending[: max(room, 0)]
        for row in pending:
            moved += self._take(row)
        return moved

    # ---- accepted -> signed -> sent (or -> committed, direct) ----------------------------

    def _take(self, row: RowT) -> int:
        self._crash.reached("before_sign", row.local_id)
        if row.attempts > 0:  # tried before: it may have landed
            settled = self._reconcile(row, refusal=None)
            if settled:
                return settled
        try:
            if self._submit is not None:
                return self._submit_direct(row, self._submit)
            nonce = max(self._ledger.transactions.pending_nonce(), self._nonce_floor())
            signed = self._kind.sign(row, nonce=nonce)
        except ContractRevertError as exc:
            return self._refused(row, exc)
        except ChainError:
            raise
        except FednodeError as exc:  # a value the ledger refuses before signing: final
            return self._fail(row, f"{type(exc).__name__}: {exc}")
        self._store.record_signed(
            row.local_id, nonce=signed.nonce, raw_tx=signed.raw, tx_hash=signed.tx_hash
        )
        self._emit(self._kind.statuses.SIGNED, row)
        self._crash.reached("after_sign", row.local_id)
        return 1 + self._send(self._kind.reload(row))

    def _submit_direct(self, row: RowT, submit: Callable[[RowT], int]) -> int:
        self._store.mark_attempt(row.local_id)
        chain_id = submit(row)
        try:
            landed = self._kind.landed(row)
        except (ChainError, OSError):  # the id is known; hash and block are a convenience
            landed = None
        if landed is None:
            self._commit(row, chain_id, None, None)
        else:
            self._commit(row, chain_id, landed.tx_hash, landed.block)
        return 1

    def _send(self, row: RowT) -> int:
        assert row.raw_tx is not None
        try:
            self._ledger.send_raw(row.raw_tx)
        except ChainError as exc:
            if "nonce too low" not in str(exc).lower():
                raise  # e.g. insufficient funds, full pool: keep the bytes, retry later
            return self._nonce_taken(row, exc)  # a transaction not ours took its nonce
        self._last_send[row.local_id] = time.monotonic()
        self._crash.reached("after_send", row.local_id)
        if row.status == self._kind.statuses.SIGNED:
            self._store.mark_sent(row.local_id)
            self._emit(self._kind.statuses.SENT, row)
        return 1

    # ---- sent -> committed ---------------------------------------------------------------

    def _advance(self, row: RowT) -> int:
        if row.status == self._kind.statuses.SIGNED:
            return self._send(row)
        assert row.tx_hash is not None
        try:
            mined = self._receipt(row.tx_hash, 0) is not None
        except ContractRevertError:  # reverted: it counts once it is as deep as a commit
            mined = True
        if not mined:
            return self._resend_if_quiet(row)
        try:
            receipt = self._receipt(row.tx_hash, self._depth)
        except ContractRevertError as exc:
            return self._refused(row, exc)
        if receipt is None:
            return 0  # mined, not deep enough yet
        chain_id = self._kind.chain_id_from_receipt(receipt)
        self._commit(row, chain_id, row.tx_hash, int(receipt["blockNumber"]))
        return 1

    def _receipt(self, tx_hash: bytes, depth: int) -> Any:
        try:
            return self._ledger.wait_for_receipt(tx_hash, confirmations=depth, timeout=0)
        except ChainTimeoutError:
            return None

    def _resend_if_quiet(self, row: RowT) -> int:
        last = self._last_send.get(row.local_id)
        if last is not None and time.monotonic() - last < self._resend_after_s:
            return 0
        assert row.tx_hash is not None
        self._kind.logger.info(
            "%s %s: no receipt for 0x%s, re-sending it", self._kind.noun, row.ref, row.tx_hash.hex()
        )
        return self._send(row)

    # ---- refusals and reconciliation -----------------------------------------------------

    def _refused(self, row: RowT, exc: ContractRevertError) -> int:
        if exc.name == self._kind.duplicate_error:
            return self._reconcile(row, refusal=exc.name)
        return self._fail(row, exc.name or str(exc))

    def _nonce_taken(self, row: RowT, exc: ChainError) -> int:
        if self._reconcile(row, refusal=None):
            return 1
        self._kind.logger.warning(
            "%s %s: nonce %s taken elsewhere, re-signing", self._kind.noun, row.ref, row.tx_nonce
        )
        self._store.reset_to_accepted(row.local_id, f"re-signing: {exc}")
        return 1

    def _reconcile(self, row: RowT, *, refusal: str | None) -> int:
        """Settles a row whose slot may be taken on chain; returns 1 when the row moved."""
        landed = self._kind.landed(row)
        if landed is None:
            return 0 if refusal is None else self._fail(row, refusal)  # refused, none ours
        if not landed.same:
            return self._fail(row, f"{self._kind.duplicate_error}: {self._kind.clash}")
        if not self._deep_enough(landed.block):
            return 0
        self._commit(row, landed.chain_id, landed.tx_hash, landed.block)
        return 1

    def _deep_enough(self, block: int) -> bool:
        if not hasattr(self._ledger, "w3"):  # a ledger without blocks: final at once
            return True
        return int(self._ledger.w3.eth.block_number) >= block + self._depth

    # ---- bookkeeping ---------------------------------------------------------------------

    def _commit(self, row: RowT, chain_id: int, tx_hash: bytes | None, block: int | None) -> None:
        self._kind.mark_committed(row, chain_id, tx_hash, block)
        self._last_send.pop(row.local_id, None)
        self._emit(self._kind.statuses.COMMITTED, row)
        noun = self._kind.noun
        self._kind.logger.info(
            "%s %s committed as chain %s %d (block %s)", noun, row.ref, noun, chain_id, block
        )

    def _fail(self, row: RowT, error: str) -> int:
        self._store.mark_failed(row.local_id, error)
        self._last_send.pop(row.local_id, None)
        self._emit(self._kind.statuses.FAILED, row)
        self._kind.logger.warning("%s %s failed: %s", self._kind.noun, row.ref, error)
        return 1

    def _emit(self, status: Any, row: RowT) -> None:
        self._on_event(status, row)
