"""Auditor: the dashboard's FastAPI app, read-only JSON views plus one HTML page.

Every request reads the chain through the source's ledger, one request at a time (the lock),
so the page shows what the ledger holds now.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from fednode.dashboard import views
from fednode.dashboard.page import PAGE
from fednode.errors import FednodeError

__all__ = ["create_app"]


def _guarded(source: views.DashboardSource, view: Callable[..., Any], *args: Any) -> Any:
    with source.lock:
        try:
            return view(source, *args)
        except FednodeError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc


def create_app(source: views.DashboardSource) -> FastAPI:
    """The dashboard app over ``source`` (GET only).

    Example:
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> sorted(r.path for r in create_app(views.DashboardSource(InMemoryLedger())).routes
      ...        if r.path.startswith("/api"))[:2]
      ['/api/consortium', '/api/status']
    """
    app = FastAPI(title="fednode dashboard", docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    @app.get("/api/status")
    def status() -> dict:
        return _guarded(source, views.status_view)

    @app.get("/api/consortium")
    def consortium() -> dict:
        return _guarded(source, views.consortium_view)

    @app.get("/api/tasks")
    def tasks() -> dict:
        return _guarded(source, views.tasks_view)

    @app.get("/api/tasks/{task_id}")
    def task(task_id: int) -> dict:
        return _guarded(source, views.task_view, task_id)

    @app.get("/api/trace/{digest}")
    def trace(digest: str) -> dict:
        return _guarded(source, views.trace_view, digest)

    return app
