"""Edge: Ed25519 device identities, update signatures and request freshness.

Devices hold their own Ed25519 key; the edge keeps only public keys (raw 32 bytes, hex).
A device signs :func:`edge_server.protocol.signing_message` of each update; the edge checks the
signature, the timestamp against its clock, and (in the store) that the nonce is new.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_server.protocol import UpdateEnvelope, signing_message
from fednode.codec import digest_bytes
from fednode.errors import FednodeValueError, UpdateRejectedError

__all__ = [
    "check_timestamp",
    "device_id_for",
    "generate_private_key",
    "new_nonce",
    "private_key_from_hex",
    "private_key_to_hex",
    "public_key_from_hex",
    "public_key_to_hex",
    "sign_envelope",
    "verify_envelope",
]

_KEY_BYTES = 32
_RAW = serialization.Encoding.Raw


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
