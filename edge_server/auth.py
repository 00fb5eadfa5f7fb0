"""Edge: Ed25519 device identities, update signatures and request freshness.

Devices hold their own Ed25519 key; the edge keeps only public keys (raw 32 bytes, hex).
A device signs :func:`edge_server.protocol.signing_message` of each update; the edge checks the
signature, the timestamp against its clock, and (in the store) that the nonce is new.

Reads that reveal anything about a device (its update's status, its evaluations, its cohort)
are authenticated too: the device signs :func:`read_signing_message` (method, path, its id, a
timestamp and the edge's scope) and sends it in the ``X-Fednode-Device``,
``X-Fednode-Timestamp`` and ``X-Fednode-Signature`` headers; the edge operator may instead
send ``Authorization: Bearer <operator token>``. :func:`authenticate_read` checks either.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_server.protocol import (
    SIGNATURE_HEADER,
    SigningScope,
    UpdateEnvelope,
    decode_signature,
    signing_message,
)
from fednode.codec import digest_bytes
from fednode.errors import FednodeValueError, UpdateRejectedError

__all__ = [
    "DEVICE_HEADER",
    "OPERATOR",
    "READ_SIGNING_DOMAIN",
    "TIMESTAMP_HEADER",
    "authenticate_read",
    "check_timestamp",
    "device_id_for",
    "generate_private_key",
    "new_nonce",
    "private_key_from_hex",
    "private_key_to_hex",
    "public_key_from_hex",
    "public_key_to_hex",
    "read_signing_message",
    "sign_envelope",
    "sign_read",
    "verify_envelope",
]

_KEY_BYTES = 32
_RAW = serialization.Encoding.Raw
DEVICE_HEADER = "X-Fednode-Device"
TIMESTAMP_HEADER = "X-Fednode-Timestamp"
READ_SIGNING_DOMAIN = b"fednode-read-v1\n"
OPERATOR = "operator"
"""The reader :func:`authenticate_read` returns for the edge operator's token."""


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 device key from the OS random source.

    Example:
      >>> len(private_key_to_hex(generate_private_key()))
      64
    """
    return Ed25519PrivateKey.generate()


def private_key_to_hex(key: Ed25519PrivateKey) -> str:
    """Raw 32-byte private key as lowercase hex (keep it out of logs).

    Example:
      >>> text = private_key_to_hex(generate_private_key())
      >>> private_key_to_hex(private_key_from_hex(text)) == text
      True
    """
    raw = key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return raw.hex()


def private_key_from_hex(text: str) -> Ed25519PrivateKey:
    """Parses a raw 32-byte hex private key.

    Raises:
      FednodeValueError: if ``text`` is not 64 hex characters.

    Example:
      >>> private_key_from_hex("zz")
      Traceback (most recent call last):
      ...
      fednode.errors.FednodeValueError: an Ed25519 key must be 32 bytes of hex
    """
    return Ed25519PrivateKey.from_private_bytes(_raw_key(text))


def public_key_to_hex(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Raw 32-byte public key as lowercase hex; a private key is reduced to its public half.

    Example:
      >>> len(public_key_to_hex(generate_private_key()))
      64
    """
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(_RAW, serialization.PublicFormat.Raw).hex()


def public_key_from_hex(text: str) -> Ed25519PublicKey:
    """Parses a raw 32-byte hex public key.

    Raises:
      FednodeValueError: if ``text`` is not 64 hex characters.

    Example:
      >>> pub = public_key_to_hex(generate_private_key())
      >>> public_key_to_hex(public_key_from_hex(pub)) == pub
      True
    """
    return Ed25519PublicKey.from_public_bytes(_raw_key(text))


