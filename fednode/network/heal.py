"""Chain: detects and heals a Clique fork deadlock among local validators.

With an even number of signers, Clique can deadlock: the validators split over two forks of
equal total difficulty at the same height, every signer on each fork has "signed recently",
and no node reorganizes because no new block arrives (a known geth Clique limitation, seen here
under CPU load with 4 validators and a 1 s period). Nothing is sealed again by itself.

The healer finds the highest block every live validator agrees on and rewinds the diverged ones
to it with ``debug_setHead``; sealing resumes from the common ancestor and the transactions of
the dropped blocks go back to the pools (writers re-broadcast what is missing: the edge outbox
by design, ``TransactionSender`` while it waits). It rewinds only when heads differ, so a chain
that halted because too few validators are alive (a fault test) is left alone; after a rewind
(and on a stall with equal heads while every validator is up) it restarts the miners.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fednode.errors import FednodeError
from fednode.network.node import rpc_call

__all__ = ["StallWatchdog", "common_ancestor", "heal_forks", "live_heads"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Head:
    """One validator's view of the chain head."""

    url: str
    number: int
    hash: str


def live_heads(urls: Sequence[str]) -> list[Head]:
    """Heads of the validators that answer (dead ones are skipped)."""
    heads = []
    for url in urls:
        try:
            block = rpc_call(url, "eth_getBlockByNumber", ["latest", False])
        except FednodeError:
            continue
        heads.append(Head(url, int(block["number"], 16), block["hash"]))
    return heads


def _connected(head: Head) -> bool:
    """Whether the validator has peers. An isolated one (0 peers, a network partition) is on a
    different head because it cannot sync, not because of a fork deadlock; rewinding the
    connected majority to its view would throw away their blocks."""
    try:
        return int(rpc_call(head.url, "net_peerCount", []), 16) > 0
    except FednodeError:
        return False


def _hash_at(url: str, number: int) -> str | None:
    block = rpc_call(url, "eth_getBlockByNumber", [hex(number), False])
    return None if block is None else block["hash"]


def common_ancestor(heads: Sequence[Head]) -> int:
    """The highest block number whose hash every given validator agrees on."""
    number = min(h.number for h in heads)
    while number > 0 and len({_hash_at(h.url, number) for h in heads}) != 1:
        number -= 1
    return number


def heal_forks(urls: Sequence[str]) -> int | None:
    """Rewinds diverged validators to their common ancestor; returns it (None: no fork).

    Every connected validator's miner is then restarted: ``debug_setHead`` emits no new-head
    event, so a sealer keeps retrying the work it built on its old head, where it "signed
    recently", and never seals on the rewound one (seen here: four validators rewound to one
    block, every one of them waiting for the others, for minutes). A stall with equal heads
    and every validator up and peered is the same stale work, so it only restarts the miners.
    """
    heads = [head for head in live_heads(urls) if _connected(head)]
    if len(heads) < 2:
        return None
    if len({(h.number, h.hash) for h in heads}) == 1:
        if len(heads) == len(urls):  # all up, peered, agreed, and still nothing sealed
            _restart_miners(heads)
            log.warning("clique stall with equal heads at block %d: restarted the miners",
                        heads[0].number)
        return None
    lowest = min(h.number for h in heads)
    if len({_hash_at(h.url, lowest) for h in heads}) == 1:
        return None  # one chain, some validators merely behind (syncing): not a fork
    ancestor = common_ancestor(heads)
    for head in heads:
        if head.number != ancestor or _hash_at(head.url, ancestor) != head.hash:
            rpc_call(head.url, "debug_setHead", [hex(ancestor)])
    _restart_miners(heads)
    log.warning("clique fork deadlock healed: rewound validators to block %d", ancestor)
    return ancestor


def _restart_miners(heads: Sequence[Head]) -> None:
    """``miner_stop`` + ``miner_start``: the sealer builds fresh work on its current head."""
    for head in heads:
        try:
            rpc_call(head.url, "miner_stop", [])
            rpc_call(head.url, "miner_start", [])
        except FednodeError as exc:  # a validator without the miner API keeps its old work
            log.warning("could not restart the miner of %s: %s", head.url, exc)


class StallWatchdog:
    """Polls the validators; when no block was sealed for ``stall_s`` and heads differ, heals.

    Args:
      urls: JSON-RPC URLs of the validators.
      stall_s: seconds without a new block before the heads are compared.
      poll_s: seconds between polls.
      heal: the healing step (injectable for tests).
    """

    def __init__(self, urls: Sequence[str], *, stall_s: float = 8.0, poll_s: float = 1.0,
                 heal: Callable[[Sequence[str]], int | None] = heal_forks) -> None:
        self.urls = list(urls)
        self.stall_s, self.poll_s, self._heal = stall_s, poll_s, heal
        self.healed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clique-watchdog", daemon=True)

    def start(self) -> StallWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        best, since = -1, time.monotonic()
        while not self._stop.wait(self.poll_s):
            heads = live_heads(self.urls)
            top = max((h.number for h in heads), default=-1)
            if top > best:
                best, since = top, time.monotonic()
            elif time.monotonic() - since >= self.stall_s:
                self._try_heal()
                since = time.monotonic()

    def _try_heal(self) -> None:
        try:
            ancestor = self._heal(self.urls)
        except FednodeError as exc:
            log.warning("clique watchdog could not heal: %s", exc)
            return
        if ancestor is not None:
            self.healed.append(ancestor)
