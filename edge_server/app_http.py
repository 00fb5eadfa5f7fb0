"""Edge: HTTP plumbing the API routes share: body size limit, error answers, request timing,
the per-peer rate limit and the authentication of the routes that reveal devices.

The peer limit runs before any route: a request is counted against its peer address before
its body is read, parsed or any signature verified (cheap checks first). Routes under
``DEVICE_ROUTES`` (update and evaluation status, cohort views and boxes) answer only an
authenticated reader (``edge_server.auth.authenticate_read``): 401 without credentials; the
reader is left in ``request.state.reader`` for the routes' ownership checks.

Every refusal is ``{"error": reason, "detail": text}`` with the status from
``edge_server.protocol.STATUS_BY_REASON``; chain and transport errors answer 503, anything
unexpected 500 with only the exception's type name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge_server.metrics import EdgeMetrics
from edge_server.protocol import status_for
from edge_server.ratelimit import RateLimiter
from fednode.errors import ChainError, UpdateRejectedError

__all__ = [
    "DEVICE_ROUTES",
    "add_error_handlers",
    "add_peer_limit",
    "add_read_auth",
    "add_timing",
    "error_response",
    "read_body",
]

logger = logging.getLogger("edge_server.app")

_HTTP_REASONS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
DEVICE_ROUTES = ("/v1/updates/", "/v1/evaluations/", "/v1/cohorts/")
"""Path prefixes whose GET answers reveal something about a device."""


async def read_body(request: Request, limit: int) -> bytes:
    """Reads a request body, refusing it as soon as it is over ``limit`` bytes.

    Raises:
      UpdateRejectedError: ``body_too_large``, from the declared length or while streaming.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UpdateRejectedError("body_too_large", f"body is {declared} bytes, limit {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UpdateRejectedError("body_too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(
    status: int, reason: str, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The edge's one error shape: ``{"error": reason, "detail": detail}``."""
    return JSONResponse({"error": reason, "detail": detail}, status_code=status, headers=headers)


def add_timing(app: FastAPI, metrics: EdgeMetrics) -> None:
    """Adds a middleware that records each request's route, status and duration."""

    @app.middleware("http")
    async def timed(request: Request, call_next: Callable[[Request], Any]) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.observe_request(path, response.status_code, time.perf_counter() - started)
        return response


def add_error_handlers(app: FastAPI, metrics: EdgeMetrics) -> None:
    """Maps refusals, validation errors, HTTP errors, chain errors and crashes to error JSON."""

    @app.exception_handler(UpdateRejectedError)
    async def rejected(request: Request, exc: UpdateRejectedError) -> JSONResponse:
        logger.info("refused %s %s: %s", request.method, request.url.path, exc)
        metrics.count_rejected(exc.reason)
        retry = getattr(exc, "retry_after_s", None)
        headers = None if retry is None else {"Retry-After": str(max(1, round(retry)))}
        return error_response(status_for(exc.reason), exc.reason, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return error_response(400, "bad_request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = _HTTP_REASONS.get(exc.status_code, "http_error")
        return error_response(exc.status_code, reason, str(exc.detail))

    async def chain_down(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("chain error on %s %s: %s", request.method, request.url.path, exc)
        return error_response(503, "chain_unavailable", str(exc))

    app.add_exception_handler(ChainError, chain_down)
    app.add_exception_handler(OSError, chain_down)  # transport errors web3 leaves unwrapped

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", type(exc).__name__)


def _refusal(exc: UpdateRejectedError, metrics: EdgeMetrics) -> JSONResponse:
    metrics.count_rejected(exc.reason)
    retry = getattr(exc, "retry_after_s", None)
    headers = None if retry is None else {"Retry-After": str(max(1, round(retry)))}
    return error_response(status_for(exc.reason), exc.reason, exc.detail, headers)


def add_peer_limit(app: FastAPI, limiter: RateLimiter, metrics: EdgeMetrics) -> None:
    """Spends one token of the peer's address on every ``/v1/`` request, before anything else."""

    @app.middleware("http")
    async def peer_limit(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if request.url.path.startswith("/v1/"):
            peer = request.client.host if request.client is not None else "unknown"
            try:
                limiter.take(peer)
            except UpdateRejectedError as exc:
                return _refusal(exc, metrics)
        response: Response = await call_next(request)
        return response


def add_read_auth(
    app: FastAPI, authenticate: Callable[[Request], str], metrics: EdgeMetrics
) -> None:
    """Refuses an unauthenticated GET of a ``DEVICE_ROUTES`` path (401) before its route runs.

    Args:
      app: the application.
      authenticate: returns the reader of a request (a device id or the operator) or raises
        UpdateRejectedError.
      metrics: counts the refusals.
    """

    @app.middleware("http")
    async def read_auth(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if request.method == "GET" and request.url.path.startswith(DEVICE_ROUTES):
            try:
                request.state.reader = await run_in_threadpool(authenticate, request)
            except UpdateRejectedError as exc:
                status = status_for(exc.reason)
                logger.info("refused read of %s: %s", request.url.path, exc)
                if status not in (401, 403):
                    exc = UpdateRejectedError("unauthenticated", f"{exc.reason}: {exc.detail}")
                return _refusal(exc, metrics)
        response: Response = await call_next(request)
        return response
