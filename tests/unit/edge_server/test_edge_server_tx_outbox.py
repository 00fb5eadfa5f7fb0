"""Edge: the one transaction outbox behaves the same for updates and evaluations.

One behaviour suite, run against both kinds of row the edge account signs, on a fake node
(``signing_ledger.SigningLedger``) that signs, pools, mines and confirms separately.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from edge_server_harness import AGGREGATOR, EDGE, NOW, make_consortium, make_params
from signing_ledger import SigningLedger

from edge_server.evaluation_store import EvaluationStore
from edge_server.evaluations_outbox import EvaluationOutbox
from edge_server.outbox import Outbox
from edge_server.store import EdgeStore
from edge_server.tx_outbox import TxOutbox
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import encode_params
from fednode.errors import ChainError
from fednode.update.envelope import UpdateEnvelope
from fednode.update.evaluation import make_evaluation
from fednode.update.signing import new_nonce


@dataclass
class Kind:
    """One kind of row behind the outbox, as the behaviour suite drives it."""

    name: str
    ledger: SigningLedger
    admin: InMemoryLedger
    outbox: Callable[..., TxOutbox[Any]]
    insert: Callable[[int, float], Any]
    get: Callable[[str], Any]
    land: Callable[[int, float], int]
    on_chain: Callable[[int], list[tuple[int, int]]]
    duplicate: str
    next_tx_nonce: Callable[[], int]

    def status(self, row: Any) -> str:
        return self.get(row.ref).status.value

    def chain_id(self, row: Any) -> int | None:
        fresh = self.get(row.ref)
        return fresh.chain_id if self.name == "evaluations" else fresh.chain_update_id


def _updates(tmp_path: Path, admin: InMemoryLedger, ledger: SigningLedger) -> Kind:
    store = EdgeStore(tmp_path / "edge.sqlite")

    def insert(task_id: int, fill: float) -> Any:
        payload = encode_params(make_params(fill))
        return store.insert_update(
            UpdateEnvelope("clinic-1", task_id, 0, 10, 0, payload, new_nonce(), NOW)
        )

    return Kind(
        "updates", ledger, admin,
        outbox=lambda **kw: Outbox(store, ledger, **kw),
        insert=insert, get=store.get_update,
        land=lambda task, fill: ledger.inner.submit_update(
            task, 0, encode_params(make_params(fill)), num_examples=10
        ),
        on_chain=lambda task: [(u.update_id, u.block_number) for u in admin.read_updates(task)],
        duplicate="UpdateLedgerDuplicateSubmission", next_tx_nonce=store.next_tx_nonce,
    )  # fmt: skip


def _contribute_to_every_task(admin: InMemoryLedger, ledger: SigningLedger) -> None:
    """Version 1 of tasks 1-3 aggregates this edge's update (only contributors evaluate)."""
    for task_id in (1, 2, 3):
        update = ledger.inner.submit_update(
            task_id, 0, encode_params(make_params(0.1)), num_examples=3
        )
        admin.as_sender(AGGREGATOR).commit_global_model(
            task_id, 1, encode_params(make_params(0.2)), [update]
        )


def _evaluations(tmp_path: Path, admin: InMemoryLedger, ledger: SigningLedger) -> Kind:
    store = EvaluationStore(tmp_path / "edge.evaluations.sqlite")
    _contribute_to_every_task(admin, ledger)

    def insert(task_id: int, fill: float) -> Any:
        return store.insert(make_evaluation(
            "clinic-1", task_id, 1, metric=fill, num_examples=10, secondary=None,
            nonce=new_nonce(), timestamp=NOW,
        ))  # fmt: skip

    return Kind(
        "evaluations", ledger, admin,
        outbox=lambda **kw: EvaluationOutbox(store, ledger, **kw),
        insert=insert, get=store.get,
        land=lambda task, fill: ledger.inner.submit_evaluation(
            task, 1, metric=fill, num_examples=10
        ),
        on_chain=lambda task: [
            (r.evaluation_id, r.block_number) for r in admin.read_evaluations(task)
        ],
        duplicate="EvaluationLedgerDuplicateEvaluation", next_tx_nonce=store.next_tx_nonce,
    )  # fmt: skip


