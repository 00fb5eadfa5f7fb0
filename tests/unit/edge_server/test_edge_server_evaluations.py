"""Edge: signed per-site evaluations: stored durably, submitted once, refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edge_server_harness import AGGREGATOR, NOW, Harness, make_params

from edge_server.app import ledger_scope
from edge_server.evaluation_store import EvaluationStatus, EvaluationStore, evaluation_db_path
from edge_server.evaluations_outbox import EvaluationOutbox
from fednode.codec import encode_params
from fednode.errors import EdgeError
from fednode.site.device_client import DeviceIdentity
from fednode.types import NO_METRIC_MICRO
from fednode.update.envelope import SIGNATURE_HEADER
from fednode.update.evaluation import (
    EvaluationEnvelope,
    evaluation_to_json,
    make_evaluation,
    sign_evaluation,
)
from fednode.update.signing import new_nonce


def _envelope(harness: Harness, task_id: int = 1, version: int = 0, **fields) -> EvaluationEnvelope:
    values = {"metric": 0.8, "num_examples": 20, "secondary": None}
    values.update(fields)
    return make_evaluation(
        harness.device.device_id, task_id, version, nonce=new_nonce(), timestamp=NOW,
        scope=ledger_scope(harness.ledger), **values,
    )  # fmt: skip


def _post(harness: Harness, envelope: EvaluationEnvelope, *, signer: DeviceIdentity | None = None):
    signature = sign_evaluation((signer or harness.device).private_key, envelope)
    return harness.http.post(
        "/v1/evaluations",
        content=evaluation_to_json(envelope),
        headers={SIGNATURE_HEADER: signature},
    )


def _eval_store(harness: Harness) -> EvaluationStore:
    return EvaluationStore(evaluation_db_path(harness.config.db_path))


def _contribute(harness: Harness, task_id: int) -> int:
    """Version 1 of the task aggregates this edge's update (only contributors evaluate)."""
    update = harness.ledger.submit_update(
        task_id, 0, encode_params(make_params(0.1)), num_examples=3
    )
    harness.admin.as_sender(AGGREGATOR).commit_global_model(
        task_id, 1, encode_params(make_params(0.2)), [update]
    )
    return 1


def test_evaluation_is_stored_then_submitted_signed_by_the_edge(harness: Harness) -> None:
    # Arrange
    version = _contribute(harness, 1)
    ref = harness.client.post_evaluation(1, version, metric=0.8125, num_examples=61,
                                         secondary=0.9)
    assert harness.client.evaluation_status(ref)["status"] == "accepted"
    # Act
    harness.submitter.submit_pending()
    status = harness.client.wait_evaluation_committed(ref, timeout=1)
    # Assert
    [record] = harness.admin.read_evaluations(1, version)
    assert (record.edge, record.metric, record.secondary, record.num_examples) == (
        harness.ledger.sender, 0.8125, 0.9, 61
    )
    assert status["chain_evaluation_id"] == record.evaluation_id
    assert status["block_number"] == record.block_number
    assert (status["metric"], status["secondary"]) == (0.8125, 0.9)


def test_a_retry_is_neither_lost_nor_submitted_twice(harness: Harness) -> None:
    # Arrange
    _contribute(harness, 1)
    first = harness.client.post_evaluation(1, 1, metric=0.7, num_examples=10)
    # Act: the device did not see the answer and sends the same evaluation again
    again = harness.client.post_evaluation(1, 1, metric=0.7, num_examples=10)
    harness.submitter.submit_pending()
    after = harness.client.post_evaluation(1, 1, metric=0.7, num_examples=10)
    harness.submitter.submit_pending()
    # Assert
    assert first == again == after
    assert len(harness.admin.read_evaluations(1)) == 1
    with pytest.raises(EdgeError) as info:
        harness.client.post_evaluation(1, 1, metric=0.71, num_examples=10)
    assert (info.value.status, info.value.reason) == (409, "duplicate_evaluation")


def test_a_submission_that_landed_before_a_crash_is_recorded_not_resent(harness: Harness) -> None:
    # Arrange: the chain took the evaluation, then the edge died before recording it
    _contribute(harness, 2)
    ref = harness.client.post_evaluation(2, 1, metric=0.6, num_examples=5)
    store = _eval_store(harness)
    row = store.get(ref)
    store.mark_attempt(row.local_id)
    landed = harness.ledger.submit_evaluation(2, 1, metric=0.6, num_examples=5)
    # Act
    moved = EvaluationOutbox(store, harness.ledger, confirmations=0).run_pass()
    # Assert
    assert moved == 1
    assert store.get(ref).status == EvaluationStatus.COMMITTED
    assert store.get(ref).chain_id == landed
    assert len(harness.admin.read_evaluations(2)) == 1


