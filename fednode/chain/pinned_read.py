"""Chain: runs a read pinned to the head block, re-pinning when that block vanished under it.

Every ``Web3Ledger`` read is pinned to one block (the head when it starts) so storage, logs and
calldata agree. On a Clique network the head can move *backwards* between taking the number and
reading at it: a reorg to a heavier fork, or the fork healer rewinding a validator with
``debug_setHead``. The node then answers ``header not found`` (or ``missing trie node``) for
the pinned block. That is not a fault of the read, so :func:`read_pinned` takes the new head and
reads again, a bounded number of times; any other error is raised at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["VANISHED_BLOCK_MESSAGES", "block_vanished", "read_pinned"]

_T = TypeVar("_T")

VANISHED_BLOCK_MESSAGES = ("header not found", "missing trie node", "unknown block")
"""Node answers (geth, anvil) meaning: the block the read was pinned to is no longer there."""


def block_vanished(exc: BaseException) -> bool:
    """Whether ``exc`` says the pinned block is gone (not that the read itself failed).

    Example:
      >>> block_vanished(ValueError({"code": -32000, "message": "header not found"}))
      True
      >>> block_vanished(ValueError("execution reverted"))
      False
    """
    text = str(exc).lower()
    return any(message in text for message in VANISHED_BLOCK_MESSAGES)


def read_pinned(
    head: Callable[[], int], read: Callable[[int], _T], *, attempts: int = 5,
    pause_s: float = 0.5, sleep: Callable[[float], None] = time.sleep,
) -> _T:
    """``read(head())``, re-pinned to a fresh head while the pinned block keeps vanishing.

    Args:
      head: returns the current head block number.
      read: the read, given the block number to pin to.
      attempts: reads in all before the last error is raised.
      pause_s: pause before the n-th retry is ``n * pause_s`` (the node is reorganizing).
      sleep: the pause function (injectable for tests).

    Raises:
      whatever ``read`` raised last, or at once when it is not a vanished-block error.

    Example:
      >>> heads, seen = iter([9, 7]), []
      >>> def read(block):
      ...     seen.append(block)
      ...     if block == 9:
      ...         raise ValueError("header not found")
      ...     return block
      >>> read_pinned(lambda: next(heads), read, sleep=lambda s: None), seen
      (7, [9, 7])
    """
    for attempt in range(1, attempts + 1):
        try:
            return read(head())
        except Exception as exc:
            if attempt == attempts or not block_vanished(exc):
                raise
            sleep(attempt * pause_s)
    raise AssertionError("unreachable: attempts >= 1")  # pragma: no cover