@pytest.fixture(params=[_updates, _evaluations], ids=["updates", "evaluations"])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Kind:
    admin = make_consortium()
    return request.param(tmp_path, admin, SigningLedger(admin.as_sender(EDGE)))


def test_a_row_is_sent_with_its_stored_bytes_and_commits_only_at_depth(kind: Kind) -> None:
    # Arrange
    row = kind.insert(1, 0.5)
    outbox = kind.outbox(confirmations=2)
    # Act
    outbox.run_pass()
    sent = kind.get(row.ref)
    kind.ledger.mine()
    outbox.run_pass()
    shallow = kind.status(row)
    kind.ledger.mine_empty(2)
    outbox.run_pass()
    # Assert
    assert (sent.status.value, sent.tx_nonce, sent.raw_tx) == ("sent", 0, kind.ledger.sent[0])
    assert shallow == "sent"
    done = kind.get(row.ref)
    assert done.status.value == "committed" and done.tx_hash == sent.tx_hash
    assert kind.on_chain(1) == [(kind.chain_id(row), done.block_number)]


def test_a_quiet_transaction_is_resent_byte_for_byte(kind: Kind) -> None:
    # Arrange: the node forgets the transaction before mining it
    row = kind.insert(1, 0.5)
    outbox = kind.outbox(confirmations=0, resend_after_s=0.0)
    outbox.run_pass()
    kind.ledger.lose_pool()
    # Act
    outbox.run_pass()
    kind.ledger.mine()
    outbox.run_pass()
    # Assert
    first, again = kind.ledger.sent
    assert first == again == kind.get(row.ref).raw_tx
    assert kind.status(row) == "committed" and len(kind.on_chain(1)) == 1


def test_a_nonce_taken_elsewhere_is_signed_anew(kind: Kind) -> None:
    # Arrange: signed, the send failed, then another transaction took the nonce
    row = kind.insert(1, 0.5)
    outbox = kind.outbox(confirmations=0)
    kind.ledger.fail_sends = 1
    with pytest.raises(ChainError):
        outbox.run_pass()
    first = kind.get(row.ref)
    kind.ledger.take_nonce()
    # Act: the re-send meets "nonce too low", nothing of ours is on chain: reset and re-sign
    outbox.run_pass()
    resigned = kind.get(row.ref)
    kind.ledger.mine()
    outbox.run_pass()
    # Assert
    assert (first.status.value, first.tx_nonce) == ("signed", 0)
    assert (resigned.status.value, resigned.tx_nonce) == ("sent", 1)
    assert resigned.tx_hash != first.tx_hash and resigned.attempts == 2
    assert kind.status(row) == "committed" and len(kind.on_chain(1)) == 1


def test_our_own_mined_transaction_behind_nonce_too_low_is_settled(kind: Kind) -> None:
    # Arrange: the node took the transaction but its answer was lost; the row stays signed
    row = kind.insert(1, 0.5)
    kind.ledger.lose_answers = 1
    with pytest.raises(ChainError):
        kind.outbox(confirmations=0).run_pass()
    signed = kind.get(row.ref)
    kind.ledger.mine()
    # Act: a restarted outbox re-sends, the node says "nonce too low", the row is reconciled
    moved = kind.outbox(confirmations=0).run_pass()
    # Assert
    assert signed.status.value == "signed" and moved == 1
    assert kind.status(row) == "committed" and kind.get(row.ref).tx_nonce == 0
    assert kind.ledger.account_nonce == 1 and len(kind.on_chain(1)) == 1


