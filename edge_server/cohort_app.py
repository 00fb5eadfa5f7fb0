"""Edge: the HTTP side of edge cohorts: plain deltas through /v1/updates, secure rounds here.

A task with ``spec.edge_cohort`` (edge_server.cohort) takes no single-device updates:

- plain (``secure`` false): devices post ordinary signed updates to ``POST /v1/updates``; each
  is validated like any update and stored as a cohort member (answer 202 ``collecting``); the
  N-th seals the cohort and stores its aggregate for the outbox.
- secure: devices run the rounds ``advertise -> shares -> masked -> check -> reveal`` through
  ``POST /v1/cohorts/{round}`` (edge_server.cohort_protocol) and read the cohort with
  ``GET /v1/cohorts/{task}/{base}`` and their share boxes with ``.../boxes/{device_id}``.
  The cohort view carries each member's signed advertisement and consistency signature, so
  every device checks them against the keys it trusts (edge_server.cohort_trust).

A member's reference resolves, through ``GET /v1/updates/{ref}``, to the cohort aggregate's
status once the cohort is sealed, so ``EdgeClient.wait_committed`` works unchanged.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from edge_server.auth import check_timestamp
from edge_server.cohort import CohortConfig, cohort_config, secure_scale
from edge_server.cohort_protocol import (
    CohortMessage,
    advertisement_bytes,
    parse_cohort_message,
    signature_verifies,
    survivors_bytes,
    verify_cohort_message,
)
from edge_server.cohort_store import CohortStore, CohortTask, CohortView
from edge_server.intake import UpdateIntake, check_num_examples, check_task_accepts
from edge_server.ratelimit import RateLimiter
from edge_server.store import EdgeStore
from fednode.errors import UpdateRejectedError
from fednode.types import TaskRecord
from fednode.update.envelope import MAX_INT, SIGNATURE_HEADER, UpdateEnvelope, decode_signature
from fednode.update.signing import public_key_from_hex

__all__ = ["CohortService", "add_cohort_routes"]

_Id = Annotated[int, Path(ge=0, le=MAX_INT)]
_HEX32 = re.compile(r"[0-9a-f]{64}")
_HEX64 = re.compile(r"[0-9a-f]{128}")


class CohortService:
    """Cohort handling of one edge (the routes call it from the threadpool).

    Args:
      store: the edge store (cohort tables live there too).
      intake: the edge's intake (task reads, templates, delta checks).
      clock: unix time source (cohort deadlines).
      max_payload_bytes: largest aggregate payload (the chain's limit).
    """

    def __init__(
        self, store: EdgeStore, intake: UpdateIntake, *, clock: Callable[[], float],
        max_payload_bytes: int,
    ) -> None:  # fmt: skip
        self.store = store
        self.cohorts = CohortStore(store)
        self._intake = intake
        self._clock = clock
        self._max_payload_bytes = max_payload_bytes

    def config_of(self, task: TaskRecord) -> CohortConfig | None:
        """The task's cohort settings (None: updates go on chain one by one)."""
        return cohort_config(task.spec)

    def cohort_task(self, task_id: int, base_version: int) -> CohortTask:
        """The task facts a cohort needs; refuses a task without cohorts or a bad base."""
        task = self._intake.task(task_id)
        config = self.config_of(task)
        if config is None:
            raise UpdateRejectedError("cohort_state", f"task {task_id} has no edge cohorts")
        check_task_accepts(task, base_version)
        return CohortTask(
            task_id, base_version, config, self._intake.template(task_id, base_version),
            secure_scale(task.spec) if config.secure else 1.0, task.spec.max_update_norm,
            self._max_payload_bytes,
        )  # fmt: skip

    def accept_plain(self, envelope: UpdateEnvelope) -> tuple[dict[str, Any], int | None]:
        """Stores a validated delta of a plain cohort; returns the 202 body and a sealed row."""
        task = self.cohort_task(envelope.task_id, envelope.base_version)
        if task.config.secure:
            raise UpdateRejectedError("cohort_state", "this task's cohorts are secure: use "
                                      "/v1/cohorts")  # fmt: skip
        ref, local_id = self.cohorts.add_plain(task, envelope)
        return self.member_status(ref) or {}, local_id

    def handle(self, message: CohortMessage) -> tuple[dict[str, Any], int | None]:
        """Runs one secure-round message (already authenticated); returns body and sealed row."""
        task = self.cohort_task(message.task_id, message.base_version)
        if not task.config.secure:
            raise UpdateRejectedError("cohort_state", "this task's cohorts are plain: post "
                                      "updates to /v1/updates")  # fmt: skip
        body, now, local_id = message.body, self._clock(), None
        device, nonce = message.device_id, message.nonce
        if message.round == "advertise":
            self._advertise(task, message)
        elif message.round == "shares":
            self.cohorts.add_boxes(task, device, nonce, _boxes(body), now)
        elif message.round == "masked":
            masked = _b64(body.get("masked"))
            self.cohorts.add_masked(
                task, device, nonce, masked, epsilon_micro=_int(body, "epsilon_micro"), now=now
            )
        elif message.round == "check":
            survivors, signature = _survivors(body), _signature(body)
            self._require_signed(device, signature, survivors_bytes(
                task.task_id, task.base_version, survivors))  # fmt: skip
            self.cohorts.add_check(task, device, nonce, survivors, signature, now)
        else:
            local_id = self.cohorts.add_reveal(
                task, device, nonce, seed_shares=_shares(body, "seed_shares"),
                key_shares=_shares(body, "key_shares"), now=now,
            )  # fmt: skip
        answer = self.view_json(message.task_id, message.base_version)
        view = self.cohorts.view(message.task_id, message.base_version)
        assert view is not None
        answer["member_ref"] = view.member(device).ref
        return answer, local_id

    def _advertise(self, task: CohortTask, message: CohortMessage) -> None:
        body = message.body
        examples = _int(body, "num_examples")
        check_num_examples(examples, self._intake.task(message.task_id).spec)
        mask_public, enc_public = _key(body, "mask_public"), _key(body, "enc_public")
        signature = _signature(body)
        self._require_signed(message.device_id, signature, advertisement_bytes(
            task.task_id, task.base_version, message.device_id, num_examples=examples,
            mask_public=mask_public, enc_public=enc_public,
        ))  # fmt: skip
        self.cohorts.advertise(
            task, message.device_id, message.nonce, num_examples=examples,
            mask_public=mask_public, enc_public=enc_public, signature=signature,
            now=self._clock(),
        )  # fmt: skip

    def _require_signed(self, device_id: str, signature: bytes, signed: bytes) -> None:
        key_hex = self.store.device_public_key(device_id)
        if key_hex is None or not signature_verifies(public_key_from_hex(key_hex), signature,
                                                     signed):  # fmt: skip
            raise UpdateRejectedError("bad_signature", f"{device_id}'s inner signature")

    def view_json(self, task_id: int, base_version: int) -> dict[str, Any]:
        """The cohort as devices read it (deadlines applied first)."""
        view = self.cohorts.view(task_id, base_version)
        if view is None:
            detail = f"no cohort for task {task_id} base {base_version}"
            raise UpdateRejectedError("not_found", detail)
        if view.deadline is not None and self._clock() >= view.deadline:
            view = self.cohorts.expire(self.cohort_task(task_id, base_version), self._clock())
        return _view_json(view)

    def member_status(self, ref: str) -> dict[str, Any] | None:
        """A member reference's status: the aggregate's once sealed, else the cohort state."""
        found = self.cohorts.member_by_ref(ref)
        if found is None:
            return None
        view, member = found
        row = None if view.update_ref is None else self.store.get_update(view.update_ref)
        status = view.state if row is None else row.status.value
        if view.state == "failed":
            status = "failed"
        return {
            "update_ref": ref, "status": status, "cohort_state": view.state,
            "cohort_update_ref": view.update_ref, "device_id": member.device_id,
            "task_id": view.task_id, "base_version": view.base_version,
            "chain_update_id": None if row is None else row.chain_update_id,
            "tx_hash": None if row is None or row.tx_hash is None else row.tx_hash.hex(),
            "block_number": None if row is None else row.block_number,
            "error": view.error if row is None else row.error,
        }  # fmt: skip


def add_cohort_routes(
    app: FastAPI, service: CohortService, *, device_key: Callable[[str], str | None],
    limiter: RateLimiter, clock: Callable[[], float], max_skew_s: int,
    read_body: Callable[[Request], Awaitable[bytes]], on_sealed: Callable[[int], None],
) -> None:  # fmt: skip
    """Registers the cohort endpoints on the edge's app.

    Args:
      app: the edge's FastAPI app.
      service: the edge's cohort service.
      device_key: enrolled public key (hex) of a device id, or None.
      limiter: the per-device rate limiter.
      clock: unix time source (timestamp freshness).
      max_skew_s: allowed distance of a signed timestamp from ``clock``.
      read_body: reads a request body within the edge's size limit.
      on_sealed: called with the aggregate row's local id after the answer went out.
    """

    def accept(raw: bytes, header: str | None) -> tuple[dict[str, Any], int | None]:
        message = parse_cohort_message(raw)
        signature = decode_signature(header)
        key_hex = device_key(message.device_id)
        if key_hex is None:
            detail = f"device {message.device_id} is not enrolled"
            raise UpdateRejectedError("unknown_device", detail)
        verify_cohort_message(public_key_from_hex(key_hex), message, signature)
        limiter.take(message.device_id)
        check_timestamp(message.timestamp, now=clock(), max_skew_s=max_skew_s)
        return service.handle(message)

    @app.post("/v1/cohorts/{round_name}", status_code=202)
    async def post_round(round_name: str, request: Request) -> JSONResponse:
        raw = await read_body(request)
        body, local_id = await run_in_threadpool(accept, raw, request.headers.get(SIGNATURE_HEADER))
        background = None if local_id is None else BackgroundTask(on_sealed, local_id)
        return JSONResponse(body, status_code=202, background=background)

    @app.get("/v1/cohorts/{task_id}/{base_version}")
    def get_cohort(task_id: _Id, base_version: _Id) -> dict[str, Any]:
        return service.view_json(task_id, base_version)

    @app.get("/v1/cohorts/{task_id}/{base_version}/boxes/{device_id}")
    def get_boxes(task_id: _Id, base_version: _Id, device_id: str) -> dict[str, Any]:
        boxes = service.cohorts.boxes_for(task_id, base_version, device_id)
        return {"boxes": {k: base64.b64encode(v).decode("ascii") for k, v in boxes.items()}}


def _view_json(view: CohortView) -> dict[str, Any]:
    return {
        "task_id": view.task_id, "base_version": view.base_version, "size": view.size,
        "secure": view.secure, "threshold": view.threshold, "min_size": view.min_size,
        "scale": view.scale, "state": view.state, "deadline": view.deadline,
        "update_ref": view.update_ref, "error": view.error,
        "survivors": None if view.survivors is None else list(view.survivors),
        "total_examples": sum(m.num_examples for m in view.members),
        "members": [
            {
                "device_id": m.device_id, "position": m.position, "num_examples": m.num_examples,
                "mask_public": None if m.mask_public is None else m.mask_public.hex(),
                "enc_public": None if m.enc_public is None else m.enc_public.hex(),
                "advert_signature": None if m.advert_sig is None else m.advert_sig.hex(),
                "check_signature": None if m.check_sig is None else m.check_sig.hex(),
                "shared": m.shared, "masked": m.has_masked, "dropped": m.dropped,
            }  # fmt: skip
            for m in view.members
        ],
    }  # fmt: skip


# ---- round bodies -----------------------------------------------------------------------------


def _bad(detail: str) -> UpdateRejectedError:
    return UpdateRejectedError("bad_cohort_input", detail)


def _int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise _bad(f"{name} must be an integer in 0..2**63-1")
    return value


def _key(body: dict[str, Any], name: str) -> bytes:
    value = body.get(name)
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        raise _bad(f"{name} must be 32 bytes of lowercase hex")
    return bytes.fromhex(value)


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _bad("expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(f"not strict base64: {exc}") from exc


def _boxes(body: dict[str, Any]) -> dict[str, bytes]:
    boxes = body.get("boxes")
    if not isinstance(boxes, dict) or not all(isinstance(k, str) for k in boxes):
        raise _bad("boxes must map peer device ids to base64 strings")
    return {peer: _b64(box) for peer, box in boxes.items()}


def _signature(body: dict[str, Any]) -> bytes:
    value = body.get("signature")
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _bad("signature must be 64 bytes of lowercase hex")
    return bytes.fromhex(value)


def _survivors(body: dict[str, Any]) -> list[str]:
    value = body.get("survivors")
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise _bad("survivors must be a list of device ids")
    if value != sorted(set(value)):
        raise _bad("survivors must be sorted and distinct")
    return value


def _shares(body: dict[str, Any], name: str) -> dict[str, int]:
    shares = body.get(name)
    if not isinstance(shares, dict):
        raise _bad(f"{name} must map device ids to hex strings")
    out = {}
    for device, value in shares.items():
        if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-f]{1,140}", value):
            raise _bad("each share must be 0x-prefixed lowercase hex")
        out[str(device)] = int(value, 16)
    return out