def device_id_for(public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Default device id: ``dev-`` + 16 hex characters of keccak(public key).

    Example:
      >>> device_id_for(generate_private_key()).startswith("dev-")
      True
    """
    raw = bytes.fromhex(public_key_to_hex(public_key))
    return "dev-" + digest_bytes(raw).hex()[:16]


def new_nonce() -> str:
    """A fresh 16-byte random nonce, lowercase hex.

    Example:
      >>> len(new_nonce())
      32
    """
    return secrets.token_hex(16)


def sign_envelope(key: Ed25519PrivateKey, envelope: UpdateEnvelope) -> bytes:
    """Signs an update envelope; returns the 64-byte Ed25519 signature.

    Example:
      >>> key = generate_private_key()
      >>> env = UpdateEnvelope("dev-1", 0, 0, 5, 0, b"x", "00" * 8, 1)
      >>> verify_envelope(key.public_key(), env, sign_envelope(key, env))
    """
    return key.sign(signing_message(envelope))


def verify_envelope(key: Ed25519PublicKey, envelope: UpdateEnvelope, signature: bytes) -> None:
    """Checks a device's signature over an envelope.

    Raises:
      UpdateRejectedError: ``bad_signature`` when the signature does not verify.

    Example:
      >>> key = generate_private_key()
      >>> env = UpdateEnvelope("dev-1", 0, 0, 5, 0, b"x", "00" * 8, 1)
      >>> verify_envelope(key.public_key(), env, bytes(64))
      Traceback (most recent call last):
      ...
      fednode.errors.UpdateRejectedError: bad_signature: signature does not verify for dev-1
    """
    try:
        key.verify(signature, signing_message(envelope))
    except InvalidSignature as exc:
        detail = f"signature does not verify for {envelope.device_id}"
        raise UpdateRejectedError("bad_signature", detail) from exc


def check_timestamp(timestamp: int, *, now: float, max_skew_s: int) -> None:
    """Refuses a request whose signed timestamp is too far from the edge clock.

    Raises:
      UpdateRejectedError: ``stale_timestamp``.

    Example:
      >>> check_timestamp(1000, now=1100.0, max_skew_s=300)
      >>> check_timestamp(1000, now=2000.0, max_skew_s=300)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      fednode.errors.UpdateRejectedError: stale_timestamp: timestamp is 1000 s off ...
    """
    skew = abs(now - timestamp)
    if skew > max_skew_s:
        detail = f"timestamp is {skew:.0f} s off the edge clock (max {max_skew_s} s)"
        raise UpdateRejectedError("stale_timestamp", detail)


def _raw_key(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip().removeprefix("0x"))
    except (AttributeError, ValueError):
        raw = b""
    if len(raw) != _KEY_BYTES:
        raise FednodeValueError(f"an Ed25519 key must be {_KEY_BYTES} bytes of hex")
    return raw


def read_signing_message(
    scope: SigningScope, method: str, path: str, device_id: str, timestamp: int
) -> bytes:
    """The bytes a device signs to read ``method path`` at one edge (domain ``fednode-read-v1``).

    Example:
      >>> scope = SigningScope("0x" + "ed" * 20, 7, "0x" + "11" * 20)
      >>> read_signing_message(scope, "GET", "/v1/updates/ab", "dev-1", 5).splitlines()[1:3]
      [b'GET /v1/updates/ab', b'dev-1 5']
    """
    lines = [f"{method.upper()} {path}", f"{device_id} {timestamp}",
             f"{scope.edge.lower()} {scope.chain_id} {scope.deployment.lower()}"]
    return READ_SIGNING_DOMAIN + "\n".join(lines).encode()


def sign_read(
    key: Ed25519PrivateKey, scope: SigningScope, method: str, path: str, device_id: str,
    timestamp: int,
) -> dict[str, str]:
    """The headers of a device's authenticated read.

    Example:
      >>> key, scope = generate_private_key(), SigningScope("0x" + "ed" * 20, 7, "0x" + "11" * 20)
      >>> sorted(sign_read(key, scope, "GET", "/v1/updates/ab", "dev-1", 5))
      ['X-Fednode-Device', 'X-Fednode-Signature', 'X-Fednode-Timestamp']
    """
    signature = key.sign(read_signing_message(scope, method, path, device_id, timestamp))
    return {
        DEVICE_HEADER: device_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
    }


def authenticate_read(
    headers: Mapping[str, str],
    method: str,
    path: str,
    *,
    scope: SigningScope,
    device_key: Callable[[str], str | None],
    now: float,
    max_skew_s: int,
    operator_token: str | None,
) -> str:
    """Who is reading: the device whose signature verifies, or ``OPERATOR`` for its token.

    Raises:
      UpdateRejectedError: ``unauthenticated`` (no credentials, an unknown device, a wrong
        token), ``bad_signature`` or ``stale_timestamp``.

    Example:
      >>> scope = SigningScope("0x" + "ed" * 20, 7, "0x" + "11" * 20)
      >>> authenticate_read({}, "GET", "/v1/updates/ab", scope=scope, device_key=lambda d: None,
      ...                   now=0.0, max_skew_s=300, operator_token=None)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      fednode.errors.UpdateRejectedError: unauthenticated: ...
    """
    bearer = headers.get("authorization", "")
    if bearer:
        token = bearer.removeprefix("Bearer ").strip()
        if operator_token and hmac.compare_digest(token.encode(), operator_token.encode()):
            return OPERATOR
        raise UpdateRejectedError("unauthenticated", "the operator token does not match")
    device_id, stamp = headers.get(DEVICE_HEADER.lower()), headers.get(TIMESTAMP_HEADER.lower())
    if not device_id or not stamp or not stamp.isdigit():
        raise UpdateRejectedError(
            "unauthenticated",
            f"this route needs the device's signature ({DEVICE_HEADER}, {TIMESTAMP_HEADER}, "
            f"{SIGNATURE_HEADER}) or the operator's token",
        )
    signature = decode_signature(headers.get(SIGNATURE_HEADER.lower()))
    key_hex = device_key(device_id)
    if key_hex is None:
        raise UpdateRejectedError("unauthenticated", f"device {device_id} is not enrolled")
    check_timestamp(int(stamp), now=now, max_skew_s=max_skew_s)
    message = read_signing_message(scope, method, path, device_id, int(stamp))
    try:
        public_key_from_hex(key_hex).verify(signature, message)
    except InvalidSignature as exc:
        raise UpdateRejectedError("bad_signature", f"read signature of {device_id}") from exc
    return device_id
