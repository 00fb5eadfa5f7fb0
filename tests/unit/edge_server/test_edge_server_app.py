"""Edge: the HTTP API, happy path and every refusal, with nothing accepted lost afterwards."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from edge_server_harness import AGGREGATOR, NOW, OTHER_EDGE, Harness, make_params, tamper
from fastapi.testclient import TestClient

from edge_server.app import create_app
from fednode.codec import digest_bytes, encode_params
from fednode.errors import ChainError
from fednode.site.device_client import DeviceIdentity
from fednode.update.envelope import SIGNATURE_HEADER

BAD_TASK = 2  # bad requests go to task 2; tasks 1 and 3 hold accepted updates


@pytest.fixture
def accepted(harness: Harness) -> dict[str, Any]:
    """Task 1: an update already on the chain. Task 3: one accepted, not yet submitted."""
    first = harness.signed(harness.envelope(1))
    on_chain = harness.post(*first).json()["update_ref"]
    harness.submitter.submit_pending()
    pending = harness.post_envelope(harness.envelope(3)).json()["update_ref"]
    return {"first_request": first, "on_chain": on_chain, "pending": pending}


def _assert_refused(response: Any, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == reason
    assert isinstance(body["detail"], str | list) and body["detail"]


def _assert_nothing_lost(harness: Harness, accepted: dict[str, Any], before: Any) -> None:
    assert harness.snapshot() == before
    assert harness.store.get_update(accepted["on_chain"]).status == "committed"
    assert harness.store.get_update(accepted["pending"]).status == "accepted"
    chain_writes = harness.ledger.update_count()
    assert harness.submitter.submit_pending() == 1  # only the pending row of task 3
    assert harness.ledger.update_count() == chain_writes + 1
    assert harness.store.get_update(accepted["pending"]).status == "committed"


# ---- happy path ---------------------------------------------------------------------------


def test_post_update_is_stored_then_submitted_to_the_ledger(harness: Harness) -> None:
    # Arrange
    envelope = harness.envelope(1, num_examples=42, epsilon_micro=1500)

    # Act
    response = harness.post_envelope(envelope)
    accepted_row = harness.store.get_update(response.json()["update_ref"])
    harness.submitter.submit_pending()
    status = harness.get(f"/v1/updates/{response.json()['update_ref']}").json()

    # Assert
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    assert accepted_row is not None and accepted_row.status == "accepted"
    (on_chain,) = harness.admin.read_updates(1)
    assert status["status"] == "committed"
    assert status["chain_update_id"] == on_chain.update_id
    assert status["tx_hash"] == on_chain.tx_hash.hex()
    assert on_chain.edge == harness.ledger.sender
    assert on_chain.payload == envelope.payload
    assert on_chain.digest == digest_bytes(envelope.payload)
    assert (on_chain.num_examples, on_chain.epsilon_micro) == (42, 1500)


def test_device_client_round_trip(harness: Harness) -> None:
    # Arrange
    task = harness.client.fetch_task(1)
    version, params = harness.client.fetch_global(1)

    # Act
    delta = {"dense": {k: np.full_like(v, 0.05) for k, v in params["dense"].items()}}
    ref = harness.client.post_update(1, version, delta, num_examples=7)
    harness.submitter.submit_pending()
    status = harness.client.wait_submitted(ref, timeout=1.0)

    # Assert
    assert task.latest_version == 0 and task.spec.name == "heart-0"
    assert status["chain_update_id"] == harness.admin.read_updates(1)[0].update_id


def test_get_task_and_global_model(harness: Harness) -> None:
    # Act
    task = harness.http.get("/v1/tasks/1").json()
    latest = harness.http.get("/v1/tasks/1/global").json()
    initial = harness.http.get("/v1/tasks/1/global", params={"version": 0}).json()

    # Assert
    assert task["state"] == "open" and task["latest_version"] == 0
    assert task["spec_digest"] == harness.admin.get_task(1).spec_digest.hex()
    payload = base64.b64decode(latest["payload"])
    assert payload == encode_params(make_params())
    assert latest == initial and latest["digest"] == digest_bytes(payload).hex()


def test_healthz_reports_counts(harness: Harness, accepted: dict[str, Any]) -> None:
    body = harness.http.get("/healthz").json()
    assert body["status"] == "ok" and body["sender"] == harness.ledger.sender
    assert body["updates"] == {"accepted": 1, "signed": 0, "sent": 0, "committed": 1, "failed": 0}


# ---- refusals of POST /v1/updates -----------------------------------------------------------

STRANGER = DeviceIdentity.generate(device_id="stranger")
IMPOSTOR = DeviceIdentity.generate(device_id="clinic-1")  # enrolled id, wrong key

Request = tuple[bytes, dict[str, str]]


def _payload_case(params: Any) -> Callable[[Harness], Request]:
    return lambda h: h.signed(h.envelope(BAD_TASK, params=params))


def _nan_params() -> Any:
    params = make_params(0.1)
    params["dense"]["kernel"][2, 0] = np.nan
    return params


def _inf_params() -> Any:
    params = make_params(0.1)
    params["dense"]["bias"][0] = -np.inf
    return params


def _tampered(**changes: Any) -> Callable[[Harness], Request]:
    def build(h: Harness) -> Request:
        body, headers = h.signed(h.envelope(BAD_TASK))
        return tamper(body, **changes), headers

    return build


def _raw(body: bytes) -> Callable[[Harness], Request]:
    def build(h: Harness) -> Request:
        _, headers = h.signed(h.envelope(BAD_TASK))
        return body, headers

    return build


BAD_REQUESTS: dict[str, tuple[Callable[[Harness], Request], int, str]] = {
    "unknown device": (
        lambda h: h.signed(h.envelope(BAD_TASK, device=STRANGER), key_of=STRANGER),
        401,
        "unknown_device",
    ),
    "signed with another key": (
        lambda h: h.signed(h.envelope(BAD_TASK), key_of=IMPOSTOR),
        401,
        "bad_signature",
    ),
    "field changed after signing": (_tampered(num_examples=10_000), 401, "bad_signature"),
    "payload changed after signing": (
        _tampered(payload=base64.b64encode(encode_params(make_params(0.2))).decode()),
        401,
        "bad_signature",
    ),
    "missing signature": (lambda h: (h.signed(h.envelope(BAD_TASK))[0], {}), 401, "bad_signature"),
    "signature not base64": (
        lambda h: (h.signed(h.envelope(BAD_TASK))[0], {SIGNATURE_HEADER: "%%%"}),
        401,
        "bad_signature",
    ),
    "timestamp too old": (
        lambda h: h.signed(h.envelope(BAD_TASK, timestamp=NOW - 301)),
        401,
        "stale_timestamp",
    ),
    "timestamp in the future": (
        lambda h: h.signed(h.envelope(BAD_TASK, timestamp=NOW + 301)),
        401,
        "stale_timestamp",
    ),
    "wrong shape": (
        _payload_case({"dense": {"bias": np.zeros(1, "f4"), "kernel": np.zeros((3, 1), "f4")}}),
        422,
        "wrong_shape",
    ),
    "wrong dtype": (_payload_case(make_params(0.1, np.float64)), 422, "wrong_dtype"),
    "missing tensor": (
        _payload_case({"dense": {"bias": np.zeros(1, np.float32)}}),
        422,
        "wrong_keys",
    ),
    "NaN": (_payload_case(_nan_params()), 422, "not_finite"),
    "inf": (_payload_case(_inf_params()), 422, "not_finite"),
    "norm too large": (_payload_case(make_params(3.0)), 422, "norm_too_large"),
    "payload not safetensors": (
        lambda h: h.signed(h.envelope(BAD_TASK, payload=b"definitely not tensors")),
        400,
        "bad_payload",
    ),
    "zero examples": (
        lambda h: h.signed(h.envelope(BAD_TASK, num_examples=0)),
        400,
        "bad_num_examples",
    ),
    "unknown task": (lambda h: h.signed(h.envelope(99)), 404, "unknown_task"),
    "base newer than latest": (lambda h: h.signed(h.envelope(BAD_TASK, 5)), 409, "unknown_base"),
    "malformed JSON": (_raw(b'{"device_id": "clinic-1",'), 400, "bad_json"),
    "JSON array": (_raw(b"[1, 2, 3]"), 400, "bad_json"),
    "not UTF-8": (_raw(b"\xff\xfe\x00garbage"), 400, "bad_json"),
    "empty body": (_raw(b""), 400, "bad_json"),
    "payload not base64": (_tampered(payload="@@not base64@@"), 400, "bad_base64"),
    "payload not a string": (_tampered(payload=123), 400, "bad_base64"),
    "missing field": (_raw(b'{"device_id": "clinic-1"}'), 400, "bad_request"),
    "unknown field": (_tampered(extra=1), 400, "bad_request"),
    "boolean for an integer": (_tampered(num_examples=True), 400, "bad_request"),
    "float for an integer": (_tampered(base_version=0.0), 400, "bad_request"),
    "negative integer": (_tampered(epsilon_micro=-1), 400, "bad_request"),
    "integer over 63 bits": (_tampered(task_id=2**64), 400, "bad_request"),
    "nonce not hex": (_tampered(nonce="not-a-nonce-zzzzzzzz"), 400, "bad_request"),
    "device id with spaces": (_tampered(device_id="clinic 1"), 400, "bad_request"),
    "duplicate JSON keys": (_raw(b'{"task_id": 2, "task_id": 3}'), 400, "bad_json"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_is_refused_and_nothing_is_lost(
    harness: Harness, accepted: dict[str, Any], case: str
) -> None:
    # Arrange
    build, status, reason = BAD_REQUESTS[case]
    request = build(harness)
    before = harness.snapshot()

    # Act
    response = harness.post(*request)

    # Assert
    _assert_refused(response, status, reason)
    _assert_nothing_lost(harness, accepted, before)


def test_oversize_body_is_413(harness: Harness, accepted: dict[str, Any]) -> None:
    # Arrange
    body, headers = harness.signed(harness.envelope(BAD_TASK))
    big = tamper(body, padding="x" * harness.config.max_body_bytes)
    before = harness.snapshot()

    # Act
    response = harness.post(big, headers)

    # Assert
    _assert_refused(response, 413, "body_too_large")
    _assert_nothing_lost(harness, accepted, before)


def test_oversize_chunked_body_without_length_is_413(
    harness: Harness, accepted: dict[str, Any]
) -> None:
    # Arrange
    chunk = b"x" * 65536
    chunks = [chunk] * (harness.config.max_body_bytes // len(chunk) + 2)
    before = harness.snapshot()

    # Act
    response = harness.http.post("/v1/updates", content=iter(chunks))

    # Assert
    _assert_refused(response, 413, "body_too_large")
    _assert_nothing_lost(harness, accepted, before)


def test_oversize_payload_is_413(harness: Harness, accepted: dict[str, Any]) -> None:
    # Arrange
    payload = b"\x00" * (harness.config.max_payload_bytes + 1)
    body, headers = harness.signed(harness.envelope(BAD_TASK, payload=payload))
    before = harness.snapshot()

    # Act
    response = harness.post(body, headers)

    # Assert
    _assert_refused(response, 413, "payload_too_large")
    _assert_nothing_lost(harness, accepted, before)


def test_replayed_request_is_409(harness: Harness, accepted: dict[str, Any]) -> None:
    # Arrange
    before = harness.snapshot()

    # Act
    response = harness.post(*accepted["first_request"])

    # Assert
    _assert_refused(response, 409, "replayed_nonce")
    _assert_nothing_lost(harness, accepted, before)


def test_reused_nonce_on_a_new_update_is_409(harness: Harness, accepted: dict[str, Any]) -> None:
    # Arrange
    used = json.loads(accepted["first_request"][0])["nonce"]
    before = harness.snapshot()

    # Act
    response = harness.post_envelope(harness.envelope(BAD_TASK, nonce=used))

    # Assert
    _assert_refused(response, 409, "replayed_nonce")
    _assert_nothing_lost(harness, accepted, before)


def test_second_update_for_the_same_base_version_is_409(
    harness: Harness, accepted: dict[str, Any]
) -> None:
    # Arrange: another enrolled device tries the base version the edge already holds
    other = DeviceIdentity.generate(device_id="clinic-2")
    harness.store.enroll_device(other.device_id, other.public_key_hex)
    before = harness.snapshot()

    # Act
    response = harness.post(*harness.signed(harness.envelope(1, device=other), key_of=other))

    # Assert
    _assert_refused(response, 409, "duplicate_base")
    _assert_nothing_lost(harness, accepted, before)


def test_stale_base_version_is_409(harness: Harness, accepted: dict[str, Any]) -> None:
    # Arrange: another edge's update moves task 2 to version 1
    other_edge = harness.admin.as_sender(OTHER_EDGE)
    update_id = other_edge.submit_update(
        BAD_TASK, 0, encode_params(make_params(0.1)), num_examples=5
    )
    harness.admin.as_sender(AGGREGATOR).commit_global_model(
        BAD_TASK, 1, encode_params(make_params(0.1)), [update_id]
    )
    before = harness.snapshot()

    # Act
    response = harness.post_envelope(harness.envelope(BAD_TASK, 0))

    # Assert
    _assert_refused(response, 409, "stale_base")
    _assert_nothing_lost(harness, accepted, before)


def test_cancelled_task_is_409(harness: Harness, accepted: dict[str, Any]) -> None:
    # Arrange
    harness.admin.cancel_task(BAD_TASK)
    before = harness.snapshot()

    # Act
    response = harness.post_envelope(harness.envelope(BAD_TASK))

    # Assert
    _assert_refused(response, 409, "task_closed")
    _assert_nothing_lost(harness, accepted, before)


def test_failed_submission_frees_the_base_version(harness: Harness) -> None:
    # Arrange: the operator's account already submitted on task 1 base 0 behind the edge's back
    harness.ledger.submit_update(1, 0, encode_params(make_params(0.3)), num_examples=1)
    ref = harness.post_envelope(harness.envelope(1)).json()["update_ref"]
    harness.submitter.submit_pending()

    # Act
    retry = harness.post_envelope(harness.envelope(1))

    # Assert
    status = harness.get(f"/v1/updates/{ref}").json()
    assert status["status"] == "failed"
    assert status["error"] == "UpdateLedgerDuplicateSubmission"
    assert retry.status_code == 202


# ---- refusals of the read endpoints --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [
        ("GET", "/v1/tasks/99", 404, "unknown_task"),
        ("GET", "/v1/tasks/abc", 400, "bad_request"),
        ("GET", "/v1/tasks/-1", 400, "bad_request"),
        ("GET", f"/v1/tasks/{2**70}", 400, "bad_request"),
        ("GET", "/v1/tasks/1/global?version=7", 404, "unknown_version"),
        ("GET", "/v1/tasks/1/global?version=x", 400, "bad_request"),
        ("GET", "/v1/tasks/99/global", 404, "unknown_task"),
        ("GET", "/v1/tasks/99/global?version=0", 404, "unknown_task"),
        ("GET", "/v1/updates/" + "0" * 32, 404, "unknown_update"),
        ("GET", "/v1/updates/not-a-ref", 400, "bad_request"),
        ("GET", "/v1/nothing", 404, "not_found"),
        ("DELETE", "/v1/updates/" + "0" * 32, 405, "method_not_allowed"),
        ("GET", "/v1/updates", 405, "method_not_allowed"),
    ],
)
def test_read_endpoints_refuse_bad_input_with_json(
    harness: Harness, method: str, path: str, status: int, reason: str
) -> None:
    # a GET is the enrolled device's signed read: device routes refuse anonymous reads (401)
    response = harness.get(path) if method == "GET" else harness.http.request(method, path)
    _assert_refused(response, status, reason)


# ---- the chain is down ------------------------------------------------------------------------


class DownLedger:
    """A ledger whose node cannot be reached."""

    def __init__(self, inner: Any, error: Exception) -> None:
        self.inner = inner
        self.error = error

    @property
    def sender(self) -> str:
        return self.inner.sender

    def deployment_scope(self) -> tuple[int, str]:
        return self.inner.deployment_scope()

    def get_task(self, task_id: int) -> Any:
        raise self.error

    def read_global_models(self, task_id: int) -> Any:
        raise self.error


@pytest.mark.parametrize("error", [ChainError("node down"), ConnectionError("refused")])
def test_unreachable_chain_is_503_and_nothing_is_stored(harness: Harness, error: Exception) -> None:
    # Arrange
    app = create_app(
        harness.config, DownLedger(harness.ledger, error), harness.store, clock=lambda: float(NOW)
    )
    request = harness.signed(harness.envelope(1))

    # Act
    with TestClient(app) as http:
        posted = http.post("/v1/updates", content=request[0], headers=request[1])
        task = http.get("/v1/tasks/1")

    # Assert
    _assert_refused(posted, 503, "chain_unavailable")
    _assert_refused(task, 503, "chain_unavailable")
    assert harness.store.list_updates() == []
    assert not harness.store.has_nonce(harness.device.device_id, json.loads(request[0])["nonce"])
