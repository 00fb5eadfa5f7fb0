"""Edge: the durable SQLite store of enrolled devices, seen nonces and accepted updates.

The store runs in WAL mode with ``synchronous=FULL``: once :meth:`EdgeStore.insert_update`
returns, the update survives a crash, and only then is the device told it was accepted. The
nonce and the update are inserted in one transaction, and a partial unique index keeps at most
one live (not failed) update per task and base version. One connection is shared by all
threads behind a lock.
"""

from __future__ import annotations

import enum
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from edge_server.protocol import UpdateEnvelope
from fednode.errors import FednodeValueError, UpdateRejectedError

__all__ = ["EdgeStore", "UpdateRow", "UpdateStatus"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id   TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    enrolled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    device_id TEXT NOT NULL,
    nonce     TEXT NOT NULL,
    seen_at   REAL NOT NULL,
    UNIQUE (device_id, nonce)
);
CREATE TABLE IF NOT EXISTS updates (
    local_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ref             TEXT NOT NULL UNIQUE,
    device_id       TEXT NOT NULL,
    task_id         INTEGER NOT NULL,
    base_version    INTEGER NOT NULL,
    digest          TEXT NOT NULL,
    num_examples    INTEGER NOT NULL,
    epsilon_micro   INTEGER NOT NULL,
    payload         BLOB NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('accepted', 'submitted', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    chain_update_id INTEGER,
    tx_hash         TEXT,
    error           TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS updates_one_live_per_base
    ON updates (task_id, base_version) WHERE status != 'failed';
CREATE INDEX IF NOT EXISTS updates_by_status ON updates (status, local_id);
"""
_COLUMNS = (
    "local_id, ref, device_id, task_id, base_version, digest, num_examples, epsilon_micro, "
    "payload, status, attempts, chain_update_id, tx_hash, error, created_at, updated_at"
)


class UpdateStatus(enum.StrEnum):
    """Where an accepted update is on its way to the chain."""

    ACCEPTED = "accepted"
    SUBMITTED = "submitted"
    FAILED = "failed"


@dataclass(frozen=True)
class UpdateRow:
    """One update as the edge holds it."""

    local_id: int
    ref: str
    device_id: str
    task_id: int
    base_version: int
    digest: bytes
    num_examples: int
    epsilon_micro: int
    payload: bytes
    status: UpdateStatus
    attempts: int
    chain_update_id: int | None
    tx_hash: bytes | None
    error: str | None
    created_at: float
    updated_at: float


class EdgeStore:
    """SQLite-backed edge state, safe to share between the HTTP threads and the submitter.

    Example:
      >>> store = EdgeStore(":memory:")
      >>> store.enroll_device("dev-1", "ab" * 32)
      >>> store.device_public_key("dev-1") == "ab" * 32
      True
      >>> store.close()
    """

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

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

    # ---- updates -------------------------------------------------------------------------

    def has_nonce(self, device_id: str, nonce: str) -> bool:
        """Whether this device already used this nonce on an accepted update."""
        query = "SELECT 1 FROM nonces WHERE device_id = ? AND nonce = ?"
        return self._exists(query, device_id, nonce)

    def holds_update(self, task_id: int, base_version: int) -> bool:
        """Whether a live (accepted or submitted) update exists for this task and base version."""
        query = (
            "SELECT 1 FROM updates WHERE task_id = ? AND base_version = ? AND status != 'failed'"
        )
        return self._exists(query, task_id, base_version)

    def insert_update(self, envelope: UpdateEnvelope) -> UpdateRow:
        """Durably records a validated update together with its nonce, in one transaction.

        Raises:
          UpdateRejectedError: ``replayed_nonce`` or ``duplicate_base``; nothing is written then.
        """
        now = time.time()
        values = (
            uuid.uuid4().hex, envelope.device_id, envelope.task_id, envelope.base_version,
            envelope.payload_digest, envelope.num_examples, envelope.epsilon_micro,
            envelope.payload, UpdateStatus.ACCEPTED.value, now, now,
        )  # fmt: skip
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._insert_nonce(envelope.device_id, envelope.nonce, now)
                local_id = self._insert_row(values)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._row_where("local_id = ?", local_id)

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
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM updates WHERE {where} ORDER BY local_id", args
            ).fetchall()
        return [_to_row(row) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        """Number of updates per status (every status present, zeros included)."""
        with self._lock:
            query = "SELECT status, COUNT(*) FROM updates GROUP BY status"
            rows = self._db.execute(query).fetchall()
        counts = {status.value: 0 for status in UpdateStatus}
        counts.update({str(status): int(count) for status, count in rows})
        return counts

    def pending_updates(self) -> list[UpdateRow]:
        """Accepted updates not yet on the chain, oldest first."""
        return self.list_updates(status=UpdateStatus.ACCEPTED)

    def mark_attempt(self, local_id: int) -> None:
        """Counts a submission attempt; recorded before the transaction is sent."""
        self._update(local_id, "attempts = attempts + 1")

    def mark_submitted(self, local_id: int, chain_update_id: int, tx_hash: bytes | None) -> None:
        """Records that the chain holds this update under ``chain_update_id``."""
        hash_hex = None if tx_hash is None else bytes(tx_hash).hex()
        self._update(
            local_id, "status = ?, chain_update_id = ?, tx_hash = ?, error = NULL",
            UpdateStatus.SUBMITTED.value, chain_update_id, hash_hex,
        )  # fmt: skip

    def mark_failed(self, local_id: int, error: str) -> None:
        """Records that the chain refused this update for good."""
        self._update(local_id, "status = ?, error = ?", UpdateStatus.FAILED.value, error)

    def note_error(self, local_id: int, error: str) -> None:
        """Keeps the last transient error of a still-pending update."""
        self._update(local_id, "error = ?", error)

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

    def _row_where(self, where: str, *args: object) -> UpdateRow:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM updates WHERE {where}", args).fetchone()
        if row is None:
            raise LookupError(where)
        return _to_row(row)


def _to_row(row: tuple[object, ...]) -> UpdateRow:
    (local_id, ref, device_id, task_id, base_version, digest_hex, num_examples, epsilon_micro,
     payload, status, attempts, chain_update_id, tx_hash, error, created_at, updated_at,
     ) = row  # fmt: skip
    return UpdateRow(
        local_id=int(local_id), ref=str(ref), device_id=str(device_id), task_id=int(task_id),
        base_version=int(base_version), digest=bytes.fromhex(str(digest_hex)),
        num_examples=int(num_examples), epsilon_micro=int(epsilon_micro), payload=bytes(payload),
        status=UpdateStatus(status), attempts=int(attempts),
        chain_update_id=None if chain_update_id is None else int(chain_update_id),
        tx_hash=None if tx_hash is None else bytes.fromhex(str(tx_hash)),
        error=None if error is None else str(error),
        created_at=float(created_at), updated_at=float(updated_at),
    )  # fmt: skip
