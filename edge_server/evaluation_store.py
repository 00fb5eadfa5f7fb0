"""Edge: the durable SQLite outbox of per-site evaluations, apart from the update store.

Its own file (``<db>.evaluations.sqlite``) in WAL mode with ``synchronous=FULL``: once
:meth:`EvaluationStore.insert` returns, the evaluation survives a crash, and only then is the
device answered. The device's nonce and the row land in one transaction; a partial unique
index keeps at most one live (not failed) evaluation per task and version, the contract's own
rule for this edge. A row moves ``accepted -> signed -> sent -> committed`` (or ``failed``);
the raw transaction is stored with its account nonce before it is sent.
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

from fednode.errors import UpdateRejectedError
from fednode.types import METRIC_SCALE, NO_METRIC_MICRO
from fednode.update.evaluation import EvaluationEnvelope

__all__ = ["EvaluationRow", "EvaluationStatus", "EvaluationStore", "evaluation_db_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluation_nonces (
    device_id TEXT NOT NULL,
    nonce     TEXT NOT NULL,
    seen_at   REAL NOT NULL,
    UNIQUE (device_id, nonce)
);
CREATE TABLE IF NOT EXISTS evaluations (
    local_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ref             TEXT NOT NULL UNIQUE,
    device_id       TEXT NOT NULL,
    task_id         INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    metric_micro    INTEGER NOT NULL,
    secondary_micro INTEGER NOT NULL,
    num_examples    INTEGER NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('accepted', 'signed', 'sent', 'committed', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    tx_nonce        INTEGER,
    raw_tx          BLOB,
    tx_hash         BLOB,
    chain_id        INTEGER,
    block_number    INTEGER,
    error           TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS evaluations_one_live_per_version
    ON evaluations (task_id, version) WHERE status != 'failed';
"""
_COLUMNS = (
    "local_id, ref, device_id, task_id, version, metric_micro, secondary_micro, num_examples,"
    " status, attempts, tx_nonce, raw_tx, tx_hash, chain_id, block_number, error, created_at,"
    " updated_at"
)


class EvaluationStatus(enum.Enum):
    """Where an evaluation is on its way to the chain."""

    ACCEPTED = "accepted"
    SIGNED = "signed"
    SENT = "sent"
    COMMITTED = "committed"
    FAILED = "failed"


@dataclass(frozen=True)
class EvaluationRow:
    """One stored evaluation; ``chain_id`` is its on-chain evaluation id once committed."""

    local_id: int
    ref: str
    device_id: str
    task_id: int
    version: int
    metric_micro: int
    secondary_micro: int
    num_examples: int
    status: EvaluationStatus
    attempts: int
    tx_nonce: int | None
    raw_tx: bytes | None
    tx_hash: bytes | None
    chain_id: int | None
    block_number: int | None
    error: str | None
    created_at: float
    updated_at: float

    @property
    def metric(self) -> float:
        """The metric as a fraction."""
        return self.metric_micro / METRIC_SCALE

    @property
    def secondary(self) -> float | None:
        """The second metric as a fraction, None when undefined."""
        if self.secondary_micro == NO_METRIC_MICRO:
            return None
        return self.secondary_micro / METRIC_SCALE

    def same_values(self, envelope: EvaluationEnvelope) -> bool:
        """Whether ``envelope`` reports exactly this evaluation (a device's retry)."""
        return (self.device_id, self.metric_micro, self.secondary_micro, self.num_examples) == (
            envelope.device_id, envelope.metric_micro, envelope.secondary_micro,
            envelope.num_examples,
        )  # fmt: skip


def evaluation_db_path(db_path: str | Path) -> str:
    """The evaluation store's file next to the edge store's (``:memory:`` stays in memory).

    Example:
      >>> evaluation_db_path("runs/edge-1.sqlite"), evaluation_db_path(":memory:")
      ('runs/edge-1.evaluations.sqlite', ':memory:')
    """
    if str(db_path) == ":memory:":
        return ":memory:"
    path = Path(db_path)
    return str(path.with_name(f"{path.stem}.evaluations.sqlite"))


