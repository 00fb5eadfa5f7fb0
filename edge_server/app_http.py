"""Edge: HTTP plumbing the API routes share: body size limit, error answers, request timing.

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
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge_server.metrics import EdgeMetrics
from edge_server.protocol import status_for
from fednode.errors import ChainError, UpdateRejectedError

__all__ = ["add_error_handlers", "add_timing", "error_response", "read_body"]

logger = logging.getLogger("edge_server.app")

_HTTP_REASONS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


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
