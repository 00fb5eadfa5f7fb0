"""Edge: the HTTP API devices talk to (FastAPI): post signed deltas, pull tasks and global models.

Per-site evaluations of global versions go through ``/v1/evaluations`` (edge_server.evaluations).
``POST /v1/updates`` runs, in order, cheap checks first: the per-peer rate limit, body size
limit, JSON and field checks, the signed scope (this edge, chain and deployment: else
``wrong_edge``, ``wrong_chain``, ``wrong_deployment``), device lookup, signature, per-device
rate limit, timestamp freshness, nonce and one-update-per-base checks, validation of the delta
against its task (edge_server.intake), then one durable store transaction. Only then does it
answer 202; the submitter is woken once the answer went out. ``GET /v1/info`` tells devices
the scope to sign for. Status routes that reveal a device (``GET /v1/updates/{ref}``,
evaluations, cohorts) answer only that device's signed read or the operator's token
(``edge_server.app_http.add_read_auth``).
Every refusal is ``{"error": reason, "detail": text}`` with the status from
``edge_server.protocol.STATUS_BY_REASON``; bad input never yields a 5xx. ``/healthz`` reports
the store and submitter, ``/metrics`` serves Prometheus text (edge_server.metrics). The body
limit, error answers and timing are in ``edge_server.app_http``, the JSON views in
``edge_server.app_views``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from edge_server.app_http import (
    add_error_handlers,
    add_peer_limit,
    add_read_auth,
    add_timing,
    read_body,
)
from edge_server.app_views import global_json, task_json, update_json
from edge_server.auth import OPERATOR, authenticate_read, check_timestamp
from edge_server.cohort_app import CohortService, add_cohort_routes
from edge_server.config import EdgeConfig
from edge_server.crash import CrashHook
from edge_server.evaluations import mount_evaluations
from edge_server.intake import UpdateIntake
from edge_server.metrics import EdgeMetrics
from edge_server.ratelimit import RateLimiter
from edge_server.store import EdgeStore
from edge_server.submitter import Submitter
from fednode.chain.ledger import Ledger
from fednode.errors import UpdateRejectedError
from fednode.update.envelope import (
    MAX_INT,
    SIGNATURE_HEADER,
    SigningScope,
    UpdateEnvelope,
    decode_signature,
    parse_envelope,
)
from fednode.update.signing import public_key_from_hex, verify_envelope

__all__ = ["create_app", "ledger_scope"]

_BOXES = re.compile(r"/v1/cohorts/[^/]+/[^/]+/boxes/([^/]+)")

logger = logging.getLogger(__name__)

_Id = Annotated[int, Path(ge=0, le=MAX_INT)]
_Ref = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


@dataclass(frozen=True)
class _Edge:
    """What the request handlers share."""

    config: EdgeConfig
    ledger: Ledger
    store: EdgeStore
    intake: UpdateIntake
    submitter: Submitter | None
    clock: Callable[[], float]
    metrics: EdgeMetrics
    limiter: RateLimiter
    crash: CrashHook
    cohorts: CohortService
    scope: SigningScope


def ledger_scope(ledger: Ledger) -> SigningScope:
    """The scope devices sign for at an edge acting through ``ledger``.

    A ``Web3Ledger`` gives its deployment's chain id and UpdateLedger address; a ledger without
    a deployment (the in-memory one) gives chain 0 and the zero address.

    Example:
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> ledger_scope(InMemoryLedger("0x" + "ed" * 20)).chain_id
      0
    """
    chain_id, update_ledger = ledger.deployment_scope()
    return SigningScope(ledger.sender, chain_id, update_ledger)


def create_app(
    config: EdgeConfig,
    ledger: Ledger,
    store: EdgeStore,
    *,
    submitter: Submitter | None = None,
    clock: Callable[[], float] = time.time,
    metrics: EdgeMetrics | None = None,
    crash: CrashHook | None = None,
    scope: SigningScope | None = None,
) -> FastAPI:
    """Builds the edge server's FastAPI application.

    Args:
      config: the edge's settings (limits, name).
      ledger: the ledger, acting as the edge operator; the app only reads from it.
      store: the durable edge store.
      submitter: woken after each accepted update; without one, rows wait for a later run.
      clock: unix time source for timestamp freshness checks.
      metrics: the registry ``/metrics`` serves (a new one by default).
      crash: the test-only crash hook (edge_server.crash); disabled by default.
      scope: what devices sign for here; by default :func:`ledger_scope` of ``ledger``.

    Returns:
      The application; serve it with uvicorn or drive it with ``fastapi.testclient``.

    Example:
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> app = create_app(EdgeConfig(name="e", db_path=":memory:"), InMemoryLedger(),
      ...                  EdgeStore(":memory:"))
      >>> sorted(r.path for r in app.routes if r.path.startswith("/v1/tasks"))
      ['/v1/tasks/{task_id}', '/v1/tasks/{task_id}/global']
    """
    intake = UpdateIntake(ledger, max_payload_bytes=config.max_payload_bytes)
    limiter = RateLimiter(rate_per_s=config.device_rate_per_s, burst=config.device_burst)
    cohorts = CohortService(
        store, intake, clock=clock, max_payload_bytes=config.max_payload_bytes
    )
    edge = _Edge(
        config, ledger, store, intake, submitter, clock, metrics or EdgeMetrics(), limiter,
        crash or CrashHook(None), cohorts, scope or ledger_scope(ledger),
    )  # fmt: skip
    app = FastAPI(title=f"fednode edge server {config.name}", version="1")
    app.state.edge = edge
    add_error_handlers(app, edge.metrics)
    add_timing(app, edge.metrics)
    add_read_auth(app, lambda request: _reader(edge, request), edge.metrics)
    peers = RateLimiter(rate_per_s=config.peer_rate_per_s, burst=config.peer_burst,
                        subject="peer")
    add_peer_limit(app, peers, edge.metrics)  # added last: runs first
    _add_update_routes(app, edge)
    _add_task_routes(app, edge)
    add_cohort_routes(
        app, cohorts, device_key=store.device_public_key, limiter=limiter, clock=clock,
        max_skew_s=config.max_clock_skew_s, on_sealed=lambda local_id: _after_ack(edge, local_id),
        read_body=lambda request: read_body(request, config.max_body_bytes),
    )  # fmt: skip
    mount_evaluations(
        app, ledger, store, intake, limiter=limiter, clock=clock, submitter=submitter,
        scope=edge.scope,
        max_skew_s=config.max_clock_skew_s, confirmations=config.confirmations,
        read_body=lambda request: read_body(request, config.max_body_bytes),
    )  # fmt: skip
    return app


def _add_update_routes(app: FastAPI, edge: _Edge) -> None:
    @app.post("/v1/updates", status_code=202)
    async def post_update(request: Request) -> JSONResponse:
        body = await read_body(request, edge.config.max_body_bytes)
        signature = request.headers.get(SIGNATURE_HEADER)
        answer, local_id = await run_in_threadpool(_accept_update, edge, body, signature)
        background = None if local_id is None else BackgroundTask(_after_ack, edge, local_id)
        return JSONResponse(answer, status_code=202, background=background)

    @app.get("/v1/updates/{ref}")
    def get_update(ref: _Ref, request: Request) -> dict[str, Any]:
        reader = getattr(request.state, "reader", "")
        row = edge.store.get_update(ref)
        if row is not None:
            _check_owner(reader, row.device_id, ref)
            return update_json(row)
        member = edge.cohorts.member_status(ref)  # a cohort member's reference
        if member is None:
            raise UpdateRejectedError("unknown_update", f"no update {ref} on this edge")
        _check_owner(reader, str(member.get("device_id", "")), ref)
        return member

    @app.get("/v1/info")
    def info() -> dict[str, Any]:
        return {"name": edge.config.name, **edge.scope.to_json()}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        running = edge.submitter is not None and edge.submitter.running
        return {
            "status": "ok",
            "edge": edge.config.name,
            "sender": edge.ledger.sender,
            "updates": edge.store.count_by_status(),
            "submitter_running": running,
            "confirmations": edge.config.confirmations,
        }

    @app.get("/metrics")
    def metrics() -> Response:
        return PlainTextResponse(edge.metrics.render(), media_type="text/plain; version=0.0.4")


def _add_task_routes(app: FastAPI, edge: _Edge) -> None:
    @app.get("/v1/tasks/{task_id}")
    def get_task(task_id: _Id) -> dict[str, Any]:
        return task_json(edge.intake.task(task_id))

    @app.get("/v1/tasks/{task_id}/global")
    def get_global(
        task_id: _Id, version: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None
    ) -> dict[str, Any]:
        if version is None:
            version = edge.intake.task(task_id).latest_version
        return global_json(edge.intake.global_model(task_id, version))


def _accept_update(
    edge: _Edge, body: bytes, signature_header: str | None
) -> tuple[dict[str, Any], int | None]:
    """Checks and stores one update; returns the 202 body and the row the outbox will submit."""
    envelope = parse_envelope(body)
    edge.scope.check(envelope.scope)
    signature = decode_signature(signature_header)
    key_hex = edge.store.device_public_key(envelope.device_id)
    if key_hex is None:
        raise UpdateRejectedError("unknown_device", f"device {envelope.device_id} is not enrolled")
    verify_envelope(public_key_from_hex(key_hex), envelope, signature)
    edge.limiter.take(envelope.device_id)  # only signed requests spend a device's tokens
    check_timestamp(envelope.timestamp, now=edge.clock(), max_skew_s=edge.config.max_clock_skew_s)
    _check_not_held(edge.store, envelope)
    norm = edge.intake.validate(envelope)
    if edge.cohorts.config_of(edge.intake.task(envelope.task_id)) is not None:
        answer, sealed = edge.cohorts.accept_plain(envelope)  # committed before we answer
        logger.info("cohort member %s from %s (norm %.4g): cohort %s", answer["update_ref"],
                    envelope.device_id, norm, answer["cohort_state"])  # fmt: skip
        edge.metrics.count("updates_accepted_total")
        return answer, sealed
    row = edge.store.insert_update(envelope)  # committed before we answer
    logger.info(
        "accepted update %s from %s: task %d base %d, %d examples, norm %.4g",
        row.ref, row.device_id, row.task_id, row.base_version, row.num_examples, norm,
    )  # fmt: skip
    edge.metrics.count("updates_accepted_total")
    return {"update_ref": row.ref, "status": row.status.value}, row.local_id


def _reader(edge: _Edge, request: Request) -> str:
    """Who reads a device route; a device reads only its own cohort boxes."""
    path = request.url.path
    reader = authenticate_read(
        request.headers, request.method, path, scope=edge.scope,
        device_key=edge.store.device_public_key, now=edge.clock(),
        max_skew_s=edge.config.max_clock_skew_s, operator_token=edge.config.operator_token,
    )  # fmt: skip
    owner = _BOXES.fullmatch(path)
    if owner is not None:
        _check_owner(reader, owner.group(1), path)
    return reader


def _check_owner(reader: str, device_id: str, ref: str) -> None:
    """Only the device a record belongs to (or the operator) may read it."""
    if reader != OPERATOR and reader != device_id:
        raise UpdateRejectedError("forbidden", f"{ref} is not a record of {reader}")


def _after_ack(edge: _Edge, local_id: int) -> None:
    """Runs once the 202 went out: the crash hook's first point, then the submitter."""
    edge.crash.acknowledged(local_id)
    edge.crash.reached("after_ack", local_id)
    if edge.submitter is not None:
        edge.submitter.notify()


def _check_not_held(store: EdgeStore, envelope: UpdateEnvelope) -> None:
    # Cheap early answers; insert_update re-checks both inside its transaction.
    if store.has_nonce(envelope.device_id, envelope.nonce):
        raise UpdateRejectedError("replayed_nonce", f"nonce {envelope.nonce} was used before")
    if store.holds_update(envelope.task_id, envelope.base_version):
        task, base = envelope.task_id, envelope.base_version
        detail = f"this edge already holds an update for task {task} base {base}"
        raise UpdateRejectedError("duplicate_base", detail)
