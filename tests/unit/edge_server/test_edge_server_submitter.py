"""Edge: the submitter keeps order, records refusals, and never loses an accepted update."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from edge_server_harness import EDGE, NOW, Harness, make_consortium, make_params

from edge_server.store import EdgeStore, UpdateStatus
from edge_server.submitter import Submitter
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import encode_params
from fednode.errors import ChainError, ChainTimeoutError
from fednode.update.envelope import UpdateEnvelope


class FlakyLedger:
    """Wraps a ledger; ``submit_update`` fails with ChainError while ``down`` is set.

    With ``lose_receipts`` the transaction lands but the call still fails, as when the node
    mined it and the receipt never came back.
    """

    def __init__(self, inner: InMemoryLedger, *, down: bool = True, lose_receipts: bool = False):
        self.inner = inner
        self.down = down
        self.lose_receipts = lose_receipts
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def sender(self) -> str:
        return self.inner.sender

    def submit_update(self, *args: Any, **kwargs: Any) -> int:
        self.calls += 1
        if self.lose_receipts:
            self.inner.submit_update(*args, **kwargs)
            raise ChainTimeoutError("receipt did not arrive")
        if self.down:
            raise ChainError("connection refused")
        return self.inner.submit_update(*args, **kwargs)


def _envelope(task_id: int, nonce: str, fill: float = 0.1) -> UpdateEnvelope:
    payload = encode_params(make_params(fill))
    return UpdateEnvelope("clinic-1", task_id, 0, 10, 0, payload, nonce, NOW)


def test_rows_are_submitted_in_acceptance_order(tmp_path: Path) -> None:
    # Arrange
    admin = make_consortium()
    store = EdgeStore(tmp_path / "edge.sqlite")
    rows = [store.insert_update(_envelope(task, f"{task:016x}")) for task in (3, 1, 2)]

    # Act
    settled = Submitter(store, admin.as_sender(EDGE)).submit_pending()

    # Assert
    assert settled == 3
    submitted = [store.get_update(row.ref) for row in rows]
    assert [row.chain_update_id for row in submitted] == [1, 2, 3]
    on_chain = sorted(
        (u for task in (1, 2, 3) for u in admin.read_updates(task)), key=lambda u: u.update_id
    )
    assert [u.task_id for u in on_chain] == [3, 1, 2]


def test_contract_revert_marks_the_row_failed_with_the_error_name(tmp_path: Path) -> None:
    # Arrange: this account has no EDGE_ROLE
    admin = make_consortium()
    store = EdgeStore(tmp_path / "edge.sqlite")
    row = store.insert_update(_envelope(1, "00" * 8))

    # Act
    Submitter(store, admin.as_sender("0x" + "11" * 20)).submit_pending()

    # Assert
    failed = store.get_update(row.ref)
    assert failed.status == UpdateStatus.FAILED
    assert failed.error == "AccessControlUnauthorizedAccount"
    assert admin.update_count() == 0


def test_chain_error_keeps_rows_accepted_and_stops_the_pass(tmp_path: Path) -> None:
    # Arrange
    admin = make_consortium()
    flaky = FlakyLedger(admin.as_sender(EDGE))
    store = EdgeStore(tmp_path / "edge.sqlite")
    first = store.insert_update(_envelope(1, "01" * 8))
    second = store.insert_update(_envelope(2, "02" * 8))

    # Act
    with pytest.raises(ChainError):
        Submitter(store, flaky).submit_pending()

    # Assert: only the first row was tried, both still wait
    assert flaky.calls == 1
    assert [r.ref for r in store.pending_updates()] == [first.ref, second.ref]
    assert store.get_update(first.ref).attempts == 1
    assert "connection refused" in store.get_update(first.ref).error


def test_accepted_rows_survive_a_restart_and_get_submitted(harness: Harness) -> None:
    # Arrange: the chain is down while devices post two updates
    flaky = FlakyLedger(harness.ledger)
    down_worker = Submitter(harness.store, flaky, backoff_initial_s=0.01, backoff_max_s=0.02)
    down_worker.start()
    refs = [harness.post_envelope(harness.envelope(task)).json()["update_ref"] for task in (1, 2)]
    down_worker.notify()
    _wait_until(lambda: flaky.calls >= 3)
    down_worker.stop()
    harness.store.close()
    assert harness.ledger.update_count() == 0

    # Act: the process restarts with the chain back
    store = EdgeStore(harness.config.db_path)
    settled = Submitter(store, harness.ledger).submit_pending()

    # Assert
    assert settled == 2
    rows = [store.get_update(ref) for ref in refs]
    assert [row.status for row in rows] == [UpdateStatus.COMMITTED] * 2
    on_chain = harness.admin.read_updates(1) + harness.admin.read_updates(2)
    assert [u.update_id for u in on_chain] == [row.chain_update_id for row in rows]
    assert [u.digest for u in on_chain] == [row.digest for row in rows]
    store.close()


def test_worker_thread_retries_until_the_chain_is_back(harness: Harness) -> None:
    # Arrange
    flaky = FlakyLedger(harness.ledger)
    worker = Submitter(harness.store, flaky, backoff_initial_s=0.01, backoff_max_s=0.05)
    ref = harness.post_envelope(harness.envelope(1)).json()["update_ref"]

    # Act
    worker.start()
    _wait_until(lambda: flaky.calls >= 2)
    flaky.down = False
    _wait_until(lambda: harness.store.get_update(ref).status == UpdateStatus.COMMITTED)
    worker.stop()

    # Assert
    assert harness.ledger.update_count() == 1
    assert not worker.running


def test_lost_receipt_is_reconciled_not_sent_twice(tmp_path: Path) -> None:
    # Arrange
    admin = make_consortium()
    flaky = FlakyLedger(admin.as_sender(EDGE), down=False, lose_receipts=True)
    store = EdgeStore(tmp_path / "edge.sqlite")
    row = store.insert_update(_envelope(1, "03" * 8))
    with pytest.raises(ChainTimeoutError):
        Submitter(store, flaky).submit_pending()

    # Act
    flaky.lose_receipts = False
    Submitter(store, flaky).submit_pending()

    # Assert
    (landed,) = admin.read_updates(1)
    done = store.get_update(row.ref)
    assert flaky.calls == 1
    assert done.status == UpdateStatus.COMMITTED
    assert (done.chain_update_id, done.tx_hash) == (landed.update_id, landed.tx_hash)


def _wait_until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)
