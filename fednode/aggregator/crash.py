"""Aggregator: a test-only crash hook that kills the aggregator process at a named point of a round.

``FEDNODE_AGGREGATOR_CRASH_AT=<point>[:<version>]`` makes the process ``os._exit`` when the round
building ``version`` (any version when omitted) reaches ``point``:

- ``after_read``: the round's updates were read from the ledger, nothing verified or built;
- ``after_build``: the next global model is built, no commit transaction signed or sent.

A kill while the commit transaction is in flight needs no hook: the fault test stops sealing and
SIGKILLs the process once its transaction is in the node's pool. Unset (production), every call
is a cheap no-op.
"""

from __future__ import annotations

import logging
import os

__all__ = ["CRASH_ENV", "CRASH_EXIT_CODE", "CRASH_POINTS", "crash_if_armed"]

CRASH_ENV = "FEDNODE_AGGREGATOR_CRASH_AT"
CRASH_EXIT_CODE = 87
CRASH_POINTS = ("after_read", "after_build")

logger = logging.getLogger(__name__)


def _armed() -> tuple[str, int | None] | None:
    value = os.environ.get(CRASH_ENV, "")
    if not value:
        return None
    point, _, version = value.partition(":")
    if point not in CRASH_POINTS or (version and not version.isdigit()):
        raise ValueError(f"{CRASH_ENV} must be <point>[:<version>] with a point of "
                         f"{CRASH_POINTS}, got {value!r}")
    return point, int(version) if version else None


def crash_if_armed(point: str, version: int) -> None:
    """Exits the process at once if the hook is armed for ``point`` (and ``version``).

    Raises:
      ValueError: if ``point`` is unknown or the environment variable is malformed.

    Example:
      >>> crash_if_armed("after_build", 3)  # unset: nothing happens
    """
    if point not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {point!r}, not one of {CRASH_POINTS}")
    armed = _armed()
    if armed is not None and armed[0] == point and armed[1] in (None, version):
        logger.warning("crash hook: exiting at %s of version %d", point, version)
        os._exit(CRASH_EXIT_CODE)
