"""Update: the device -> edge envelope of an update, the exact bytes a device signs, its JSON.

A device posts one JSON object per update::

    {"device_id": "...", "task_id": 0, "base_version": 0, "num_examples": 120,
     "epsilon_micro": 0, "payload": "<base64 of canonical bytes>", "nonce": "<hex>",
     "timestamp": 1700000000, "edge": "0x<operator>", "chain_id": 1337,
     "deployment": "0x<UpdateLedger>"}

with the header ``X-Fednode-Signature: <base64 Ed25519 signature>`` over
:func:`signing_message` (domain ``fednode-update-v2``). The last three fields are the update's
:class:`SigningScope`: the edge operator it is meant for, the chain and the deployment (the
UpdateLedger address), all signed, so an edge that forwards a device's update to another edge,
chain or deployment gets it refused there (``wrong_edge``, ``wrong_chain``,
``wrong_deployment``). A device learns the scope from ``GET /v1/info`` and its own config.
The device builds and signs envelopes with this module (``fednode.update.signing``); the edge
parses and checks them with it; only the HTTP status of each refusal is the edge's own
(``edge_server.protocol.STATUS_BY_REASON``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fednode.codec import digest_bytes
from fednode.errors import UpdateRejectedError

__all__ = [
    "DEVICE_ID_PATTERN",
    "MAX_INT",
    "NONCE_PATTERN",
    "SCOPE_FIELDS",
    "SIGNATURE_HEADER",
    "SIGNING_DOMAIN",
    "SigningScope",
    "UpdateEnvelope",
    "check_int",
    "check_text",
    "decode_signature",
    "envelope_to_json",
    "load_object",
    "parse_envelope",
    "signing_message",
]

SIGNATURE_HEADER = "X-Fednode-Signature"
SIGNING_DOMAIN = b"fednode-update-v2\n"
MAX_INT = 2**63 - 1
"""Largest integer field accepted (SQLite INTEGER is signed 64-bit)."""

_INT_FIELDS = ("task_id", "base_version", "num_examples", "epsilon_micro", "timestamp")
SCOPE_FIELDS = ("edge", "chain_id", "deployment")
_FIELDS = frozenset({"device_id", "payload", "nonce", *_INT_FIELDS, *SCOPE_FIELDS})
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
NONCE_PATTERN = re.compile(r"[0-9a-f]{16,64}")
_SIGNATURE_BYTES = 64
DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""What a device id looks like (checked with ``fullmatch``)."""

@dataclass(frozen=True)
class SigningScope:
    """Where a signed device message is valid: one edge, one chain, one deployment.

    Attributes:
      edge: the edge operator's address (checksummed), the account that submits on chain.
      chain_id: the chain's EIP-155 id.
      deployment: the address of the deployment's UpdateLedger contract (checksummed).

    Example:
      >>> scope = SigningScope("0x" + "ed" * 20, 1337, "0x" + "11" * 20)
      >>> SigningScope.from_json(scope.to_json()) == scope
      True
    """

    edge: str
    chain_id: int
    deployment: str

    def to_json(self) -> dict[str, Any]:
        """The ``GET /v1/info`` fields of the scope."""
        return {"edge": self.edge, "chain_id": self.chain_id, "deployment": self.deployment}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> SigningScope:
        """Parses the scope fields of a JSON object.

        Raises:
          UpdateRejectedError: ``bad_request`` when a field is missing or malformed.
        """
        return cls(
            edge=check_text("edge", body.get("edge"), _ADDRESS),
            chain_id=check_int("chain_id", body.get("chain_id")),
            deployment=check_text("deployment", body.get("deployment"), _ADDRESS),
        )

    def check(self, signed: Any) -> None:
        """Refuses a message signed for another edge, chain or deployment than this one.

        Raises:
          UpdateRejectedError: ``wrong_edge``, ``wrong_chain`` or ``wrong_deployment``.

        Example:
          >>> here = SigningScope("0x" + "ed" * 20, 1337, "0x" + "11" * 20)
          >>> here.check(SigningScope("0x" + "ee" * 20, 1337, "0x" + "11" * 20))
          ... # doctest: +ELLIPSIS
          Traceback (most recent call last):
          ...
          fednode.errors.UpdateRejectedError: wrong_edge: signed for edge 0xeeee..., this is ...
        """
        if signed.edge.lower() != self.edge.lower():
            raise UpdateRejectedError(
                "wrong_edge", f"signed for edge {signed.edge}, this is {self.edge}")
        if signed.chain_id != self.chain_id:
            raise UpdateRejectedError(
                "wrong_chain", f"signed for chain {signed.chain_id}, this is {self.chain_id}")
        if signed.deployment.lower() != self.deployment.lower():
            raise UpdateRejectedError(
                "wrong_deployment",
                f"signed for deployment {signed.deployment}, this is {self.deployment}")


