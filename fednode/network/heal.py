"""Chain: detects and heals a Clique fork deadlock among local validators.

With an even number of signers, Clique can deadlock: the validators split over two forks of
equal total difficulty at the same height, every signer on each fork has "signed recently",
and no node reorganizes because no new block arrives (a known geth Clique limitation, seen here
under CPU load with 4 validators and a 1 s period). Nothing is sealed again by itself.

The healer finds the highest block every live validator agrees on and rewinds the diverged ones
to it with ``debug_setHead``; sealing resumes from the common ancestor and the transactions of
the dropped blocks go back to the pools (writers re-broadcast what is missing: the edge outbox
by design, ``TransactionSender`` while it waits). It rewinds only when heads differ, so a chain
that halted because too few validators are alive (a fault test) is left alone. The miners are
stopped before a rewind and started again one at a time, in Clique's turn order
(``sealing.start_miners_in_turn``): started together they would race for the same blocks and
fork again. A stall with equal heads while every validator is up gets the same miner restart.

Rewinding and stopping miners are powers no other host may hold: every call here goes to the
validators' IPC sockets (``NetworkInfo.ipc_paths``), never to their public HTTP gateways, which
refuse ``debug_`` and ``miner_`` calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from fednode.errors import FednodeError
from fednode.network.node import rpc_call
from fednode.network.sealing import Head, live_heads, start_miners_in_turn, stop_miners

__all__ = ["SEAL_SETTLE_S", "StallWatchdog", "common_ancestor", "heal_forks", "live_heads",
           "reseal_in_turn"]

log = logging.getLogger(__name__)

SEAL_SETTLE_S = 3.0
"""Seconds a stopped miner may still take to finish its pending seal (1 s period + 1.5 s wiggle)."""


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


def _fork_point(heads: Sequence[Head]) -> int | None:
    """The common ancestor of diverged heads; None when they are on one chain."""
    if len({(h.number, h.hash) for h in heads}) == 1:
        return None
    lowest = min(h.number for h in heads)
    if len({_hash_at(h.url, lowest) for h in heads}) == 1:
        return None  # one chain, some validators merely behind (syncing): not a fork
    return common_ancestor(heads)


def reseal_in_turn(urls: Sequence[str]) -> int | None:
    """Stops every miner, rewinds diverged validators, starts the miners again in turn order.

    A stopped geth miner still finishes the seal it is waiting on (in-turn: up to one period,
    out-of-turn: plus the wiggle), so the heads are read only ``SEAL_SETTLE_S`` after the stop.
    Restarting matters beyond the order: ``debug_setHead`` emits no new-head event, so a running
    sealer keeps retrying the work it built on its old head, where it "signed recently", and
    never seals on the rewound one (seen here: four validators rewound to one block, every one
    waiting for the others, for minutes).

    Returns:
        The block the validators were rewound to, or None when they were on one chain.
    """
    stop_miners(urls)
    try:  # whatever fails while rewinding, the miners run again afterwards
        time.sleep(SEAL_SETTLE_S)
        heads = live_heads(urls)
        ancestor = _fork_point(heads) if len(heads) > 1 else None
        if ancestor is not None:
            for head in heads:  # every head shares block ``ancestor``: rewind those above it
                if head.number > ancestor:
                    rpc_call(head.url, "debug_setHead", [hex(ancestor)])
    finally:
        start_miners_in_turn(urls)
    return ancestor


def heal_forks(urls: Sequence[str]) -> int | None:
    """Heals a fork deadlock among the connected validators; returns the block rewound to.

    A fork is healed with :func:`reseal_in_turn`; so is a stall with equal heads while every
    validator is up and peered (stale work, see there). Returns None when nothing was rewound.
    """
    heads = [head for head in live_heads(urls) if _connected(head)]
    if len(heads) < 2:
        return None
    stalled_together = len({(h.number, h.hash) for h in heads}) == 1 and len(heads) == len(urls)
    if not stalled_together and _fork_point(heads) is None:
        return None
    ancestor = reseal_in_turn([h.url for h in heads])
    if ancestor is None:
        log.warning("clique stall at block %d: restarted the miners in turn",
                    max(h.number for h in heads))
    else:
        log.warning("clique fork deadlock healed: rewound validators to block %d", ancestor)
    return ancestor


class StallWatchdog:
    """Polls the validators; when no block was sealed for ``stall_s`` and heads differ, heals.

    Args:
      urls: the validators' control endpoints (IPC socket paths, see ``rpc_call``).
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
        """Stops polling (also safe on a watchdog that was never started)."""
        self._stop.set()
        if self._thread.ident is not None:
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