def test_a_duplicate_refusal_of_our_own_content_settles_the_row(kind: Kind) -> None:
    # Arrange: the same content landed through another path
    row = kind.insert(1, 0.5)
    landed = kind.land(1, 0.5)
    # Act
    moved = kind.outbox(confirmations=0).run_pass()
    # Assert
    assert moved == 1 and kind.ledger.sent == []
    assert (kind.status(row), kind.chain_id(row)) == ("committed", landed)


def test_other_content_in_the_slot_fails_the_row_with_the_duplicate_error(kind: Kind) -> None:
    row = kind.insert(1, 0.5)
    kind.land(1, 0.25)
    kind.outbox(confirmations=0).run_pass()
    failed = kind.get(row.ref)
    assert failed.status.value == "failed"
    assert failed.error.startswith(f"{kind.duplicate}: another")


def test_a_reverted_transaction_fails_the_row_only_at_depth(kind: Kind) -> None:
    # Arrange: signed and sent; other content takes the slot before it is mined
    row = kind.insert(1, 0.5)
    outbox = kind.outbox(confirmations=2)
    outbox.run_pass()
    kind.land(1, 0.25)
    kind.ledger.mine()
    # Act
    outbox.run_pass()
    shallow = kind.status(row)
    kind.ledger.mine_empty(2)
    outbox.run_pass()
    # Assert
    assert shallow == "sent"
    failed = kind.get(row.ref)
    assert failed.status.value == "failed" and failed.error.startswith(kind.duplicate)


def test_both_outboxes_of_one_account_never_share_a_nonce(tmp_path: Path) -> None:
    # Arrange: one account, two kinds, one nonce floor over both stores (Submitter.nonce_floor)
    admin = make_consortium(tasks=4)  # the evaluations evaluate tasks 1-3, the update is on 4
    ledger = SigningLedger(admin.as_sender(EDGE))
    updates, evaluations = _updates(tmp_path, admin, ledger), _evaluations(tmp_path, admin, ledger)
    floor = lambda: max(updates.next_tx_nonce(), evaluations.next_tx_nonce())  # noqa: E731
    update_outbox = updates.outbox(confirmations=0, nonce_floor=floor)
    evaluation_outbox = evaluations.outbox(confirmations=0, nonce_floor=floor)
    update, evaluation = updates.insert(4, 0.5), evaluations.insert(1, 0.5)
    # Act: the evaluation is signed but its send fails; then the update is signed
    ledger.fail_sends = 1
    with pytest.raises(ChainError):
        evaluation_outbox.run_pass()
    update_outbox.run_pass()
    evaluation_outbox.run_pass()
    ledger.mine()
    update_outbox.run_pass()
    evaluation_outbox.run_pass()
    # Assert: the update skipped the unsent evaluation's nonce; nothing was re-signed
    assert (evaluations.get(evaluation.ref).tx_nonce, updates.get(update.ref).tx_nonce) == (0, 1)
    assert (updates.status(update), evaluations.status(evaluation)) == ("committed", "committed")
    assert len(ledger.sent) == 2


def test_update_outbox_keeps_max_in_flight_and_reports_each_transition(tmp_path: Path) -> None:
    # Arrange
    admin = make_consortium()
    updates = _updates(tmp_path, admin, SigningLedger(admin.as_sender(EDGE)))
    rows = [updates.insert(task, 0.5) for task in (1, 2, 3)]
    events: list[tuple[str, str]] = []
    outbox = updates.outbox(
        confirmations=0, max_in_flight=2, on_event=lambda s, r: events.append((s.value, r.ref))
    )
    # Act
    outbox.run_pass()
    statuses = [updates.status(row) for row in rows]
    updates.ledger.mine()
    outbox.run_pass()
    # Assert
    assert statuses == ["sent", "sent", "accepted"]
    first = [status for status, ref in events if ref == rows[0].ref]
    assert first == ["signed", "sent", "committed"]
    assert updates.status(rows[2]) == "sent"