def test_a_row_whose_slot_holds_other_values_fails_with_the_contract_error(harness) -> None:
    _contribute(harness, 3)
    ref = harness.client.post_evaluation(3, 1, metric=0.6, num_examples=5)
    harness.ledger.submit_evaluation(3, 1, metric=0.5, num_examples=5)
    harness.submitter.submit_pending()
    status = harness.client.evaluation_status(ref)
    assert status["status"] == "failed"
    assert status["error"].startswith("EvaluationLedgerDuplicateEvaluation")
    assert [r.metric for r in harness.admin.read_evaluations(3)] == [0.5]


def test_evaluations_of_later_versions_need_the_version_final(harness: Harness) -> None:
    # Arrange
    with pytest.raises(EdgeError) as info:
        harness.client.post_evaluation(1, 1, metric=0.7, num_examples=10)
    assert (info.value.status, info.value.reason) == (404, "unknown_version")
    update = harness.ledger.submit_update(1, 0, encode_params(make_params(0.1)), num_examples=3)
    harness.admin.as_sender(AGGREGATOR).commit_global_model(
        1, 1, encode_params(make_params(0.2)), [update]
    )
    # Act
    ref = harness.client.post_evaluation(1, 1, metric=0.75, num_examples=10)
    harness.submitter.submit_pending()
    # Assert
    assert harness.client.evaluation_status(ref)["status"] == "committed"
    assert [r.version for r in harness.admin.read_evaluations(1)] == [1]


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"metric_micro": 1_000_001}, 422, "bad_metric"),
        ({"secondary_micro": NO_METRIC_MICRO - 1}, 422, "bad_metric"),
        ({"num_examples": 0}, 400, "bad_num_examples"),
        ({"task_id": 99}, 404, "unknown_task"),
        ({"timestamp": NOW - 3600}, 401, "stale_timestamp"),
        ({"device_id": "stranger"}, 401, "unknown_device"),
        ({"metric_micro": True}, 400, "bad_request"),
    ],
    ids=["metric", "secondary", "examples", "task", "timestamp", "device", "bool"],
)
def test_bad_evaluations_are_refused_and_nothing_is_stored(harness, change, status, reason):
    fields = json.loads(evaluation_to_json(_envelope(harness)))
    fields.update(change)
    envelope = EvaluationEnvelope(**fields)
    response = _post(harness, envelope)
    assert response.status_code == status, response.text
    assert response.json()["error"] == reason
    assert _eval_store(harness).count_by_status() == {}


def test_signatures_are_checked_and_nonces_not_replayed(harness: Harness) -> None:
    envelope = _envelope(harness)
    other = DeviceIdentity.generate(device_id=harness.device.device_id)
    assert _post(harness, envelope, signer=other).json()["error"] == "bad_signature"
    body = json.loads(evaluation_to_json(envelope))
    signature = sign_evaluation(harness.device.private_key, envelope)
    tampered = json.dumps({**body, "metric_micro": 999_999}).encode()
    response = harness.http.post(
        "/v1/evaluations", content=tampered, headers={SIGNATURE_HEADER: signature}
    )
    assert response.json()["error"] == "bad_signature"
    assert _post(harness, envelope).status_code == 202
    replay = _envelope(harness, task_id=2)
    fields = {**json.loads(evaluation_to_json(replay)), "nonce": envelope.nonce}
    replay = EvaluationEnvelope(**fields)
    assert _post(harness, replay).json()["error"] == "replayed_nonce"


def test_unknown_evaluation_ref_is_404(harness: Harness) -> None:
    response = harness.get("/v1/evaluations/" + "ab" * 16)
    assert (response.status_code, response.json()["error"]) == (404, "unknown_evaluation")


def test_evaluation_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "edge.evaluations.sqlite"
    store = EvaluationStore(path)
    row = store.insert(EvaluationEnvelope("dev-1", 1, 0, 500_000, NO_METRIC_MICRO, 4, "0" * 16, 1))
    store.close()
    reopened = EvaluationStore(path)
    assert reopened.get(row.ref) == row
    assert reopened.with_status(EvaluationStatus.ACCEPTED) == [row]