@dataclass(frozen=True)
class UpdateEnvelope:
    """One update as a device sends it; everything here is covered by the device's signature.

    ``edge``, ``chain_id`` and ``deployment`` are its :class:`SigningScope` (empty by default:
    such an envelope is refused by every edge as ``wrong_edge``).
    """

    device_id: str
    task_id: int
    base_version: int
    num_examples: int
    epsilon_micro: int
    payload: bytes
    nonce: str
    timestamp: int
    edge: str = ""
    chain_id: int = 0
    deployment: str = ""

    @property
    def scope(self) -> SigningScope:
        """The edge, chain and deployment this update was signed for."""
        return SigningScope(self.edge, self.chain_id, self.deployment)

    @property
    def payload_digest(self) -> str:
        """Hex keccak-256 of the payload (no ``0x``), as signed."""
        return digest_bytes(self.payload).hex()


def signing_message(envelope: UpdateEnvelope) -> bytes:
    """The exact bytes a device signs: domain line + canonical JSON of the envelope fields.

    The payload enters through its hex keccak digest; the JSON has sorted keys and no spaces.

    Example:
      >>> env = UpdateEnvelope("dev-1", 0, 0, 5, 0, b"x", "00" * 8, 1)
      >>> signing_message(env).startswith(b"fednode-update-v2\\n{")
      True
    """
    names = ("device_id", "nonce", *_INT_FIELDS, *SCOPE_FIELDS)
    body: dict[str, Any] = {name: getattr(envelope, name) for name in names}
    body["payload_digest"] = envelope.payload_digest
    return SIGNING_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def envelope_to_json(envelope: UpdateEnvelope) -> bytes:
    """The request body of ``POST /v1/updates`` for an envelope.

    Example:
      >>> env = UpdateEnvelope("dev-1", 0, 0, 5, 0, b"x", "00" * 8, 1, "0x" + "ed" * 20, 7,
      ...                      "0x" + "11" * 20)
      >>> parse_envelope(envelope_to_json(env)) == env
      True
    """
    names = ("device_id", "nonce", *_INT_FIELDS, *SCOPE_FIELDS)
    body: dict[str, Any] = {name: getattr(envelope, name) for name in names}
    body["payload"] = base64.b64encode(envelope.payload).decode("ascii")
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_envelope(body: bytes) -> UpdateEnvelope:
    """Parses and type-checks a request body; nothing here needs the device's key.

    Raises:
      UpdateRejectedError: ``bad_json`` (not a JSON object), ``bad_request`` (missing, unknown
        or mistyped field), ``bad_base64`` (payload is not strict base64).

    Example:
      >>> parse_envelope(b"[1]")
      Traceback (most recent call last):
      ...
      fednode.errors.UpdateRejectedError: bad_json: body must be a JSON object
    """
    fields = load_object(body)
    missing, unknown = sorted(_FIELDS - set(fields)), sorted(set(fields) - _FIELDS)
    if missing or unknown:
        raise UpdateRejectedError("bad_request", f"missing fields {missing}, unknown {unknown}")
    ints = {name: check_int(name, fields[name]) for name in _INT_FIELDS}
    scope = SigningScope.from_json(fields)
    return UpdateEnvelope(
        device_id=check_text("device_id", fields["device_id"], DEVICE_ID_PATTERN),
        payload=_decode_base64("payload", fields["payload"]),
        nonce=check_text("nonce", fields["nonce"], NONCE_PATTERN),
        edge=scope.edge, chain_id=scope.chain_id, deployment=scope.deployment,
        **ints,
    )  # fmt: skip


def decode_signature(header: str | None) -> bytes:
    """Decodes the base64 signature header into 64 raw bytes.

    Raises:
      UpdateRejectedError: ``bad_signature`` when it is missing or malformed.

    Example:
      >>> len(decode_signature(base64.b64encode(bytes(64)).decode()))
      64
    """
    if not header:
        raise UpdateRejectedError("bad_signature", f"missing {SIGNATURE_HEADER} header")
    try:
        signature = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UpdateRejectedError("bad_signature", "signature is not base64") from exc
    if len(signature) != _SIGNATURE_BYTES:
        raise UpdateRejectedError("bad_signature", f"signature must be {_SIGNATURE_BYTES} bytes")
    return signature


def load_object(body: bytes) -> dict[str, Any]:
    """A JSON object without duplicate keys, else ``bad_json``."""
    try:
        value = json.loads(body, object_pairs_hook=_refuse_duplicate_keys)
    except (ValueError, RecursionError) as exc:
        raise UpdateRejectedError("bad_json", f"body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UpdateRejectedError("bad_json", "body must be a JSON object")
    return value


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate keys in JSON object")
    return dict(pairs)


def check_int(name: str, value: Any) -> int:
    """An integer field in 0..2**63-1, else ``bad_request`` (a bool is not an integer)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise UpdateRejectedError("bad_request", f"{name} must be an integer in 0..2**63-1")
    return value


def check_text(name: str, value: Any, pattern: re.Pattern[str]) -> str:
    """A text field that fully matches ``pattern``, else ``bad_request``."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise UpdateRejectedError("bad_request", f"{name} must match {pattern.pattern}")
    return value


def _decode_base64(name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise UpdateRejectedError("bad_base64", f"{name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UpdateRejectedError("bad_base64", f"{name} is not strict base64: {exc}") from exc
