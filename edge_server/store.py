"""Edge: the durable SQLite store (outbox) of enrolled devices, seen nonces and accepted updates.

The store runs in WAL mode with ``synchronous=FULL``: once :meth:`EdgeStore.insert_update`
returns, the update survives a crash, and only then is the device told it was accepted. The
nonce and the update are inserted in one transaction, and a partial unique index keeps at most
one live (not failed) update per task and base version.

An update then moves ``accepted -> signed -> sent -> committed`` (or ``failed`` with the decoded
contract error). The signed raw transaction is stored in the same write that assigns its account
nonce (:meth:`EdgeStore.record_signed`), so after a crash the very same bytes are re-broadcast
and no nonce is ever used twice or skipped. One connection is shared by all threads behind a lock.

The schema lives in :mod:`edge_server.store_schema`, the row types in
:mod:`edge_server.store_rows` and the outbox transitions in :mod:`edge_server.store_outbox`;
their public names are re-exported here.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from edge_server.store_outbox import OutboxRecords
from edge_server.store_rows import (
    IN_FLIGHT,
    UPDATE_COLUMNS,
    UpdateRow,
    UpdateStatus,
    update_row_from,
)
from edge_server.store_schema import SCHEMA_VERSION, open_database
from fednode.codec import digest_bytes
from fednode.errors import FednodeValueError, UpdateRejectedError
from fednode.update.envelope import UpdateEnvelope

__all__ = ["EdgeStore", "IN_FLIGHT", "SCHEMA_VERSION", "UpdateRow", "UpdateStatus"]


class EdgeStore(OutboxRecords):
    """SQLite-backed edge state, safe to share between the HTTP threads and the submitter.

    Example:
      >>> store = EdgeStore(":memory:")
      >>> store.enroll_device("dev-1", "ab" * 32)
      >>> store.device_public_key("dev-1") == "ab" * 32
      True
      >>> store.close()
    """

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.RLock()
        self._db = open_database(path)

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection; the store is unusable afterwards."""
        with self._lock:
            self._db.close()

    # ---- devices -------------------------------------------------------------------------

    def enroll_device(self, device_id: str, public_key_hex: str, *, replace: bool = False) -> None:
        """Records a device's public key; re-enrolling the same key is a no-op.

        Raises:
          FednodeValueError: if the device is enrolled with another key and not ``replace``.
        """
        with self._lock:
            current = self.device_public_key(device_id)
            if current is not None and current != public_key_hex and not replace:
                raise FednodeValueError(f"device {device_id} is enrolled with another key")
            self._db.execute(
                "INSERT OR REPLACE INTO devices (device_id, public_key, enrolled_at)"
                " VALUES (?,?,?)",
                (device_id, public_key_hex, time.time()),
            )

    def revoke_device(self, device_id: str) -> bool:
        """Removes a device; returns whether it was enrolled."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM devices WHERE device_id = ?", (device_id,))
            return cursor.rowcount > 0

    def device_public_key(self, device_id: str) -> str | None:
        """The device's public key as hex, or None when it is not enrolled."""
        with self._lock:
            row = self._db.execute(
                "SELECT public_key FROM devices WHERE device_id = ?", (device_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    # ---- intake --------------------------------------------------------------------------

    def has_nonce(self, device_id: str, nonce: str) -> bool:
        """Whether this device already used this nonce on an accepted update."""
        query = "SELECT 1 FROM nonces WHERE device_id = ? AND nonce = ?"
        return self._exists(query, device_id, nonce)

    def holds_update(self, task_id: int, base_version: int) -> bool:
        """Whether a live (not failed) update exists for this task and base version."""
        query = (
            "SELECT 1 FROM updates WHERE task_id = ? AND base_version = ? AND status != 'failed'"
        )
        return self._exists(query, task_id, base_version)

    def insert_update(self, envelope: UpdateEnvelope) -> UpdateRow:
        """Durably records a validated update together with its nonce, in one transaction.

        Raises:
          UpdateRejectedError: ``replayed_nonce`` or ``duplicate_base``; nothing is written then.
        """
        with self.transaction():
            self.add_nonce(envelope.device_id, envelope.nonce)
            local_id = self.add_update(
                envelope.device_id, envelope.task_id, envelope.base_version, envelope.payload,
                num_examples=envelope.num_examples, epsilon_micro=envelope.epsilon_micro,
            )  # fmt: skip
            return self._row_where("local_id = ?", local_id)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One durable write transaction (``BEGIN IMMEDIATE`` .. ``COMMIT``) under the store lock.

        Everything written through the yielded connection, :meth:`add_nonce` and
        :meth:`add_update` inside the block commits together or not at all.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def add_nonce(self, device_id: str, nonce: str) -> None:
        """Records a device nonce (inside :meth:`transaction`).

        Raises:
          UpdateRejectedError: ``replayed_nonce``.
        """
        self._insert_nonce(device_id, nonce, time.time())

    def add_update(
        self,
        source: str,
        task_id: int,
        base_version: int,
        payload: bytes,
        *,
        num_examples: int,
        epsilon_micro: int,
    ) -> int:
        """Inserts an ``accepted`` update row (inside :meth:`transaction`); returns its local id.

        ``source`` is the device id, or ``cohort`` for a cohort's aggregate.

        Raises:
          UpdateRejectedError: ``duplicate_base``.
        """
        now = time.time()
        values = (
            uuid.uuid4().hex, source, task_id, base_version, digest_bytes(payload).hex(),
            num_examples, epsilon_micro, bytes(payload), UpdateStatus.ACCEPTED.value, now, now,
        )  # fmt: skip
        return self._insert_row(values)

    # ---- reads ---------------------------------------------------------------------------

    def get_update(self, ref: str) -> UpdateRow | None:
        """The update with this reference, or None."""
        with self._lock:
            try:
                return self._row_where("ref = ?", ref)
            except LookupError:
                return None

    def list_updates(self, *, status: UpdateStatus | None = None) -> list[UpdateRow]:
        """Updates in acceptance order, optionally only those with ``status``."""
        where, args = ("status = ?", (status.value,)) if status else ("1", ())
        return self._rows(f"{where} ORDER BY local_id", *args)

    def count_by_status(self) -> dict[str, int]:
        """Number of updates per status (every status present, zeros included)."""
        with self._lock:
            query = "SELECT status, COUNT(*) FROM updates GROUP BY status"
            rows = self._db.execute(query).fetchall()
        counts = {status.value: 0 for status in UpdateStatus}
        counts.update({str(status): int(count) for status, count in rows})
        return counts

    def pending_updates(self) -> list[UpdateRow]:
        """Accepted updates not yet signed, oldest first."""
        return self.list_updates(status=UpdateStatus.ACCEPTED)

    # ---- helpers -------------------------------------------------------------------------

    def _insert_nonce(self, device_id: str, nonce: str, now: float) -> None:
        try:
            self._db.execute(
                "INSERT INTO nonces (device_id, nonce, seen_at) VALUES (?,?,?)",
                (device_id, nonce, now),
            )
        except sqlite3.IntegrityError as exc:
            raise UpdateRejectedError("replayed_nonce", f"nonce {nonce} was used before") from exc

    def _insert_row(self, values: tuple[object, ...]) -> int:
        try:
            cursor = self._db.execute(
                "INSERT INTO updates (ref, device_id, task_id, base_version, digest, num_examples,"
                " epsilon_micro, payload, status, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
        except sqlite3.IntegrityError as exc:
            detail = f"this edge already holds an update for task {values[2]} base {values[3]}"
            raise UpdateRejectedError("duplicate_base", detail) from exc
        return int(cursor.lastrowid or 0)

    def _update(self, local_id: int, assignments: str, *args: object) -> None:
        with self._lock:
            self._db.execute(
                f"UPDATE updates SET {assignments}, updated_at = ? WHERE local_id = ?",
                (*args, time.time(), local_id),
            )

    def _exists(self, query: str, *args: object) -> bool:
        with self._lock:
            return self._db.execute(query, args).fetchone() is not None

    def _rows(self, where: str, *args: object) -> list[UpdateRow]:
        with self._lock:
            rows = self._db.execute(f"SELECT {UPDATE_COLUMNS} FROM updates WHERE {where}", args)
            return [update_row_from(row) for row in rows.fetchall()]

    def _row_where(self, where: str, *args: object) -> UpdateRow:
        rows = self._rows(where, *args)
        if not rows:
            raise LookupError(where)
        return rows[0]
