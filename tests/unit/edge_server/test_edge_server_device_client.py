"""Edge: the device client checks what it pulls and turns every refusal into EdgeError."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_server_harness import Harness, make_params

from fednode.codec import encode_params
from fednode.errors import CodecError, EdgeError, FednodeValueError
from fednode.site.device_client import DeviceIdentity, EdgeClient


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> EdgeClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return EdgeClient("http://edge.test/", DeviceIdentity.generate(), http=http)


def _json(status: int, body: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body)


def test_identity_save_and_load(tmp_path: Path) -> None:
    # Arrange
    identity = DeviceIdentity.generate(device_id="clinic-9")
    path = tmp_path / "keys" / "device.json"

    # Act
    identity.save(path)
    loaded = DeviceIdentity.load(path)

    # Assert
    assert loaded.device_id == "clinic-9" and loaded.public_key_hex == identity.public_key_hex
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "private_key" not in repr(identity)


@pytest.mark.parametrize("text", ["", "{}", "[]", '{"device_id": "d", "private_key": "zz"}'])
def test_loading_a_malformed_identity_fails_cleanly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "device.json"
    path.write_text(text)
    with pytest.raises(FednodeValueError):
        DeviceIdentity.load(path)


def test_refusal_becomes_edge_error_with_reason_and_detail() -> None:
    # Arrange
    client = _client(_json(422, {"error": "norm_too_large", "detail": "L2 norm 9 exceeds 5"}))

    # Act
    with pytest.raises(EdgeError) as refused:
        client.post_update(1, 0, make_params(0.1), num_examples=3)

    # Assert
    assert (refused.value.status, refused.value.reason) == (422, "norm_too_large")
    assert "exceeds" in str(refused.value)


def test_non_json_error_and_unreachable_edge() -> None:
    # Arrange
    gateway = _client(lambda request: httpx.Response(502, text="<html>bad gateway</html>"))

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    # Act
    with pytest.raises(EdgeError) as bad_gateway:
        gateway.fetch_task(1)
    with pytest.raises(EdgeError) as unreachable:
        _client(refuse).fetch_task(1)

    # Assert
    assert (bad_gateway.value.status, bad_gateway.value.reason) == (502, "http_error")
    assert (unreachable.value.status, unreachable.value.reason) == (0, "unreachable")


def test_global_model_with_a_wrong_digest_is_refused() -> None:
    # Arrange
    payload = encode_params(make_params(0.5))
    body = {"version": 0, "digest": "00" * 32, "payload": base64.b64encode(payload).decode()}

    # Act / Assert
    with pytest.raises(CodecError):
        _client(_json(200, body)).fetch_global(1)


def test_post_update_sends_a_signed_canonical_body() -> None:
    # Arrange
    seen: list[httpx.Request] = []

    scope = {"edge": "0x" + "ed" * 20, "chain_id": 7, "deployment": "0x" + "11" * 20}

    def accept(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/info":
            return httpx.Response(200, json={"name": "e", **scope})
        seen.append(request)
        return httpx.Response(202, json={"update_ref": "ab" * 16, "status": "accepted"})

    client = _client(accept)

    # Act
    ref = client.post_update(4, 2, make_params(0.1), num_examples=3, epsilon_micro=9)

    # Assert
    (request,) = seen
    body = json.loads(request.content)
    assert ref == "ab" * 16 and str(request.url) == "http://edge.test/v1/updates"
    assert (body["task_id"], body["base_version"], body["epsilon_micro"]) == (4, 2, 9)
    assert base64.b64decode(body["payload"]) == encode_params(make_params(0.1))
    assert len(base64.b64decode(request.headers["X-Fednode-Signature"])) == 64
    assert {k: body[k] for k in scope} == scope  # the scope the edge reported is signed


def test_wait_submitted_reports_refusal_and_timeout(harness: Harness) -> None:
    # Arrange: the operator already used task 1 base 0, so the chain refuses the edge's row
    harness.ledger.submit_update(1, 0, encode_params(make_params(0.3)), num_examples=1)
    refused_ref = harness.client.post_update(1, 0, make_params(0.1), num_examples=3)
    harness.submitter.submit_pending()
    pending_ref = harness.client.post_update(2, 0, make_params(0.1), num_examples=3)

    # Act
    with pytest.raises(EdgeError) as refused:
        harness.client.wait_submitted(refused_ref, timeout=1.0)
    with pytest.raises(EdgeError) as timed_out:
        harness.client.wait_submitted(pending_ref, timeout=0.05, poll_s=0.01)

    # Assert
    assert (refused.value.status, refused.value.reason) == (409, "chain_refused")
    assert "UpdateLedgerDuplicateSubmission" in str(refused.value)
    assert (timed_out.value.status, timed_out.value.reason) == (408, "timeout")
