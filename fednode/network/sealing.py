"""Chain: starts the validators' Clique sealers one at a time, in turn order, so they never race.

Signers that start sealing together (at genesis, or after the fork healer rewound them) race for
the same block: the in-turn signer seals at once, the others after a random wiggle of at most
``(signers/2 + 1) * 0.5`` s. Under CPU load the competing blocks cross in flight, the signers
split over forks of equal difficulty and Clique can deadlock (see heal.py); rewinding them and
starting them together again replays the same race (seen here: six rewinds to block 0 in a row).
Started one at a time, in the order Clique wants them to seal, with each start waiting until the
block it allows has reached every validator, each block has exactly one sealer that can make it
until all of them run, and they all build on one head when the race of the steady state begins.

The ``urls`` here are the validators' IPC sockets (``NetworkInfo.ipc_paths``): ``miner_`` and
``clique_`` calls are served there only, never on a validator's public HTTP gateway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fednode.errors import FednodeError
from fednode.network.node import rpc_call

__all__ = ["Head", "live_heads", "start_miners_in_turn", "stop_miners", "turn_order"]

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


def turn_order(signers: Sequence[str], next_block: int,
               recents: Mapping[int, str] | None = None) -> list[str]:
    """Signers in the order Clique lets them seal from ``next_block`` on (lowercase hex).

    Block ``n`` is in turn for ``sorted(signers)[n % len(signers)]``. A signer that sealed one of
    the last ``len(signers) // 2`` blocks ("signed recently") cannot seal ``next_block`` at all,
    so it goes to the end, keeping its relative order.

    >>> turn_order(["0xc", "0xa", "0xb", "0xd"], 6)
    ['0xc', '0xd', '0xa', '0xb']
    >>> turn_order(["0xc", "0xa", "0xb", "0xd"], 6, recents={5: "0xC", 4: "0xd", 3: "0xa"})
    ['0xa', '0xb', '0xc', '0xd']
    """
    ordered = sorted(s.lower() for s in signers)
    start = next_block % len(ordered)
    rotated = ordered[start:] + ordered[:start]
    limit = len(ordered) // 2 + 1
    blocked = {s.lower() for n, s in (recents or {}).items() if n > next_block - limit}
    return [s for s in rotated if s not in blocked] + [s for s in rotated if s in blocked]


def stop_miners(urls: Sequence[str]) -> None:
    """``miner_stop`` on every validator that answers.

    A stopped geth miner takes no new work, but a seal it is already waiting on still lands
    (callers wait ``heal.SEAL_SETTLE_S`` before they read the heads).
    """
    for url in urls:
        try:
            rpc_call(url, "miner_stop", [])
        except FednodeError as exc:
            log.warning("could not stop the miner of %s: %s", url, exc)


def _signer_of(url: str) -> str | None:
    try:
        return str(rpc_call(url, "eth_coinbase", [])).lower()
    except FednodeError:
        return None


def _snapshot(url: str) -> tuple[list[str], dict[int, str]]:
    """The Clique signer set and recent sealers (block number -> signer) at ``url``'s head."""
    snap = rpc_call(url, "clique_getSnapshot", ["latest"])
    return list(snap["signers"]), {int(n): s for n, s in snap["recents"].items()}


def _start_order(urls: Sequence[str]) -> list[str]:
    """The validators' URLs in turn order for the block after the highest head."""
    heads = live_heads(urls)
    if not heads:
        return list(urls)
    top = max(heads, key=lambda h: h.number)
    try:
        signers, recents = _snapshot(top.url)
    except (FednodeError, KeyError, TypeError, ValueError) as exc:
        log.warning("no Clique snapshot from %s (%s): starting sealers in the given order",
                    top.url, exc)
        return list(urls)
    by_signer = {_signer_of(url): url for url in urls}
    ordered = [by_signer[s] for s in turn_order(signers, top.number + 1, recents)
               if s in by_signer]
    return ordered + [url for url in urls if url not in ordered]


def _wait_for_agreed_block(urls: Sequence[str], above: int, *, timeout: float,
                           poll_s: float) -> bool:
    """Waits until every answering validator is on one head higher than ``above``."""
    deadline = time.monotonic() + timeout
    while True:
        heads = live_heads(urls)
        if heads and len({(h.number, h.hash) for h in heads}) == 1 and heads[0].number > above:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def start_miners_in_turn(urls: Sequence[str], *, step_s: float = 10.0,
                         poll_s: float = 0.25) -> list[str]:
    """Starts the validators' miners one at a time, each after the previous one's block spread.

    A sealer that cannot seal the next block (it signed recently) is started last and waits for
    a new head, as any sealer does; ``step_s`` bounds the wait for each block, so a validator
    that seals nothing (slow, or without the miner API) delays the others but never stops them.
    The validators must have mined (or synced) once since they started: until then geth
    discards propagated blocks ("Syncing, discarded propagated block") and, at equal total
    difficulty, never syncs them either, so a lone sealer's first block would reach no one.
    That is why validators start with ``--mine`` and are stopped before this (``heal.py``).

    Returns:
        The URLs in the order their miners were started.
    """
    order = _start_order(urls)
    for url in order:
        before = max((h.number for h in live_heads(urls)), default=-1)
        try:
            rpc_call(url, "miner_start", [])
        except FednodeError as exc:
            log.warning("could not start the miner of %s: %s", url, exc)
            continue
        if url != order[-1]:
            _wait_for_agreed_block(urls, before, timeout=step_s, poll_s=poll_s)
    return order
