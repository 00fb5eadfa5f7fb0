"""Edge: arbitrary request bodies and headers never produce a 5xx or a stored update."""

from __future__ import annotations

import json
from typing import Any

from edge_server_harness import Harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fednode.update.envelope import SIGNATURE_HEADER

FIELDS = [
    "device_id", "task_id", "base_version", "num_examples", "epsilon_micro", "payload",
    "nonce", "timestamp",
]  # fmt: skip
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True), st.text(max_size=40), st.lists(st.integers(), max_size=3),
    st.just("clinic-1"), st.just("AAAA"), st.just("00" * 16),
)  # fmt: skip
PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check(harness: Harness, body: bytes, signature: str) -> None:
    response = harness.post(body, {SIGNATURE_HEADER: signature})
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"error", "detail"}
    assert harness.store.list_updates() == []


@FUZZ
@given(body=st.binary(max_size=300), signature=st.text(PRINTABLE, max_size=90))
def test_random_bytes_are_refused_with_a_4xx(harness: Harness, body: bytes, signature: str) -> None:
    _check(harness, body, signature)


@FUZZ
@given(
    fields=st.dictionaries(st.sampled_from(FIELDS + ["extra"]), VALUES, max_size=9),
    signature=st.sampled_from(["", "AAAA", "A" * 88, "=" * 4]),
)
def test_random_json_objects_are_refused_with_a_4xx(
    harness: Harness, fields: dict[str, Any], signature: str
) -> None:
    _check(harness, json.dumps(fields).encode(), signature)
