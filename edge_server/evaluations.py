"""Edge: the per-site evaluation endpoint: a device's signed metric of a global version.

``POST /v1/evaluations`` runs, in order: body size limit, JSON and field checks (metric range,
examples), the signed scope (this edge, chain and deployment), device lookup, Ed25519 signature
(evaluation domain), per-device rate limit,
timestamp freshness, then the version check (a final global model of an existing task) and one
durable store transaction (nonce + row). A retry of the very evaluation this edge already holds
gets the stored row back; a different one for the same version is ``duplicate_evaluation``.
The update submitter's worker then carries the row to ``EvaluationLedger`` (evaluations_outbox).
``GET /v1/evaluations/{ref}`` reports where it is, to the device that sent it (a signed read)
or the operator only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from edge_server.app_views import chain_progress_json
from edge_server.auth import OPERATOR, check_timestamp
from edge_server.evaluation_store import EvaluationRow, EvaluationStore, evaluation_db_path
from edge_server.evaluations_outbox import EvaluationOutbox
from edge_server.intake import UpdateIntake
from edge_server.ratelimit import RateLimiter
from edge_server.store import EdgeStore
from edge_server.submitter import Submitter
from fednode.errors import UpdateRejectedError
from fednode.update.envelope import SIGNATURE_HEADER, SigningScope, decode_signature
from fednode.update.evaluation import parse_evaluation, verify_evaluation
from fednode.update.signing import public_key_from_hex

__all__ = ["EvaluationRoutes", "add_evaluation_routes", "evaluation_json", "mount_evaluations"]

_Ref = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


@dataclass(frozen=True)
class EvaluationRoutes:
    """What the evaluation handlers need from the edge."""

    store: EvaluationStore
    intake: UpdateIntake
    device_key: Callable[[str], str | None]
    limiter: RateLimiter
    clock: Callable[[], float]
    max_skew_s: int
    read_body: Callable[[Request], Awaitable[bytes]]
    on_stored: Callable[[], None]
    scope: SigningScope


def mount_evaluations(
    app: FastAPI,
    ledger: Any,
    store: EdgeStore,
    intake: UpdateIntake,
    *,
    limiter: RateLimiter,
    clock: Callable[[], float],
    submitter: Submitter | None,
    max_skew_s: int,
    confirmations: int,
    read_body: Callable[[Request], Awaitable[bytes]],
    scope: SigningScope,
) -> EvaluationStore:
    """Opens the evaluation store next to ``store``'s file, hands its outbox to the update
    submitter's worker (same account, same lock) and mounts the routes. Returns the store."""
    evaluations = EvaluationStore(evaluation_db_path(_database_file(store)))
    if submitter is not None:
        outbox = EvaluationOutbox(
            evaluations, ledger, confirmations=confirmations, nonce_floor=submitter.nonce_floor
        )
        submitter.add_pass(outbox.run_pass, nonce_source=evaluations.next_tx_nonce)
    notify = submitter.notify if submitter is not None else (lambda: None)
    routes = EvaluationRoutes(
        evaluations, intake, store.device_public_key, limiter, clock, max_skew_s, read_body, notify,
        scope,
    )
    add_evaluation_routes(app, routes)
    return evaluations


def _database_file(store: EdgeStore) -> str:
    """The edge store's SQLite file, ``:memory:`` for an in-memory store."""
    with store.transaction() as db:
        rows = db.execute("PRAGMA database_list").fetchall()
    return next((str(row[2]) for row in rows if row[1] == "main" and row[2]), ":memory:")


def add_evaluation_routes(app: FastAPI, routes: EvaluationRoutes) -> None:
    """Mounts ``POST /v1/evaluations`` and ``GET /v1/evaluations/{ref}`` on ``app``."""

    @app.post("/v1/evaluations", status_code=202)
    async def post_evaluation(request: Request) -> JSONResponse:
        body = await routes.read_body(request)
        signature = request.headers.get(SIGNATURE_HEADER)
        answer = await run_in_threadpool(accept_evaluation, routes, body, signature)
        return JSONResponse(answer, status_code=202, background=BackgroundTask(routes.on_stored))

    @app.get("/v1/evaluations/{ref}")
    def get_evaluation(ref: _Ref, request: Request) -> dict[str, Any]:
        row = routes.store.get(ref)
        if row is None:
            raise UpdateRejectedError("unknown_evaluation", f"no evaluation {ref} on this edge")
        reader = getattr(request.state, "reader", None)
        if reader != OPERATOR and reader != row.device_id:
            raise UpdateRejectedError("forbidden", f"{ref} is not an evaluation of {reader}")
        return evaluation_json(row)


def accept_evaluation(
    routes: EvaluationRoutes, body: bytes, signature_header: str | None
) -> dict[str, Any]:
    """Checks and durably stores one evaluation; returns the 202 body."""
    envelope = parse_evaluation(body)
    routes.scope.check(envelope.scope)
    signature = decode_signature(signature_header)
    key_hex = routes.device_key(envelope.device_id)
    if key_hex is None:
        raise UpdateRejectedError("unknown_device", f"device {envelope.device_id} is not enrolled")
    verify_evaluation(public_key_from_hex(key_hex), envelope, signature)
    routes.limiter.take(envelope.device_id)
    check_timestamp(envelope.timestamp, now=routes.clock(), max_skew_s=routes.max_skew_s)
    held = routes.store.live_row(envelope.task_id, envelope.version)
    if held is not None and held.same_values(envelope):  # a retry: neither lost nor doubled
        return {"evaluation_ref": held.ref, "status": held.status.value, "duplicate": True}
    task = routes.intake.task(envelope.task_id)
    if envelope.version > task.latest_version:
        latest = task.latest_version
        detail = f"task {task.task_id} has no final version {envelope.version} (latest {latest})"
        raise UpdateRejectedError("unknown_version", detail)
    row = routes.store.insert(envelope)
    return {"evaluation_ref": row.ref, "status": row.status.value, "duplicate": False}


def evaluation_json(row: EvaluationRow) -> dict[str, Any]:
    """The JSON view of a stored evaluation.

    Example:
      >>> from fednode.update.evaluation import EvaluationEnvelope
      >>> store = EvaluationStore(":memory:")
      >>> row = store.insert(EvaluationEnvelope("dev-1", 1, 0, 800000, 2**32 - 1, 9, "0" * 16, 1))
      >>> evaluation_json(row)["metric"], evaluation_json(row)["secondary"]
      (0.8, None)
    """
    return {
        "evaluation_ref": row.ref,
        "status": row.status.value,
        "device_id": row.device_id,
        "task_id": row.task_id,
        "version": row.version,
        "metric": row.metric,
        "secondary": row.secondary,
        "num_examples": row.num_examples,
        "chain_evaluation_id": row.chain_id,
        **chain_progress_json(row),
    }
