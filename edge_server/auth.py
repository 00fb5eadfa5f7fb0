"""Edge: request freshness and who is reading (a device's signature or the operator's token).

Devices sign with their own Ed25519 key (``fednode.update.signing``: keys, update and read
signatures, shared with the device); the edge checks the signature, the timestamp against its
clock (:func:`check_timestamp`), and (in the store) that the nonce is new.

Reads that reveal anything about a device (its update's status, its evaluations, its cohort)
are authenticated too: the device signs ``fednode.update.signing.read_signing_message`` and
sends it in the ``X-Fednode-Device``, ``X-Fednode-Timestamp`` and ``X-Fednode-Signature``
headers; the edge operator may instead send ``Authorization: Bearer <operator token>``.
:func:`authenticate_read` checks either.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidSignature

from fednode.errors import UpdateRejectedError
from fednode.update.envelope import SIGNATURE_HEADER, SigningScope, decode_signature
from fednode.update.signing import (
    DEVICE_HEADER,
    TIMESTAMP_HEADER,
    public_key_from_hex,
    read_signing_message,
)

__all__ = ["OPERATOR", "authenticate_read", "check_timestamp"]

OPERATOR = "operator"
"""The reader :func:`authenticate_read` returns for the edge operator's token."""


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
