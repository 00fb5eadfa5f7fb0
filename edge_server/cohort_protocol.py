"""Edge: the signed device -> edge messages of a secure cohort's rounds (wire format).

A device posts ``POST /v1/cohorts/{round}`` with one JSON object::

    {"device_id": "...", "task_id": 1, "base_version": 0, "round": "masked",
     "nonce": "<hex>", "timestamp": 1700000000, "body": {...}}

and ``X-Fednode-Signature`` (Ed25519, the device's enrolled key) over ``COHORT_DOMAIN`` + the
canonical JSON of that object (sorted keys, no spaces). Bodies per round (Bonawitz et al. 2017):

- ``advertise``: ``{"num_examples": n, "mask_public": hex32, "enc_public": hex32,
  "signature": hex64}``; ``signature`` is the device's Ed25519 signature over
  :func:`advertisement_bytes`, which every peer checks against the key it has enrolled for that
  device, so the edge cannot substitute a key.
- ``shares``: ``{"boxes": {peer_device_id: base64 box of the two encrypted Shamir shares}}``
- ``masked``: ``{"masked": base64 of little-endian uint32 values, "epsilon_micro": e}``
- ``check``: ``{"survivors": [device ids that sent masked input, sorted], "signature": hex64}``;
  the device's signature over :func:`survivors_bytes` (the consistency check: every survivor
  signs the same list before anyone reveals).
- ``reveal``: ``{"seed_shares": {survivor: "0x..."}, "key_shares": {dropped: "0x..."}}``: for
  each peer the share of its self-mask seed (it is a survivor) or of its mask key (it dropped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fednode.errors import UpdateRejectedError
from fednode.update.envelope import (
    DEVICE_ID_PATTERN,
    NONCE_PATTERN,
    check_int,
    check_text,
    load_object,
)

__all__ = [
    "ADVERTISEMENT_DOMAIN",
    "COHORT_DOMAIN",
    "CohortMessage",
    "ROUNDS",
    "SURVIVORS_DOMAIN",
    "advertisement_bytes",
    "cohort_message_to_json",
    "cohort_signing_message",
    "parse_cohort_message",
    "sign_cohort_message",
    "signature_verifies",
    "survivors_bytes",
    "verify_cohort_message",
]

COHORT_DOMAIN = b"fednode-cohort-v2\n"
ADVERTISEMENT_DOMAIN = b"fednode-cohort-advertisement-v1\n"
SURVIVORS_DOMAIN = b"fednode-cohort-survivors-v1\n"
ROUNDS = ("advertise", "shares", "masked", "check", "reveal")
_FIELDS = frozenset({"device_id", "task_id", "base_version", "round", "nonce", "timestamp", "body"})


@dataclass(frozen=True)
class CohortMessage:
    """One signed cohort message; ``body`` is checked per round by the edge's cohort service."""

    device_id: str
    task_id: int
    base_version: int
    round: str
    nonce: str
    timestamp: int
    body: dict[str, Any]

    def to_object(self) -> dict[str, Any]:
        """The JSON object that is posted and signed."""
        return {
            "device_id": self.device_id, "task_id": self.task_id,
            "base_version": self.base_version, "round": self.round, "nonce": self.nonce,
            "timestamp": self.timestamp, "body": self.body,
        }  # fmt: skip


def cohort_message_to_json(message: CohortMessage) -> bytes:
    """Canonical JSON of a message: the request body, and (after the domain) what is signed.

    Example:
      >>> m = CohortMessage("d-1", 1, 0, "masked", "00" * 8, 5, {"masked": "", "epsilon_micro": 0})
      >>> parse_cohort_message(cohort_message_to_json(m)) == m
      True
    """
    return json.dumps(message.to_object(), sort_keys=True, separators=(",", ":")).encode()


