"""Edge: the outbox half of the edge store: in-flight queries and status transitions.

Mixed into :class:`edge_server.store.EdgeStore`. The signed raw transaction is stored in the
same write that assigns its account nonce (:meth:`OutboxRecords.record_signed`), so after a
crash the very same bytes are re-broadcast and no nonce is ever used twice or skipped.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING

from edge_server.store_rows import UpdateRow
from fednode.errors import FednodeValueError

__all__ = ["OutboxRecords"]


class OutboxRecords:
    """Outbox methods of ``EdgeStore``; rely on its connection, lock and row helpers."""

    _db: sqlite3.Connection
    _lock: threading.RLock

    if TYPE_CHECKING:  # provided by EdgeStore, which mixes this class in

        def _rows(self, where: str, *args: object) -> list[UpdateRow]: ...

        def _update(self, local_id: int, assignments: str, *args: object) -> None: ...

    # ---- queries -------------------------------------------------------------------------

    def in_flight_updates(self) -> list[UpdateRow]:
        """Signed or sent updates not yet committed, in account-nonce order."""
        return self._rows("status IN ('signed', 'sent') ORDER BY tx_nonce")

    def next_tx_nonce(self) -> int:
        """One past the highest account nonce this store ever assigned (0 if none)."""
        with self._lock:
            (top,) = self._db.execute("SELECT MAX(tx_nonce) FROM updates").fetchone()
        return 0 if top is None else int(top) + 1

    # ---- transitions ---------------------------------------------------------------------

    def mark_attempt(self, local_id: int) -> None:
        """Counts a direct submission attempt (ledgers without an outbox API)."""
        self._update(local_id, "attempts = attempts + 1")

    def record_signed(self, local_id: int, *, nonce: int, raw_tx: bytes, tx_hash: bytes) -> None:
        """Assigns the account nonce and stores the signed bytes, in one durable write.

        Raises:
          FednodeValueError: the nonce is already held by another row (nothing is written).
        """
        try:
            self._update(
                local_id,
                "status = 'signed', attempts = attempts + 1, tx_nonce = ?, raw_tx = ?,"
                " tx_hash = ?, error = NULL",
                nonce, bytes(raw_tx), bytes(tx_hash).hex(),
            )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            raise FednodeValueError(f"account nonce {nonce} is already assigned") from exc

    def mark_sent(self, local_id: int) -> None:
        """Records that the node accepted the signed transaction into its pool."""
        self._update(local_id, "status = 'sent'")

    def mark_committed(
        self, local_id: int, chain_update_id: int, tx_hash: bytes | None, *, block: int | None
    ) -> None:
        """Records that the chain holds this update under ``chain_update_id``, deep enough."""
        hash_hex = None if tx_hash is None else bytes(tx_hash).hex()
        self._update(
            local_id,
            "status = 'committed', chain_update_id = ?, tx_hash = COALESCE(?, tx_hash),"
            " block_number = ?, error = NULL",
            chain_update_id, hash_hex, block,
        )  # fmt: skip

    def mark_failed(self, local_id: int, error: str) -> None:
        """Records that the chain refused this update for good."""
        self._update(local_id, "status = 'failed', error = ?", error)

    def reset_to_accepted(self, local_id: int, error: str) -> None:
        """Drops a signed transaction whose nonce another transaction took; it is signed anew."""
        self._update(
            local_id,
            "status = 'accepted', tx_nonce = NULL, raw_tx = NULL, tx_hash = NULL, error = ?",
            error,
        )

    def note_error(self, local_id: int, error: str) -> None:
        """Keeps the last transient error of a still-pending update."""
        self._update(local_id, "error = ?", error)
