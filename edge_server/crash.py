"""Edge: a test-only crash hook that kills the edge process at a named point of the outbox.

``FEDNODE_EDGE_CRASH_AT=<point>`` makes the process ``os._exit`` the first time an update that
*this process* accepted (a row newer than the store's newest row at start-up) reaches ``point``;
rows left by an earlier run are recovered without crashing, so one process per run both
recovers the previous row and crashes on its own. Points,
in the order an update meets them:

- ``after_ack``: right after the 202 answer went out, before the submitter touched the row;
- ``before_sign``: the submitter picked the row, nothing signed yet;
- ``after_sign``: the raw transaction and its nonce are on disk, nothing sent;
- ``after_send``: the node took the transaction, the store still says ``signed``.

While armed, the hook also holds a row of this process back from the submitter until its 202
went out (``acknowledged``), so every crash happens after the device was told "accepted".
Unset (production), every call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["CRASH_ENV", "CRASH_EXIT_CODE", "CRASH_POINTS", "CrashHook"]

CRASH_ENV = "FEDNODE_EDGE_CRASH_AT"
CRASH_EXIT_CODE = 86
CRASH_POINTS = ("after_ack", "before_sign", "after_sign", "after_send")

logger = logging.getLogger(__name__)


class CrashHook:
    """Kills the process at ``point`` for rows newer than ``watermark`` (set at start-up).

    Example:
      >>> hook = CrashHook(None)
      >>> hook.reached("after_sign", 7)  # disabled: nothing happens
    """

    def __init__(self, point: str | None, *, watermark: int = 0) -> None:
        if point is not None and point not in CRASH_POINTS:
            raise ValueError(f"{CRASH_ENV} must be one of {CRASH_POINTS}, got {point!r}")
        self.point = point
        self.watermark = watermark
        self._acked: set[int] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> CrashHook:
        """The hook configured by ``FEDNODE_EDGE_CRASH_AT`` (disabled when unset or empty)."""
        return cls(os.environ.get(CRASH_ENV) or None)

    def acknowledged(self, local_id: int) -> None:
        """Records that the device got its 202 for this row."""
        if self.point is not None:
            with self._lock:
                self._acked.add(local_id)

    def ready(self, local_id: int) -> bool:
        """Whether the submitter may take this row (always, unless armed and not yet acked)."""
        if self.point is None or local_id <= self.watermark:
            return True
        with self._lock:
            return local_id in self._acked

    def reached(self, point: str, local_id: int) -> None:
        """Exits the process at once at the configured point for a row of this process."""
        if self.point == point and local_id > self.watermark:
            logger.warning("crash hook: exiting at %s for row %d", point, local_id)
            os._exit(CRASH_EXIT_CODE)
