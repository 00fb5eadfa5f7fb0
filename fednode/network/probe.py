"""Chain: asks running validators how they are (height, peers, signers) and waits for liveness."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from fednode.errors import NetworkError
from fednode.network.info import NetworkInfo, ValidatorInfo
from fednode.network.node import is_running, log_tail, rpc_call

__all__ = [
    "NodeStatus",
    "probe_network",
    "probe_node",
    "wait_until_live",
    "wait_until_peered",
    "wait_until_unlocked",
]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class NodeStatus:
    """What one validator reports; ``height``/``peers``/``signers`` are None when unreachable.

    Attributes:
        name: Validator name.
        pid: Recorded PID (None once stopped).
        alive: Whether that PID is a live geth on this validator's datadir.
        http_url: JSON-RPC URL.
        signer: This validator's sealer address.
        height: Latest block number.
        peers: Connected peer count.
        signers: Clique signer set at the latest block (lowercase hex, ascending).
        error: Why the node could not be asked, if it could not.
    """

    name: str
    pid: int | None
    alive: bool
    http_url: str
    signer: str
    height: int | None = None
    peers: int | None = None
    signers: tuple[str, ...] | None = None
    error: str | None = None


def probe_node(v: ValidatorInfo) -> NodeStatus:
    """Probes one validator; RPC failures end up in ``error`` rather than raising."""
    status = NodeStatus(v.name, v.pid, is_running(v.pid, v.datadir), v.http_url, v.signer)
    if not status.alive:
        return status
    try:
        height = int(rpc_call(v.http_url, "eth_blockNumber"), 16)  # the public door answers
        peers = int(rpc_call(v.ipc_path, "net_peerCount"), 16)
        signers = tuple(rpc_call(v.ipc_path, "clique_getSigners", ["latest"]))
    except (NetworkError, TypeError, ValueError) as exc:
        return replace(status, error=str(exc))
    return replace(status, height=height, peers=peers, signers=signers)


def probe_network(info: NetworkInfo) -> list[NodeStatus]:
    """Probes every validator once, in order."""
    return [probe_node(v) for v in info.validators]


def _failure(info: NetworkInfo, headline: str, names: Sequence[str]) -> NetworkError:
    """Builds a NetworkError whose message ends with the log tails of the named nodes."""
    tails = [
        f"--- last lines of {v.log_path}:\n{log_tail(v.log_path)}"
        for v in info.validators
        if v.name in names
    ]
    return NetworkError("\n".join([headline, *tails]))


def _is_peered(s: NodeStatus, want_peers: int) -> bool:
    """A node is peered once it answers and is connected to all others."""
    return s.height is not None and s.peers is not None and s.peers >= want_peers


def _is_ready(s: NodeStatus, first_height: int | None, want_peers: int) -> bool:
    """A node is ready once it has peered with all others and its head moved since first seen."""
    return _is_peered(s, want_peers) and first_height is not None and s.height > first_height


def _wait(info: NetworkInfo, *, timeout: float, progress: Progress, sealing: bool,
          what: str) -> list[NodeStatus]:
    deadline, want_peers = time.monotonic() + timeout, len(info.validators) - 1
    first: dict[str, int] = {}
    while True:
        snap = probe_network(info)
        dead = [s.name for s in snap if not s.alive]
        if dead:
            raise _failure(info, f"validator(s) {', '.join(dead)} exited during start-up", dead)
        for s in snap:
            if s.height is not None:
                first.setdefault(s.name, s.height)
        late = [
            s.name for s in snap
            if not (_is_ready(s, first.get(s.name), want_peers) if sealing
                    else _is_peered(s, want_peers))
        ]  # fmt: skip
        progress(f"heights {[s.height for s in snap]}, peers {[s.peers for s in snap]}")
        if not late:
            return snap
        if time.monotonic() > deadline:
            states = "; ".join(f"{s.name} height={s.height} peers={s.peers}" for s in snap)
            raise _failure(info, f"network not {what} after {timeout:.0f} s ({states})", late)
        time.sleep(0.5)


def wait_until_peered(info: NetworkInfo, *, timeout: float,
                      progress: Progress) -> list[NodeStatus]:
    """Waits until every validator is alive and connected to all others (sealing or not).

    Raises:
        NetworkError: A node died, or the validators were not all peered within ``timeout``
            seconds; the message ends with the log tails of the nodes concerned.
    """
    return _wait(info, timeout=timeout, progress=progress, sealing=False, what="peered")


def wait_until_live(info: NetworkInfo, *, timeout: float, progress: Progress) -> list[NodeStatus]:
    """Waits until every validator is alive, connected to all others and sealing new blocks.

    Raises:
        NetworkError: A node died, or the network was not live within ``timeout`` seconds;
            the message ends with the log tails of the nodes concerned.
    """
    return _wait(info, timeout=timeout, progress=progress, sealing=True, what="live")


def _unlocked(v: ValidatorInfo) -> bool:
    """Whether geth has unlocked the sealer key yet (an ``eth_sign`` on the IPC socket signs)."""
    try:
        rpc_call(v.ipc_path, "eth_sign", [v.signer, "0x00"])
    except NetworkError:
        return False
    return True


def wait_until_unlocked(info: NetworkInfo, *, timeout: float, progress: Progress) -> None:
    """Waits until every validator's geth has unlocked its sealer key.

    geth decrypts the keystore (scrypt, n = 2**18) while it already runs, and a seal tried
    before that fails without being tried again until a new block or transaction arrives: a
    validator alone, or all of them restarted together, would wait forever. The check signs
    on the IPC socket only; the public gateway refuses ``eth_sign``.

    Raises:
        NetworkError: A node died, or a key was still locked after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        locked = [v.name for v in info.validators if not _unlocked(v)]
        if not locked:
            return
        dead = [v.name for v in info.validators if not is_running(v.pid, v.datadir)]
        if dead:
            raise _failure(info, f"validator(s) {', '.join(dead)} exited during start-up", dead)
        if time.monotonic() > deadline:
            raise _failure(info, f"sealer key still locked after {timeout:.0f} s", locked)
        progress(f"waiting for geth to unlock the sealer keys of {', '.join(locked)}")
        time.sleep(0.5)
