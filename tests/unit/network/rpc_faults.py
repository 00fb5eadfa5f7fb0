"""Chain (test helper): makes a simulated validator's JSON-RPC fail for one method."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fednode.errors import FednodeError

Rpc = Callable[..., Any]


def failing_rpc(rpc: Rpc, method: str, message: str, *, url: str | None = None) -> Rpc:
    """``rpc`` that raises ``FednodeError(message)`` for ``method`` (at ``url`` only, if given)."""

    def call(at: str, name: str, params: list | None = None, *, timeout: float = 5.0) -> Any:
        if name == method and url in (None, at):
            raise FednodeError(message)
        return rpc(at, name, params, timeout=timeout)

    return call
