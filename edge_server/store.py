"""Edge: the durable SQLite store (outbox) of enrolled devices, seen nonces and accepted updates.

The store runs in WAL mode with ``synchronous=FULL``: once :meth:`EdgeStore.insert_update`
returns, the update survives a crash, and only then is the device told it was accepted. The
nonce and the update are inserted in one transaction, and a partial unique index keeps at most
one live (not failed) update per task and base version.

An update then moves ``accepted -> signed -> sent -> committed`` (or ``failed`` with the decoded
contract error). The signed raw transaction is stored in the same write that assigns its account
nonce (:meth:`EdgeStore.record_signed`), so after a crash the very same bytes are re-broadcast
and no nonce is ever used twice or skipped. One connection is shared by all threads behind a lock.
"""

from __future__ import annotations

import contextlib
import enum
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from edge_server.protocol import UpdateEnvelope
from fednode.codec import digest_bytes
from fednode.errors import FednodeValueError, UpdateRejectedError

__all__ = ["EdgeStore", "IN_FLIGHT", "SCHEMA_VERSION", "UpdateRow", "UpdateStatus"]

SCHEMA_VERSION = 2
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
    status          TEXT NOT NULL
        CHECK (status IN ('accepted', 'signed', 'sent', 'committed', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    tx_nonce        INTEGER,
    raw_tx          BLOB,
    tx_hash         TEXT,
    chain_update_id INTEGER,
    block_number    INTEGER,
    error           TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS updates_one_live_per_base
    ON updates (task_id, base_version) WHERE status != 'failed';
CREATE UNIQUE INDEX IF NOT EXISTS updates_one_row_per_tx_nonce
    ON updates (tx_nonce) WHERE tx_nonce IS NOT NULL;
CREATE INDEX IF NOT EXISTS updates_by_status ON updates (status, local_id);
CREATE TABLE IF NOT EXISTS cohorts (
    task_id      INTEGER NOT NULL,
    base_version INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    secure       INTEGER NOT NULL,
    threshold    INTEGER NOT NULL,
    scale        REAL NOT NULL,
    state        TEXT NOT NULL,
    deadline     REAL,
    update_ref   TEXT,
    error        TEXT,
    created_at   REAL NOT NULL,
    PRIMARY KEY (task_id, base_version)
);
CREATE TABLE IF NOT EXISTS cohort_members (
    task_id       INTEGER NOT NULL,
    base_version  INTEGER NOT NULL,
    device_id     TEXT NOT NULL,
    ref           TEXT NOT NULL UNIQUE,
    position      INTEGER NOT NULL,
    num_examples  INTEGER NOT NULL,
    epsilon_micro INTEGER NOT NULL DEFAULT 0,
    mask_public   BLOB,
    enc_public    BLOB,
    payload       BLOB,
    masked        BLOB,
    shared        INTEGER NOT NULL DEFAULT 0,
    dropped       INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL,
    PRIMARY KEY (task_id, base_version, device_id),
    UNIQUE (task_id, base_version, position)
);
CREATE TABLE IF NOT EXISTS cohort_shares (
    task_id      INTEGER NOT NULL,
    base_version INTEGER NOT NULL,
    sender       TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    box          BLOB NOT NULL,
    PRIMARY KEY (task_id, base_version, sender, recipient)
);
CREATE TABLE IF NOT EXISTS cohort_reveals (
    task_id      INTEGER NOT NULL,
    base_version INTEGER NOT NULL,
    revealer     TEXT NOT NULL,
    dropped      TEXT NOT NULL,
    x            INTEGER NOT NULL,
    share        TEXT NOT NULL,
    PRIMARY KEY (task_id, base_version, revealer, dropped)
);
"""
_COLUMNS = (
    "local_id, ref, device_id, task_id, base_version, digest, num_examples, epsilon_micro, "
    "payload, status, attempts, tx_nonce, raw_tx, tx_hash, chain_update_id, block_number, "
    "error, created_at, updated_at"
)


class UpdateStatus(enum.StrEnum):
    """Where an accepted update is on its way to the chain."""

    ACCEPTED = "accepted"
    SIGNED = "signed"
    SENT = "sent"
    COMMITTED = "committed"
    FAILED = "failed"


IN_FLIGHT = (UpdateStatus.SIGNED, UpdateStatus.SENT)
"""Statuses whose row holds a signed transaction that must reach the chain."""


@dataclass(frozen=True)
class UpdateRow:
    """One update as the edge holds it (``raw_tx`` and ``tx_nonce`` once signed)."""

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
    tx_nonce: int | None
    raw_tx: bytes | None
    tx_hash: bytes | None
    chain_update_id: int | None
    block_number: int | None
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
        _check_schema_version(self._db, path)
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

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
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM updates WHERE {where}", args)
            return [_to_row(row) for row in rows.fetchall()]

    def _row_where(self, where: str, *args: object) -> UpdateRow:
        rows = self._rows(where, *args)
        if not rows:
            raise LookupError(where)
        return rows[0]


def _check_schema_version(db: sqlite3.Connection, path: str | Path) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    has_updates = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'updates'"
    ).fetchone()
    if has_updates and version != SCHEMA_VERSION:
        raise FednodeValueError(
            f"{path} holds edge store schema {version}, this edge needs {SCHEMA_VERSION}: "
            "drain it with the older edge server or start from a new file"
        )


def _optional(value: object, convert: type) -> object:
    return None if value is None else convert(value)


def _to_row(row: tuple[object, ...]) -> UpdateRow:
    (local_id, ref, device_id, task_id, base_version, digest_hex, num_examples, epsilon_micro,
     payload, status, attempts, tx_nonce, raw_tx, tx_hash, chain_update_id, block_number,
     error, created_at, updated_at) = row  # fmt: skip
    return UpdateRow(
        local_id=int(local_id), ref=str(ref), device_id=str(device_id), task_id=int(task_id),
        base_version=int(base_version), digest=bytes.fromhex(str(digest_hex)),
        num_examples=int(num_examples), epsilon_micro=int(epsilon_micro), payload=bytes(payload),
        status=UpdateStatus(status), attempts=int(attempts),
        tx_nonce=_optional(tx_nonce, int), raw_tx=_optional(raw_tx, bytes),
        tx_hash=None if tx_hash is None else bytes.fromhex(str(tx_hash)),
        chain_update_id=_optional(chain_update_id, int),
        block_number=_optional(block_number, int), error=_optional(error, str),
        created_at=float(created_at), updated_at=float(updated_at),
    )  # type: ignore[arg-type]  # fmt: skip
