"""Edge: fuzzing of well-formed but wrong requests: types, sizes, signatures and replays.

Every case builds a request that is close to a valid signed update and must be refused with a
JSON 4xx ``{"error", "detail"}``; afterwards the store holds exactly the rows it held before
and the ledger saw no write (``InMemoryLedger.update_count`` unchanged, also after a submitter
pass). Rate limiting is off here so that each case meets the check it targets.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from edge_server_harness import EDGE, NOW, Harness, make_consortium, make_params, tamper
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_server.app import create_app
from edge_server.config import EdgeConfig
from edge_server.service import enroll_device
from edge_server.store import EdgeStore
from edge_server.submitter import Submitter
from fednode.codec import encode_params
from fednode.site.device_client import DeviceIdentity, EdgeClient
from fednode.update.envelope import SIGNATURE_HEADER

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
INT_FIELDS = ["task_id", "base_version", "num_examples", "epsilon_micro", "timestamp"]
TEXT_FIELDS = ["device_id", "nonce", "payload"]
WRONG_FOR_INT = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.integers(max_value=-1), st.integers(min_value=2**63),
)  # fmt: skip
WRONG_FOR_TEXT = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
    st.lists(st.text(max_size=3), max_size=2), st.just(""),
)  # fmt: skip
SIGNATURE_REASONS = {"bad_signature"}
TASK = 2  # bad requests target task 2; task 1 holds one accepted, submitted update


@dataclass(frozen=True)
class Fuzz:
    """The harness, the accepted first request (for replays) and a second enrolled device."""

    harness: Harness
    first: tuple[bytes, dict[str, str]]
    other: DeviceIdentity


@pytest.fixture
def fuzz(tmp_path: Path) -> Iterator[Fuzz]:
    """A harness without rate limits, with one update accepted and on the ledger already."""
    admin = make_consortium()
    ledger = admin.as_sender(EDGE)
    config = EdgeConfig(
        name="edge-fuzz", db_path=str(tmp_path / "edge.sqlite"), device_rate_per_s=0
    )
    store = EdgeStore(config.db_path)
    device = DeviceIdentity.generate(device_id="clinic-1")
    other = DeviceIdentity.generate(device_id="clinic-2")
    for identity in (device, other):
        enroll_device(store, identity.device_id, identity.public_key_hex)
    submitter = Submitter(store, ledger)
    app = create_app(config, ledger, store, submitter=submitter, clock=lambda: float(NOW))
    with TestClient(app) as http:
        client = EdgeClient("http://testserver", device, http=http, clock=lambda: float(NOW))
        harness = Harness(admin, ledger, store, submitter, http, device, client, config)
        first = harness.signed(harness.envelope(1))
        assert harness.post(*first).status_code == 202
        submitter.submit_pending()
        assert ledger.update_count() == 1
        yield Fuzz(harness, first, other)
    submitter.stop()
    store.close()


def _refused(harness: Harness, body: bytes, headers: dict[str, str], reasons: set[str]) -> None:
    """Posts, then checks the answer is a JSON 4xx and nothing was stored or written."""
    before = harness.snapshot()
    response = harness.post(body, headers)
    assert 400 <= response.status_code < 500, response.text
    answer = response.json()
    assert set(answer) == {"error", "detail"} and answer["detail"], answer
    assert answer["error"] in reasons, answer
    harness.submitter.submit_pending()
    assert harness.snapshot() == before


# ---- well-formed JSON, wrongly typed fields --------------------------------------------------


@FUZZ
@given(name=st.sampled_from(INT_FIELDS), value=WRONG_FOR_INT)
def test_wrongly_typed_integer_field_is_400(
    fuzz: Fuzz, name: str, value: Any
) -> None:
    harness = fuzz.harness
    body, headers = harness.signed(harness.envelope(TASK))
    _refused(harness, tamper(body, **{name: value}), headers, {"bad_request"})


@FUZZ
@given(name=st.sampled_from(TEXT_FIELDS), value=WRONG_FOR_TEXT)
def test_wrongly_typed_text_field_is_400(
    fuzz: Fuzz, name: str, value: Any
) -> None:
    harness = fuzz.harness
    body, headers = harness.signed(harness.envelope(TASK))
    reasons = {"bad_base64"} if name == "payload" else {"bad_request"}
    if name == "payload" and value == "":
        reasons = {"bad_signature"}  # "" is valid base64 (empty payload): signature fails first
    _refused(harness, tamper(body, **{name: value}), headers, reasons)


# ---- oversize bodies ---------------------------------------------------------------------------


@settings(FUZZ, max_examples=8)
@given(extra=st.integers(min_value=1, max_value=200_000), chunked=st.booleans())
def test_oversize_body_is_413(fuzz: Fuzz, extra: int, chunked: bool) -> None:
    harness = fuzz.harness
    body, headers = harness.signed(harness.envelope(TASK))
    big = tamper(body, padding="x" * (harness.config.max_body_bytes + extra - len(body)))
    assert len(big) > harness.config.max_body_bytes
    before = harness.snapshot()
    content: Any = iter([big[i : i + 65536] for i in range(0, len(big), 65536)]) if chunked else big
    response = harness.http.post("/v1/updates", content=content, headers=headers)
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"
    harness.submitter.submit_pending()
    assert harness.snapshot() == before


# ---- bad signatures over valid structure -------------------------------------------------------


@FUZZ
@given(bit=st.integers(min_value=0, max_value=511))
def test_signature_with_one_flipped_bit_is_401(fuzz: Fuzz, bit: int) -> None:
    harness = fuzz.harness
    body, headers = harness.signed(harness.envelope(TASK))
    raw = bytearray(base64.b64decode(headers[SIGNATURE_HEADER]))
    raw[bit // 8] ^= 1 << (bit % 8)
    flipped = {SIGNATURE_HEADER: base64.b64encode(bytes(raw)).decode()}
    _refused(harness, body, flipped, SIGNATURE_REASONS)


@FUZZ
@given(num_examples=st.integers(min_value=1, max_value=10_000), enrolled=st.booleans())
def test_signature_of_another_device_is_401(fuzz: Fuzz, num_examples: int, enrolled: bool) -> None:
    # clinic-1's envelope signed by enrolled clinic-2, or by a key nobody enrolled
    harness = fuzz.harness
    signer = fuzz.other if enrolled else DeviceIdentity.generate(device_id="clinic-1")
    envelope = harness.envelope(TASK, num_examples=num_examples)
    _refused(harness, *harness.signed(envelope, key_of=signer), SIGNATURE_REASONS)


@FUZZ
@given(
    name=st.sampled_from(["task_id", "base_version", "num_examples", "epsilon_micro", "payload"]),
    delta=st.integers(min_value=1, max_value=1000),
)
def test_signature_over_other_field_values_is_401(
    fuzz: Fuzz, name: str, delta: int
) -> None:
    # The signature is valid for one envelope; the body carries a neighbour of it.
    harness = fuzz.harness
    signed_env = harness.envelope(TASK)
    body, headers = harness.signed(signed_env)
    if name == "payload":
        # 0.1 is the signed payload's fill (the harness's default): stay off it for every delta
        value: Any = base64.b64encode(encode_params(make_params(0.1 + 0.001 * delta))).decode()
    else:
        value = getattr(signed_env, name) + delta
    _refused(harness, tamper(body, **{name: value}), headers, SIGNATURE_REASONS)


# ---- replays ----------------------------------------------------------------------------------


@settings(FUZZ, max_examples=5)
@given(times=st.integers(min_value=1, max_value=3))
def test_the_same_request_again_is_409(fuzz: Fuzz, times: int) -> None:
    for _ in range(times):
        _refused(fuzz.harness, *fuzz.first, {"replayed_nonce"})


@FUZZ
@given(task=st.sampled_from([1, 2, 3]), num_examples=st.integers(min_value=1, max_value=99))
def test_same_nonce_on_a_freshly_signed_update_is_409(
    fuzz: Fuzz, task: int, num_examples: int
) -> None:
    harness = fuzz.harness
    used = json.loads(fuzz.first[0])["nonce"]
    envelope = harness.envelope(task, nonce=used, num_examples=num_examples)
    _refused(harness, *harness.signed(envelope), {"replayed_nonce"})


@FUZZ
@given(
    skew=st.integers(min_value=301, max_value=10**9),
    future=st.booleans(),
)
def test_old_or_future_timestamp_is_401(fuzz: Fuzz, skew: int, future: bool) -> None:
    harness = fuzz.harness
    timestamp = NOW + skew if future else max(NOW - skew, 0)
    envelope = harness.envelope(TASK, timestamp=timestamp)
    _refused(harness, *harness.signed(envelope), {"stale_timestamp"})