def cohort_signing_message(message: CohortMessage) -> bytes:
    """The exact bytes a device signs.

    Example:
      >>> m = CohortMessage("d-1", 1, 0, "reveal", "00" * 8, 5, {"shares": {}})
      >>> cohort_signing_message(m).startswith(COHORT_DOMAIN)
      True
    """
    return COHORT_DOMAIN + cohort_message_to_json(message)


def sign_cohort_message(key: Ed25519PrivateKey, message: CohortMessage) -> bytes:
    """Signs a cohort message with the device's Ed25519 key (64 bytes)."""
    return key.sign(cohort_signing_message(message))


def verify_cohort_message(
    key: Ed25519PublicKey, message: CohortMessage, signature: bytes
) -> None:
    """Checks a device's signature over a cohort message.

    Raises:
      UpdateRejectedError: ``bad_signature``.
    """
    try:
        key.verify(signature, cohort_signing_message(message))
    except InvalidSignature as exc:
        detail = f"signature does not verify for {message.device_id}"
        raise UpdateRejectedError("bad_signature", detail) from exc


def advertisement_bytes(
    task_id: int, base_version: int, device_id: str, *, num_examples: int, mask_public: bytes,
    enc_public: bytes,
) -> bytes:  # fmt: skip
    """What a device signs to advertise its two X25519 public keys to its peers.

    Example:
      >>> m = advertisement_bytes(1, 0, "d", num_examples=5, mask_public=b"m", enc_public=b"e")
      >>> m.startswith(ADVERTISEMENT_DOMAIN), b'"mask_public":"6d"' in m
      (True, True)
    """
    return ADVERTISEMENT_DOMAIN + _canonical({
        "task_id": task_id, "base_version": base_version, "device_id": device_id,
        "num_examples": num_examples, "mask_public": mask_public.hex(),
        "enc_public": enc_public.hex(),
    })  # fmt: skip


def survivors_bytes(task_id: int, base_version: int, survivors: list[str]) -> bytes:
    """What a survivor signs in the consistency check: the sorted ids that sent masked input.

    Example:
      >>> survivors_bytes(1, 0, ["b", "a"])
      b'fednode-cohort-survivors-v1\\n{"base_version":0,"survivors":["a","b"],"task_id":1}'
    """
    body = {"task_id": task_id, "base_version": base_version, "survivors": sorted(survivors)}
    return SURVIVORS_DOMAIN + _canonical(body)


def signature_verifies(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``key``'s Ed25519 signature over ``message``.

    Example:
      >>> k = Ed25519PrivateKey.generate()
      >>> signature_verifies(k.public_key(), k.sign(b"m"), b"m"), signature_verifies(
      ...     k.public_key(), k.sign(b"m"), b"n")
      (True, False)
    """
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def parse_cohort_message(raw: bytes) -> CohortMessage:
    """Parses and type-checks a cohort request body (the round body is checked later).

    Raises:
      UpdateRejectedError: ``bad_json`` or ``bad_request``.

    Example:
      >>> parse_cohort_message(b'{"round": "advertise"}')  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      fednode.errors.UpdateRejectedError: bad_request: missing fields [...
    """
    fields = load_object(raw)
    missing, unknown = sorted(_FIELDS - set(fields)), sorted(set(fields) - _FIELDS)
    if missing or unknown:
        raise UpdateRejectedError("bad_request", f"missing fields {missing}, unknown {unknown}")
    if fields["round"] not in ROUNDS:
        raise UpdateRejectedError("bad_request", f"round must be one of {ROUNDS}")
    if not isinstance(fields["body"], dict):
        raise UpdateRejectedError("bad_request", "body must be a JSON object")
    return CohortMessage(
        device_id=check_text("device_id", fields["device_id"], DEVICE_ID_PATTERN),
        task_id=check_int("task_id", fields["task_id"]),
        base_version=check_int("base_version", fields["base_version"]),
        round=str(fields["round"]),
        nonce=check_text("nonce", fields["nonce"], NONCE_PATTERN),
        timestamp=check_int("timestamp", fields["timestamp"]),
        body=fields["body"],
    )
