"""Edge: the signed message is canonical, and any change to a signed field breaks the signature."""

from __future__ import annotations

import dataclasses

import pytest

from edge_server.auth import check_timestamp
from fednode.codec import digest_bytes
from fednode.errors import FednodeValueError, UpdateRejectedError
from fednode.update.envelope import (
    UpdateEnvelope,
    envelope_to_json,
    parse_envelope,
    signing_message,
)
from fednode.update.signing import (
    device_id_for,
    generate_private_key,
    private_key_from_hex,
    private_key_to_hex,
    public_key_from_hex,
    public_key_to_hex,
    sign_envelope,
    verify_envelope,
)

ENVELOPE = UpdateEnvelope(
    device_id="dev-1", task_id=3, base_version=2, num_examples=5, epsilon_micro=7,
    payload=b"x", nonce="0123456789abcdef", timestamp=1_700_000_000,
    edge="0x" + "ed" * 20, chain_id=1337, deployment="0x" + "11" * 20,
)  # fmt: skip


def test_signing_message_is_the_documented_canonical_bytes() -> None:
    # Arrange
    expected = (
        b"fednode-update-v2\n"
        b'{"base_version":2,"chain_id":1337,"deployment":"0x' + b"11" * 20 + b'",'
        b'"device_id":"dev-1","edge":"0x' + b"ed" * 20 + b'","epsilon_micro":7,'
        b'"nonce":"0123456789abcdef",'
        b'"num_examples":5,"payload_digest":"' + digest_bytes(b"x").hex().encode() + b'",'
        b'"task_id":3,"timestamp":1700000000}'
    )

    # Act
    message = signing_message(ENVELOPE)

    # Assert
    assert message == expected


def test_signature_round_trip_and_wire_round_trip() -> None:
    # Arrange
    key = generate_private_key()

    # Act
    signature = sign_envelope(key, ENVELOPE)
    parsed = parse_envelope(envelope_to_json(ENVELOPE))

    # Assert
    verify_envelope(key.public_key(), parsed, signature)
    assert parsed == ENVELOPE


@pytest.mark.parametrize(
    "change",
    [
        {"device_id": "dev-2"}, {"task_id": 4}, {"base_version": 1}, {"num_examples": 6},
        {"epsilon_micro": 0}, {"payload": b"y"}, {"nonce": "f123456789abcdef"},
        {"timestamp": 1_700_000_001}, {"edge": "0x" + "ee" * 20}, {"chain_id": 1},
        {"deployment": "0x" + "12" * 20},
    ],
)  # fmt: skip
def test_any_changed_field_breaks_the_signature(change: dict[str, object]) -> None:
    # Arrange
    key = generate_private_key()
    signature = sign_envelope(key, ENVELOPE)

    # Act / Assert
    with pytest.raises(UpdateRejectedError) as refused:
        verify_envelope(key.public_key(), dataclasses.replace(ENVELOPE, **change), signature)
    assert refused.value.reason == "bad_signature"


def test_key_hex_round_trip() -> None:
    # Arrange
    key = generate_private_key()

    # Act
    restored = private_key_from_hex("0x" + private_key_to_hex(key).upper())

    # Assert
    assert public_key_to_hex(restored) == public_key_to_hex(key)
    assert public_key_to_hex(public_key_from_hex(public_key_to_hex(key))) == public_key_to_hex(key)
    assert device_id_for(key) == device_id_for(key.public_key())


@pytest.mark.parametrize("text", ["", "zz" * 32, "ab" * 31, "ab" * 33])
def test_malformed_keys_are_refused(text: str) -> None:
    with pytest.raises(FednodeValueError):
        public_key_from_hex(text)
    with pytest.raises(FednodeValueError):
        private_key_from_hex(text)


def test_timestamp_window_is_inclusive() -> None:
    check_timestamp(1000, now=1300.0, max_skew_s=300)
    check_timestamp(1300, now=1000.0, max_skew_s=300)
    with pytest.raises(UpdateRejectedError) as refused:
        check_timestamp(1000, now=1300.5, max_skew_s=300)
    assert refused.value.reason == "stale_timestamp"
