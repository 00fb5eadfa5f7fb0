"""Update: the device -> edge wire format of a signed per-site evaluation of a global version.

A device evaluates final global ``version`` of a task on its own local test split and posts::

    {"device_id": "...", "task_id": 1, "version": 3, "metric_micro": 812500,
     "secondary_micro": 4294967295, "num_examples": 61, "nonce": "<hex>",
     "timestamp": 1700000000, "edge": "0x<operator>", "chain_id": 1337,
     "deployment": "0x<UpdateLedger>"}

with ``X-Fednode-Signature: <base64 Ed25519 signature>`` over
:func:`evaluation_signing_message` (its own domain line, so an update signature can never be
replayed as an evaluation). As for updates, the signed scope (edge, chain, deployment; see
``fednode.update.envelope.SigningScope``) keeps an evaluation from being replayed elsewhere.
Metrics are fractions in [0, 1] in micro units, as on chain; ``secondary_micro`` is
``NO_METRIC_MICRO`` (2**32 - 1) when the second metric is undefined.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fednode.chain.records import metric_micro, secondary_micro
from fednode.errors import UpdateRejectedError
from fednode.types import METRIC_SCALE, NO_METRIC_MICRO
from fednode.update.envelope import (
    DEVICE_ID_PATTERN,
    NONCE_PATTERN,
    SCOPE_FIELDS,
    SigningScope,
    check_int,
    check_text,
    load_object,
)

__all__ = [
    "EVALUATION_SIGNING_DOMAIN",
    "EvaluationEnvelope",
    "evaluation_signing_message",
    "evaluation_to_json",
    "make_evaluation",
    "parse_evaluation",
    "sign_evaluation",
    "verify_evaluation",
]

EVALUATION_SIGNING_DOMAIN = b"fednode-evaluation-v2\n"
_INT_FIELDS = (
    "task_id", "version", "metric_micro", "secondary_micro", "num_examples", "timestamp"
)  # fmt: skip
_FIELDS = frozenset({"device_id", "nonce", *_INT_FIELDS, *SCOPE_FIELDS})


@dataclass(frozen=True)
class EvaluationEnvelope:
    """One evaluation as a device sends it; every field is covered by its signature."""

    device_id: str
    task_id: int
    version: int
    metric_micro: int
    secondary_micro: int
    num_examples: int
    nonce: str
    timestamp: int
    edge: str = ""
    chain_id: int = 0
    deployment: str = ""

    @property
    def scope(self) -> SigningScope:
        """The edge, chain and deployment this evaluation was signed for."""
        return SigningScope(self.edge, self.chain_id, self.deployment)


def make_evaluation(
    device_id: str,
    task_id: int,
    version: int,
    *,
    metric: float,
    num_examples: int,
    secondary: float | None,
    nonce: str,
    timestamp: int,
    scope: SigningScope | None = None,
) -> EvaluationEnvelope:
    """An envelope from metric fractions (converted to micro units as on chain).

    Example:
      >>> env = make_evaluation("dev-1", 1, 0, metric=0.75, num_examples=10, secondary=None,
      ...                       nonce="00" * 8, timestamp=1)
      >>> env.metric_micro, env.secondary_micro == NO_METRIC_MICRO
      (750000, True)
    """
    where = scope or SigningScope("", 0, "")
    return EvaluationEnvelope(
        device_id, task_id, version, metric_micro(metric), secondary_micro(secondary),
        num_examples, nonce, timestamp, where.edge, where.chain_id, where.deployment,
    )  # fmt: skip


def evaluation_signing_message(envelope: EvaluationEnvelope) -> bytes:
    """The exact bytes a device signs: domain line + canonical JSON (sorted keys, no spaces).

    Example:
      >>> env = EvaluationEnvelope("dev-1", 1, 0, 5, 6, 7, "00" * 8, 1)
      >>> evaluation_signing_message(env).startswith(b"fednode-evaluation-v2\\n{")
      True
    """
    body = {name: getattr(envelope, name) for name in sorted(_FIELDS)}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return EVALUATION_SIGNING_DOMAIN + canonical


def evaluation_to_json(envelope: EvaluationEnvelope) -> bytes:
    """The request body of ``POST /v1/evaluations``.

    Example:
      >>> env = EvaluationEnvelope("dev-1", 1, 0, 5, 6, 7, "00" * 8, 1, "0x" + "ed" * 20, 7,
      ...                          "0x" + "11" * 20)
      >>> parse_evaluation(evaluation_to_json(env)) == env
      True
    """
    body = {name: getattr(envelope, name) for name in sorted(_FIELDS)}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_evaluation(body: bytes) -> EvaluationEnvelope:
    """Parses and checks a request body (types, metric range, examples); no key needed.

    Raises:
      UpdateRejectedError: ``bad_json``, ``bad_request`` (missing, unknown or mistyped field),
        ``bad_metric`` (a metric outside [0, 1]), ``bad_num_examples`` (zero examples).

    Example:
      >>> env = EvaluationEnvelope("dev-1", 1, 0, 1_000_001, 6, 7, "00" * 8, 1, "0x" + "ed" * 20,
      ...                          7, "0x" + "11" * 20)
      >>> parse_evaluation(evaluation_to_json(env))  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      fednode.errors.UpdateRejectedError: bad_metric: metric_micro must be in 0..1000000
    """
    fields = load_object(body)
    missing, unknown = sorted(_FIELDS - set(fields)), sorted(set(fields) - _FIELDS)
    if missing or unknown:
        raise UpdateRejectedError("bad_request", f"missing fields {missing}, unknown {unknown}")
    ints = {name: check_int(name, fields[name]) for name in _INT_FIELDS}
    scope = SigningScope.from_json(fields)
    device_id = check_text("device_id", fields["device_id"], DEVICE_ID_PATTERN)
    nonce = check_text("nonce", fields["nonce"], NONCE_PATTERN)
    if ints["metric_micro"] > METRIC_SCALE:
        raise UpdateRejectedError("bad_metric", f"metric_micro must be in 0..{METRIC_SCALE}")
    if ints["secondary_micro"] > METRIC_SCALE and ints["secondary_micro"] != NO_METRIC_MICRO:
        detail = f"secondary_micro must be in 0..{METRIC_SCALE} or {NO_METRIC_MICRO} (none)"
        raise UpdateRejectedError("bad_metric", detail)
    if ints["num_examples"] == 0:
        raise UpdateRejectedError("bad_num_examples", "num_examples must be > 0")
    return EvaluationEnvelope(device_id=device_id, nonce=nonce, edge=scope.edge,
                              chain_id=scope.chain_id, deployment=scope.deployment, **ints)


def sign_evaluation(key: Ed25519PrivateKey, envelope: EvaluationEnvelope) -> str:
    """The base64 signature header value for an evaluation.

    Example:
      >>> from fednode.update.signing import generate_private_key
      >>> key = generate_private_key()
      >>> env = EvaluationEnvelope("dev-1", 1, 0, 5, 6, 7, "00" * 8, 1)
      >>> verify_evaluation(key.public_key(), env, base64.b64decode(sign_evaluation(key, env)))
    """
    return base64.b64encode(key.sign(evaluation_signing_message(envelope))).decode("ascii")


def verify_evaluation(
    key: Ed25519PublicKey, envelope: EvaluationEnvelope, signature: bytes
) -> None:
    """Checks a device's signature over an evaluation.

    Raises:
      UpdateRejectedError: ``bad_signature``.

    Example:
      >>> from fednode.update.signing import generate_private_key
      >>> env = EvaluationEnvelope("dev-1", 1, 0, 5, 6, 7, "00" * 8, 1)
      >>> key = generate_private_key().public_key()
      >>> verify_evaluation(key, env, bytes(64))  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      fednode.errors.UpdateRejectedError: bad_signature: evaluation signature does not verify ...
    """
    try:
        key.verify(signature, evaluation_signing_message(envelope))
    except InvalidSignature as exc:
        detail = f"evaluation signature does not verify for {envelope.device_id}"
        raise UpdateRejectedError("bad_signature", detail) from exc
