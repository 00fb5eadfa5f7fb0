"""Edge: the background worker that moves accepted updates from the store onto the chain.

Rows are submitted one at a time in acceptance order with the edge operator's ledger account.
A contract refusal marks the row ``failed`` with the decoded custom-error name; a chain that
cannot be reached leaves the row ``accepted`` and the worker retries with exponential backoff,
so nothing accepted is lost, also across restarts. Each attempt is counted in the store before
the transaction is sent; a row that was attempted before (a timeout, a crash) is first looked
up on the ledger, so a transaction that did land is recorded instead of being sent twice.
"""

from __future__ import annotations

import logging
import threading

from edge_server.store import EdgeStore, UpdateRow
from fednode.chain.ledger import Ledger
from fednode.errors import ChainError, ContractRevertError, FednodeError
from fednode.types import LedgerUpdate

__all__ = ["Submitter"]

logger = logging.getLogger(__name__)


class Submitter:
    """Submits pending updates to the ledger, in a background thread or one pass at a time.

    Args:
      store: the edge store holding accepted rows.
      ledger: a Ledger acting as the edge operator's account (EDGE_ROLE).
      poll_interval_s: idle wait between passes when nothing notifies the worker.
      backoff_initial_s: first wait after the chain could not be reached.
      backoff_max_s: cap of the doubling wait.

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
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._poll_interval_s = poll_interval_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pass_lock = threading.Lock()
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

    # ---- one pass ------------------------------------------------------------------------

    def submit_pending(self) -> int:
        """Submits every pending row in order; returns how many rows were settled.

        Raises:
          ChainError: the chain could not be reached (also ``OSError`` from the transport);
            the row stays ``accepted`` and the rows after it are not tried (order is kept).
        """
        return self._submit_pass(threading.Event())

    def _submit_pass(self, stop: threading.Event) -> int:
        settled = 0
        with self._pass_lock:
            for row in self._store.pending_updates():
                if stop.is_set():
                    break
                self._submit_row(row)
                settled += 1
        return settled

    def _submit_row(self, row: UpdateRow) -> None:
        if row.attempts > 0:
            landed = self._find_on_ledger(row)
            if landed is not None:
                self._record_submitted(row, landed.update_id, landed)
                return
        self._store.mark_attempt(row.local_id)
        try:
            update_id = self._ledger.submit_update(
                row.task_id,
                row.base_version,
                row.payload,
                num_examples=row.num_examples,
                epsilon_micro=row.epsilon_micro,
            )
        except ContractRevertError as exc:
            self._record_refusal(row, exc)
            return
        except (ChainError, OSError) as exc:  # OSError: a transport error web3 did not wrap
            self._store.note_error(row.local_id, f"{type(exc).__name__}: {exc}")
            raise
        except FednodeError as exc:  # a value the ledger refuses before sending: final
            self._store.mark_failed(row.local_id, f"{type(exc).__name__}: {exc}")
            logger.warning("update %s refused before sending: %s", row.ref, exc)
            return
        self._record_submitted(row, update_id, self._lookup_quietly(row, update_id))

    def _record_refusal(self, row: UpdateRow, exc: ContractRevertError) -> None:
        landed = self._find_on_ledger(row) if row.attempts > 0 else None
        if landed is not None:  # our own earlier transaction made this one a duplicate
            self._record_submitted(row, landed.update_id, landed)
            return
        self._store.mark_failed(row.local_id, exc.name or str(exc))
        logger.warning("update %s refused by the chain: %s", row.ref, exc)

    def _record_submitted(
        self, row: UpdateRow, update_id: int, landed: LedgerUpdate | None
    ) -> None:
        tx_hash = None if landed is None else landed.tx_hash
        self._store.mark_submitted(row.local_id, update_id, tx_hash)
        logger.info("update %s submitted as chain update %d", row.ref, update_id)

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
                self._submit_pass(stop)
            except Exception as exc:  # keep the worker alive; the row stays accepted
                _log_pass_failure(exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, cap)
                continue
            delay = initial
            self._wake.wait(self._poll_interval_s)


def _log_pass_failure(exc: Exception, delay: float) -> None:
    if isinstance(exc, ChainError | OSError):
        logger.warning("chain unreachable, retrying in %.1f s: %s", delay, exc)
    else:
        logger.exception("submitter pass failed, retrying in %.1f s", delay)
