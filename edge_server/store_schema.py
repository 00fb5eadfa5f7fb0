"""Edge: the SQLite schema of the edge store (outbox and cohorts) and how a database opens.

The schema is versioned with SQLite's ``user_version``: a database written by another schema
version is refused with a message that says what to do, never migrated silently. Tables:
``devices`` (enrolled public keys), ``nonces`` (seen device nonces), ``updates`` (the outbox;
a partial unique index keeps one live update per task and base version, another one row per
account nonce) and the cohort tables (``cohorts``, ``cohort_members``, ``cohort_shares``,
``cohort_reveals``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fednode.errors import FednodeValueError

__all__ = ["SCHEMA", "SCHEMA_VERSION", "check_schema_version", "open_database"]

SCHEMA_VERSION = 3
SCHEMA = """
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
    min_size     INTEGER NOT NULL,
    scale        REAL NOT NULL,
    survivors    TEXT,
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
    advert_sig    BLOB,
    check_sig     BLOB,
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
    peer         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('key', 'seed')),
    x            INTEGER NOT NULL,
    share        TEXT NOT NULL,
    PRIMARY KEY (task_id, base_version, revealer, peer)
);
"""


def open_database(path: str | Path) -> sqlite3.Connection:
    """Opens (or creates) an edge store database in WAL mode with ``synchronous=FULL``.

    The connection runs in autocommit mode (``isolation_level=None``: transactions are explicit)
    and may be used from any thread; the caller serialises access.

    Args:
      path: the database file (its folder is created), or ``:memory:``.

    Returns:
      The connection, with every table and index of :data:`SCHEMA` in place.

    Raises:
      FednodeValueError: the file holds another schema version.

    Example:
      >>> db = open_database(":memory:")
      >>> db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
      True
      >>> db.close()
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    check_schema_version(db, path)
    db.executescript(SCHEMA)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return db


def check_schema_version(db: sqlite3.Connection, path: str | Path) -> None:
    """Refuses a database whose ``updates`` table was written by another schema version.

    Raises:
      FednodeValueError: the versions differ; the message says how to move on.

    Example:
      >>> check_schema_version(sqlite3.connect(":memory:"), ":memory:")  # empty: fine
    """
    (version,) = db.execute("PRAGMA user_version").fetchone()
    has_updates = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'updates'"
    ).fetchone()
    if has_updates and version != SCHEMA_VERSION:
        raise FednodeValueError(
            f"{path} holds edge store schema {version}, this edge needs {SCHEMA_VERSION}: "
            "drain it with the older edge server or start from a new file"
        )
