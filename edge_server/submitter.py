"""Edge: the background worker that moves accepted updates from the store onto the chain.

With a ledger that can sign, send and confirm separately (``Web3Ledger``), each pass runs the
durable outbox (edge_server.outbox): raw transactions are stored before they are sent and
re-broadcast after a crash, and an update counts as ``committed`` only ``confirmations`` blocks
deep. Other ledgers (``InMemoryLedger``, whose writes are final at once) get one
``submit_update`` call per row; a row attempted before is first looked up on the ledger, so an
update that did land is recorded instead of being sent twice. A contract refusal marks the row
``failed`` with the decoded custom-error name; a chain that cannot be reached leaves it where it
is, and the worker retries with exponential backoff, also across restarts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edge_server.crash import CrashHook
from edge_server.outbox import Outbox, supports_outbox
from edge_server.store import EdgeStore, UpdateRow, UpdateStatus
from fednode.chain.ledger import Ledger
from fednode.errors import ChainError, ContractRevertError, FednodeError
from fednode.types import LedgerUpdate

__all__ = ["Submitter"]

logger = logging.getLogger(__name__)

EventSink = Callable[[UpdateStatus, UpdateRow], None]


class Submitter:
    """Submits pending updates to the ledger, in a background thread or one pass at a time.

    Args:
      store: the edge store holding accepted rows.
      ledger: a Ledger acting as the edge operator's account (EDGE_ROLE).
      poll_interval_s: idle wait between passes when nothing notifies the worker.
      backoff_initial_s: first wait after the chain could not be reached.
      backoff_max_s: cap of the doubling wait.
      confirmations: blocks on top of the including block before an update is committed.
      max_in_flight: most signed transactions pending at once (outbox only).
      resend_after_s: how long a sent transaction may lack a receipt before it is re-sent.
      crash: test-only crash hook (edge_server.crash).
      on_event: called with ``(status, row)`` after each transition (metrics).

    Example:
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> submitter = Submitter(EdgeStore(":memory:"), InMemoryLedger())
      >>> submitter.submit_pending()
      0
    """

    def __init__(
        self,
        store: EdgeStore,
        ledger: Ledger,
        *,
        poll_interval_s: float = 1.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        confirmations: int = 0,
        max_in_flight: int = 16,
        resend_after_s: float = 3.0,
        crash: CrashHook | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._poll_interval_s = poll_interval_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._crash = crash or CrashHook(None)
        self._on_event: EventSink = on_event or (lambda status, row: None)
        self._nonce_sources: list[Callable[[], int]] = [store.next_tx_nonce]
        self._outbox: Outbox | None = None
        if supports_outbox(ledger):
            self._outbox = Outbox(
                store, ledger, confirmations=confirmations, max_in_flight=max_in_flight,
                resend_after_s=resend_after_s, crash=self._crash,
                on_event=self._on_event, nonce_floor=self.nonce_floor,
            )  # fmt: skip
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pass_lock = threading.Lock()
        self._extra_passes: list[Callable[[], int]] = []
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Starts the worker thread; it first resumes rows left pending by an earlier run."""
        if self.running:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="edge-submitter", daemon=True
        )
        self._thread.start()

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Asks the worker to stop after the row it is on, and waits for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def notify(self) -> None:
        """Tells the worker a new row was committed (called after each 202)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def uses_outbox(self) -> bool:
        """Whether rows go through the sign/send/confirm outbox (else direct submits)."""
        return self._outbox is not None

    # ---- one pass ------------------------------------------------------------------------

    def submit_pending(self) -> int:
        """Runs one pass; returns how many rows moved.

        Raises:
          ChainError: the chain could not be reached (also ``OSError`` from the transport);
            the row keeps its state and the rows after it are not tried (order is kept).
        """
        return self._submit_pass(threading.Event())

    def add_pass(
        self, run_pass: Callable[[], int], *, nonce_source: Callable[[], int] | None = None
    ) -> None:
        """Runs ``run_pass`` after each pass of updates, under the same lock and backoff.

        For other transactions of the same edge account (the evaluation outbox): one account
        must not pick nonces in two threads at once, and every outbox must skip the nonces the
        others have stored. ``nonce_source`` returns one past the highest nonce the pass's own
        store holds; :meth:`nonce_floor` then covers it for every outbox of this account.
        """
        self._extra_passes.append(run_pass)
        if nonce_source is not None:
            self._nonce_sources.append(nonce_source)

    def nonce_floor(self) -> int:
        """The lowest account nonce no stored transaction of this edge holds (any outbox).

        A transaction signed but not yet in the node's pool (its send failed) keeps its nonce
        here, so the next one signed skips it instead of colliding with it.

        Example:
          >>> from fednode.chain.memory_ledger import InMemoryLedger
          >>> submitter = Submitter(EdgeStore(":memory:"), InMemoryLedger())
          >>> submitter.add_pass(lambda: 0, nonce_source=lambda: 7)
          >>> submitter.nonce_floor()
          7
        """
        return max(source() for source in self._nonce_sources)

    def _submit_pass(self, stop: threading.Event) -> int:
        with self._pass_lock:
            moved = self._submit_updates(stop)
            for run_pass in self._extra_passes:
                moved += run_pass()
            return moved

    def _submit_updates(self, stop: threading.Event) -> int:
        if self._outbox is not None:
            return self._outbox.run_pass()
        settled = 0
        for row in self._store.pending_updates():
            if stop.is_set():
                break
            if not self._crash.ready(row.local_id):
                continue
            self._submit_row(row)
            settled += 1
        return settled

    # ---- direct path (ledgers whose writes are final at once) ----------------------------

    def _submit_row(self, row: UpdateRow) -> None:
        self._crash.reached("before_sign", row.local_id)
        if row.attempts > 0:
            landed = self._find_on_ledger(row)
            if landed is not None:
                self._record_committed(row, landed.update_id, landed)
                return
        self._store.mark_attempt(row.local_id)
        try:
            update_id = self._ledger.submit_update(
                row.task_id, row.base_version, row.payload,
                num_examples=row.num_examples, epsilon_micro=row.epsilon_micro,
            )  # fmt: skip
        except ContractRevertError as exc:
            self._record_refusal(row, exc)
            return
        except (ChainError, OSError) as exc:  # OSError: a transport error web3 did not wrap
            self._store.note_error(row.local_id, f"{type(exc).__name__}: {exc}")
            raise
        except FednodeError as exc:  # a value the ledger refuses before sending: final
            self._record_failed(row, f"{type(exc).__name__}: {exc}")
            return
        self._record_committed(row, update_id, self._lookup_quietly(row, update_id))

    def _record_refusal(self, row: UpdateRow, exc: ContractRevertError) -> None:
        landed = self._find_on_ledger(row) if row.attempts > 0 else None
        if landed is not None:  # our own earlier transaction made this one a duplicate
            self._record_committed(row, landed.update_id, landed)
            return
        self._record_failed(row, exc.name or str(exc))

    def _record_failed(self, row: UpdateRow, error: str) -> None:
        self._store.mark_failed(row.local_id, error)
        self._on_event(UpdateStatus.FAILED, row)
        logger.warning("update %s refused: %s", row.ref, error)

    def _record_committed(
        self, row: UpdateRow, update_id: int, landed: LedgerUpdate | None
    ) -> None:
        tx_hash = None if landed is None else landed.tx_hash
        block = None if landed is None else landed.block_number
        self._store.mark_committed(row.local_id, update_id, tx_hash, block=block)
        self._on_event(UpdateStatus.COMMITTED, row)
        logger.info("update %s committed as chain update %d", row.ref, update_id)

    def _find_on_ledger(self, row: UpdateRow) -> LedgerUpdate | None:
        sender = self._ledger.sender.lower()
        for update in self._ledger.read_updates(row.task_id, base_version=row.base_version):
            if update.edge.lower() == sender and update.digest == row.digest:
                return update
        return None

    def _lookup_quietly(self, row: UpdateRow, update_id: int) -> LedgerUpdate | None:
        try:
            landed = self._find_on_ledger(row)
        except (ChainError, OSError) as exc:  # the id is known; the tx hash is a convenience
            logger.info("could not read back update %d for its tx hash: %s", update_id, exc)
            return None
        return landed if landed is not None and landed.update_id == update_id else None

    # ---- worker loop ---------------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        initial, cap = self._backoff
        delay = initial
        while not stop.is_set():
            self._wake.clear()
            try:
                moved = self._submit_pass(stop)
            except Exception as exc:  # keep the worker alive; rows keep their state
                _log_pass_failure(exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, cap)
                continue
            delay = initial
            if not moved or not self.uses_outbox:
                self._wake.wait(self._in_flight_wait())

    def _in_flight_wait(self) -> float:
        # While transactions are in flight, poll for receipts a bit faster than when idle.
        if self._outbox is not None and self._store.in_flight_updates():
            return min(self._poll_interval_s, 0.25)
        return self._poll_interval_s


def _log_pass_failure(exc: Exception, delay: float) -> None:
    if isinstance(exc, ChainError | OSError):
        logger.warning("chain unreachable, retrying in %.1f s: %s", delay, exc)
    else:
        logger.exception("submitter pass failed, retrying in %.1f s", delay)

