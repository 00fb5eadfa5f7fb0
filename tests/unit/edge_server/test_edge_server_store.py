"""Edge: the SQLite store is durable, atomic and safe to share between threads."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_server_harness import NOW

from edge_server.store import SCHEMA_VERSION, EdgeStore, UpdateStatus
from fednode.errors import FednodeValueError, UpdateRejectedError
from fednode.update.envelope import UpdateEnvelope

SCHEMA_SHA256 = "5fe8571a670a675fc4479dfa83b5eb3cc9a634b33a3d7de611ca3e8e3f9b62d0"
"""sha256 of every table and index definition as schema version 3 first wrote them (version 3:
secure cohorts keep signed advertisements, the signed survivor list and the kind of each
revealed share)."""


def _envelope(task_id: int = 1, base_version: int = 0, nonce: str = "aa" * 8) -> UpdateEnvelope:
    return UpdateEnvelope("clinic-1", task_id, base_version, 10, 250, b"payload", nonce, NOW)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    with EdgeStore(tmp_path / "edge.sqlite") as opened:
        yield opened


def test_store_uses_wal_and_full_sync(tmp_path: Path, store: EdgeStore) -> None:
    # Act
    other = sqlite3.connect(tmp_path / "edge.sqlite")
    journal = other.execute("PRAGMA journal_mode").fetchone()[0]
    other.close()
    synchronous = store._db.execute("PRAGMA synchronous").fetchone()[0]

    # Assert
    assert journal == "wal"
    assert synchronous == 2  # FULL


def test_inserted_update_survives_reopening(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "nested" / "edge.sqlite"
    with EdgeStore(path) as store:
        row = store.insert_update(_envelope())

    # Act
    with EdgeStore(path) as reopened:
        again = reopened.get_update(row.ref)
        pending = reopened.pending_updates()

    # Assert
    assert again == row
    assert again.status == UpdateStatus.ACCEPTED and again.epsilon_micro == 250
    assert [r.ref for r in pending] == [row.ref]


def test_replayed_nonce_writes_nothing(store: EdgeStore) -> None:
    # Arrange
    store.insert_update(_envelope(task_id=1))

    # Act
    with pytest.raises(UpdateRejectedError) as refused:
        store.insert_update(_envelope(task_id=2))

    # Assert
    assert refused.value.reason == "replayed_nonce"
    assert [r.task_id for r in store.list_updates()] == [1]


def test_duplicate_base_rolls_back_the_nonce(store: EdgeStore) -> None:
    # Arrange
    store.insert_update(_envelope(nonce="01" * 8))

    # Act
    with pytest.raises(UpdateRejectedError) as refused:
        store.insert_update(_envelope(nonce="02" * 8))

    # Assert
    assert refused.value.reason == "duplicate_base"
    assert not store.has_nonce("clinic-1", "02" * 8)
    assert len(store.list_updates()) == 1


def test_failed_row_frees_its_base_version(store: EdgeStore) -> None:
    # Arrange
    first = store.insert_update(_envelope(nonce="01" * 8))
    store.mark_failed(first.local_id, "UpdateLedgerStaleBase")

    # Act
    second = store.insert_update(_envelope(nonce="02" * 8))

    # Assert
    assert store.get_update(first.ref).error == "UpdateLedgerStaleBase"
    assert store.holds_update(1, 0) and second.status == UpdateStatus.ACCEPTED
    assert store.count_by_status() == {
        "accepted": 1, "signed": 0, "sent": 0, "committed": 0, "failed": 1
    }  # fmt: skip


def test_mark_committed_records_chain_id_and_tx_hash(store: EdgeStore) -> None:
    # Arrange
    row = store.insert_update(_envelope())
    store.mark_attempt(row.local_id)
    store.note_error(row.local_id, "ChainError: down")

    # Act
    store.mark_committed(row.local_id, 7, b"\x12" * 32, block=3)

    # Assert
    done = store.get_update(row.ref)
    assert (done.status, done.chain_update_id, done.tx_hash) == ("committed", 7, b"\x12" * 32)
    assert done.attempts == 1 and done.error is None
    assert store.pending_updates() == []


def test_concurrent_inserts_keep_one_update_per_base(store: EdgeStore) -> None:
    # Arrange
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def post(index: int) -> None:
        barrier.wait()
        try:
            store.insert_update(_envelope(nonce=f"{index:016x}"))
            outcomes.append("accepted")
        except UpdateRejectedError as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]

    # Act
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Assert
    assert sorted(outcomes) == ["accepted"] + ["duplicate_base"] * 7
    assert len(store.list_updates()) == 1


def test_enrollment_rules(store: EdgeStore) -> None:
    # Arrange
    store.enroll_device("clinic-1", "aa" * 32)

    # Act
    store.enroll_device("clinic-1", "aa" * 32)  # same key: no-op
    with pytest.raises(FednodeValueError):
        store.enroll_device("clinic-1", "bb" * 32)
    store.enroll_device("clinic-1", "cc" * 32, replace=True)

    # Assert
    assert store.device_public_key("clinic-1") == "cc" * 32
    assert store.revoke_device("clinic-1") and not store.revoke_device("clinic-1")
    assert store.device_public_key("clinic-1") is None


def test_unknown_ref_is_none(store: EdgeStore) -> None:
    assert store.get_update("0" * 32) is None


def test_schema_is_byte_identical_to_version_3(tmp_path: Path) -> None:
    # Arrange
    EdgeStore(tmp_path / "edge.sqlite").close()
    db = sqlite3.connect(tmp_path / "edge.sqlite")

    # Act
    rows = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")
    text = "\n".join(f"{kind} {name} {table} {sql}" for kind, name, table, sql in rows)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()

    # Assert: changing the schema needs a new SCHEMA_VERSION (and a new digest here)
    assert (SCHEMA_VERSION, version) == (3, 3)
    assert hashlib.sha256(text.encode()).hexdigest() == SCHEMA_SHA256


def test_database_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    # Arrange
    EdgeStore(tmp_path / "edge.sqlite").close()
    db = sqlite3.connect(tmp_path / "edge.sqlite")
    db.execute("PRAGMA user_version=1")
    db.close()

    # Act / Assert
    with pytest.raises(FednodeValueError, match="holds edge store schema 1, this edge needs 3"):
        EdgeStore(tmp_path / "edge.sqlite")
