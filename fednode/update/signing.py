"""Update: a device's Ed25519 identity keys and the signatures over what it sends an edge.

Devices hold their own Ed25519 key; edges keep only public keys (raw 32 bytes, hex). A device
signs :func:`fednode.update.envelope.signing_message` of each update (:func:`sign_envelope`)
and :func:`read_signing_message` of each read of its own records (:func:`sign_read`: method,
path, its id, a timestamp and the edge's scope, sent in the ``X-Fednode-Device``,
``X-Fednode-Timestamp`` and ``X-Fednode-Signature`` headers). The edge verifies both with the
same functions (``edge_server.auth``); the signed bytes are the device's and the edge's alike.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fednode.codec import digest_bytes
from fednode.errors import FednodeValueError, UpdateRejectedError
from fednode.update.envelope import (
    SIGNATURE_HEADER,
    SigningScope,
    UpdateEnvelope,
    signing_message,
)

__all__ = [
    "DEVICE_HEADER",
    "READ_SIGNING_DOMAIN",
    "TIMESTAMP_HEADER",
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


def _raw_key(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip().removeprefix("0x"))
    except (AttributeError, ValueError):
        raw = b""
    if len(raw) != _KEY_BYTES:
        raise FednodeValueError(f"an Ed25519 key must be {_KEY_BYTES} bytes of hex")
    return raw