class EvaluationStore:
    """SQLite-backed evaluation outbox, shared by the HTTP threads and the submitter.

    Example:
      >>> store = EvaluationStore(":memory:")
      >>> store.live_row(1, 0) is None
      True
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

    def close(self) -> None:
        """Closes the connection."""
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- intake --------------------------------------------------------------------------

    def live_row(self, task_id: int, version: int) -> EvaluationRow | None:
        """The live (not failed) evaluation of (task, version), if any."""
        rows = self._rows("task_id = ? AND version = ? AND status != 'failed'", task_id, version)
        return rows[0] if rows else None

    def insert(self, envelope: EvaluationEnvelope) -> EvaluationRow:
        """Durably records an evaluation with its nonce, in one transaction.

        Raises:
          UpdateRejectedError: ``replayed_nonce`` or ``duplicate_evaluation``; nothing is
            written then.
        """
        now = time.time()
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO evaluation_nonces (device_id, nonce, seen_at) VALUES (?,?,?)",
                    (envelope.device_id, envelope.nonce, now),
                )
                db.execute(
                    f"INSERT INTO evaluations ({_COLUMNS}) VALUES"
                    " (NULL,?,?,?,?,?,?,?,'accepted',0,NULL,NULL,NULL,NULL,NULL,NULL,?,?)",
                    (uuid.uuid4().hex, envelope.device_id, envelope.task_id, envelope.version,
                     envelope.metric_micro, envelope.secondary_micro, envelope.num_examples,
                     now, now),
                )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            if "evaluation_nonces" in str(exc):
                raise UpdateRejectedError("replayed_nonce", "nonce was used before") from exc
            detail = f"this edge already holds an evaluation of task {envelope.task_id}"
            raise UpdateRejectedError(
                "duplicate_evaluation", f"{detail} version {envelope.version}"
            ) from exc
        row = self.live_row(envelope.task_id, envelope.version)
        assert row is not None
        return row

    # ---- reads ---------------------------------------------------------------------------

    def get(self, ref: str) -> EvaluationRow | None:
        """The row with reference ``ref``."""
        rows = self._rows("ref = ?", ref)
        return rows[0] if rows else None

    def with_status(self, *statuses: EvaluationStatus) -> list[EvaluationRow]:
        """Rows in any of ``statuses``, in acceptance order."""
        marks = ",".join("?" * len(statuses))
        return self._rows(f"status IN ({marks})", *(s.value for s in statuses))

    def count_by_status(self) -> dict[str, int]:
        """Number of rows per status."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM evaluations GROUP BY status")
            return {str(status): int(count) for status, count in rows}

    def next_tx_nonce(self) -> int:
        """One past the highest account nonce any stored evaluation transaction used (0 if none)."""
        with self._lock:
            (value,) = self._db.execute("SELECT MAX(tx_nonce) FROM evaluations").fetchone()
        return 0 if value is None else int(value) + 1

    # ---- transitions ---------------------------------------------------------------------

    def mark_attempt(self, local_id: int) -> None:
        """Counts one direct submission attempt (before it is made)."""
        self._set(local_id, "attempts = attempts + 1")

    def record_signed(self, local_id: int, *, nonce: int, raw_tx: bytes, tx_hash: bytes) -> None:
        """Stores the signed transaction and its nonce, before it is sent."""
        self._set(
            local_id,
            "status = 'signed', tx_nonce = ?, raw_tx = ?, tx_hash = ?, attempts = attempts + 1",
            nonce, raw_tx, tx_hash,
        )  # fmt: skip

    def mark_sent(self, local_id: int) -> None:
        """The node accepted the transaction."""
        self._set(local_id, "status = 'sent'")

    def mark_committed(self, local_id: int, chain_id: int, block: int | None) -> None:
        """The evaluation is on chain as ``chain_id`` in ``block``."""
        self._set(
            local_id, "status = 'committed', chain_id = ?, block_number = ?, error = NULL",
            chain_id, block,
        )  # fmt: skip

    def mark_failed(self, local_id: int, error: str) -> None:
        """Final refusal (decoded contract error)."""
        self._set(local_id, "status = 'failed', error = ?", error)

    def reset_to_accepted(self, local_id: int, error: str) -> None:
        """Drops the signed transaction (its nonce went to another one) to sign again."""
        self._set(
            local_id,
            "status = 'accepted', raw_tx = NULL, tx_hash = NULL, tx_nonce = NULL, error = ?",
            error,
        )  # fmt: skip

    def note_error(self, local_id: int, error: str) -> None:
        """Records a transient error without moving the row."""
        self._set(local_id, "error = ?", error)

    def _set(self, local_id: int, assignments: str, *args: object) -> None:
        with self._lock:
            self._db.execute(
                f"UPDATE evaluations SET {assignments}, updated_at = ? WHERE local_id = ?",
                (*args, time.time(), local_id),
            )

    def _rows(self, where: str, *args: object) -> list[EvaluationRow]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM evaluations WHERE {where} ORDER BY local_id", args
            ).fetchall()
        return [_to_row(row) for row in rows]


def _to_row(row: tuple[object, ...]) -> EvaluationRow:
    (local_id, ref, device_id, task_id, version, metric, secondary, examples, status, attempts,
     tx_nonce, raw_tx, tx_hash, chain_id, block, error, created, updated) = row  # fmt: skip
    return EvaluationRow(
        local_id=int(local_id), ref=str(ref), device_id=str(device_id), task_id=int(task_id),
        version=int(version), metric_micro=int(metric), secondary_micro=int(secondary),
        num_examples=int(examples), status=EvaluationStatus(status), attempts=int(attempts),
        tx_nonce=None if tx_nonce is None else int(tx_nonce),
        raw_tx=None if raw_tx is None else bytes(raw_tx),
        tx_hash=None if tx_hash is None else bytes(tx_hash),
        chain_id=None if chain_id is None else int(chain_id),
        block_number=None if block is None else int(block),
        error=None if error is None else str(error),
        created_at=float(created), updated_at=float(updated),
    )  # fmt: skip
