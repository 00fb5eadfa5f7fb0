"""Edge + chain: the evaluation outbox on anvil signs, stores, sends and confirms exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3 import Web3

from edge_server.evaluation_store import EvaluationStatus, EvaluationStore
from edge_server.evaluations_outbox import EvaluationOutbox
from fednode.chain import Web3Ledger
from fednode.types import NO_METRIC_MICRO
from fednode.update.evaluation import make_evaluation


@pytest.fixture
def edge(w3, deployment, accounts) -> Web3Ledger:
    return Web3Ledger(w3, deployment, accounts.edges[0], timeout=30.0)


@pytest.fixture
def task_id(w3, deployment, accounts, edge) -> int:
    """A task whose version 1 aggregates the edge's update (only contributors evaluate)."""
    from tests.behaviours.ledger_behaviour import make_spec

    publisher = Web3Ledger(w3, deployment, accounts.publisher, timeout=30.0)
    aggregator = Web3Ledger(w3, deployment, accounts.aggregator, timeout=30.0)
    task = publisher.publish_task(make_spec(min_updates=1), b"initial")
    update = edge.submit_update(task, 0, b"update", num_examples=3)
    aggregator.commit_global_model(task, 1, b"version-1", [update])
    return task


def _row(store: EvaluationStore, task_id: int, nonce: str, metric: float = 0.75):
    envelope = make_evaluation(
        "clinic-1", task_id, 1, metric=metric, num_examples=12, secondary=None,
        nonce=nonce, timestamp=1,
    )  # fmt: skip
    return store.insert(envelope)


def test_outbox_signs_before_sending_and_confirms(w3: Web3, edge, task_id, tmp_path: Path):
    # Arrange
    store = EvaluationStore(tmp_path / "e.sqlite")
    row = _row(store, task_id, "1" * 16)
    outbox = EvaluationOutbox(store, edge, confirmations=1)
    # Act
    outbox.run_pass()
    sent = store.get(row.ref)
    outbox.run_pass()  # mined (anvil automines) but not 1 block deep yet
    w3.provider.make_request("evm_mine", [])
    outbox.run_pass()
    # Assert
    assert sent.status == EvaluationStatus.SENT and sent.raw_tx and sent.tx_nonce is not None
    done = store.get(row.ref)
    [record] = edge.read_evaluations(task_id, 1)
    assert done.status == EvaluationStatus.COMMITTED
    assert (done.chain_id, done.block_number) == (record.evaluation_id, record.block_number)
    assert (record.edge, record.metric, record.secondary_micro) == (edge.sender, 0.75, None)


def test_outbox_reconciles_a_transaction_sent_before_a_crash(edge, task_id, tmp_path: Path):
    # Arrange: signed and sent, but the process died before recording "sent"
    store = EvaluationStore(tmp_path / "e.sqlite")
    row = _row(store, task_id, "2" * 16)
    nonce = edge.transactions.pending_nonce()
    signed = edge.sign_submit_evaluation(task_id, 1, metric=0.75, num_examples=12, nonce=nonce)
    edge.send_raw(signed.raw)
    store.record_signed(row.local_id, nonce=nonce, raw_tx=signed.raw, tx_hash=signed.tx_hash)
    # Act: a restarted outbox re-sends the same bytes (harmless) and confirms
    EvaluationOutbox(store, edge, confirmations=0).run_pass()
    EvaluationOutbox(store, edge, confirmations=0).run_pass()
    # Assert
    assert store.get(row.ref).status == EvaluationStatus.COMMITTED
    assert len(edge.read_evaluations(task_id)) == 1


def test_outbox_settles_a_row_the_chain_already_holds(edge, task_id, tmp_path: Path):
    # The row was re-accepted after its first transaction had landed (lost store write).
    store = EvaluationStore(tmp_path / "e.sqlite")
    row = _row(store, task_id, "3" * 16)
    landed = edge.submit_evaluation(task_id, 1, metric=0.75, num_examples=12)
    EvaluationOutbox(store, edge, confirmations=0).run_pass()
    assert store.get(row.ref).status == EvaluationStatus.COMMITTED
    assert store.get(row.ref).chain_id == landed
    assert store.get(row.ref).secondary_micro == NO_METRIC_MICRO
    assert len(edge.read_evaluations(task_id)) == 1
