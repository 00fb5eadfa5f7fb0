"""Edge: the HTTP status of each refusal an edge answers with.

The device -> edge wire format (the update envelope, its signed bytes and JSON) is the
update's own (``fednode.update.envelope``, ``fednode.update.evaluation``); the edge imports it.
Every refusal is ``{"error": reason, "detail": text}``; the reason codes and their HTTP statuses
are listed in ``STATUS_BY_REASON``.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["STATUS_BY_REASON", "status_for"]

STATUS_BY_REASON: Mapping[str, int] = {
    "bad_json": 400,
    "bad_request": 400,
    "bad_base64": 400,
    "bad_payload": 400,
    "bad_num_examples": 400,
    "unknown_device": 401,
    "bad_signature": 401,
    "wrong_edge": 401,
    "wrong_chain": 401,
    "wrong_deployment": 401,
    "unauthenticated": 401,
    "forbidden": 403,
    "stale_timestamp": 401,
    "not_found": 404,
    "unknown_task": 404,
    "unknown_update": 404,
    "unknown_version": 404,
    "method_not_allowed": 405,
    "replayed_nonce": 409,
    "duplicate_base": 409,
    "stale_base": 409,
    "unknown_base": 409,
    "task_closed": 409,
    "body_too_large": 413,
    "payload_too_large": 413,
    "rate_limited": 429,
    "wrong_keys": 422,
    "wrong_shape": 422,
    "wrong_dtype": 422,
    "not_finite": 422,
    "norm_too_large": 422,
    "wrong_compression": 422,
    "wrong_layout": 422,
    "bad_index": 422,
    "bad_coding": 422,
    "bad_scale": 422,
    "digest_mismatch": 422,
    "too_many_examples": 422,
    "zero_privacy_spend": 422,
    "chain_unavailable": 503,
    "bad_cohort": 422,
    "bad_cohort_input": 422,
    "cohort_state": 409,
    "cohort_member": 409,
    "dropped": 409,
    "bad_metric": 422,
    "duplicate_evaluation": 409,
    "unknown_evaluation": 404,
}


def status_for(reason: str) -> int:
    """HTTP status of a refusal reason; unknown reasons are client errors (400).

    Every ``fednode.update.RejectReason`` has its own entry (a test checks it), so a delta is
    refused with the same status whether it came dense or compressed.

    Example:
      >>> status_for("norm_too_large"), status_for("replayed_nonce")
      (422, 409)
    """
    return STATUS_BY_REASON.get(reason, 400)
