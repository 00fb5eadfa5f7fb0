"""Chain: brings a local consortium of geth Clique validators up, reports on it, takes it down.

A network folder looks like this::

    <dir>/network.json               chain id, genesis, validators (enode, URL, PID), accounts
    <dir>/genesis.json               Clique genesis (see genesis.py)
    <dir>/keys/<name>.key            0600 hex keys of admin, publisher, aggregator, auditor, edge-i
    <dir>/secrets/validator-<i>.password  0600 password of that validator's keystore (0700 folder)
    <dir>/nodes/validator-<i>/       geth datadir (0700): keystore/, geth/nodekey, geth.ipc,
                                     config.toml (static peers), node.log, geth.pid,
                                     gateway.log, gateway.pid

Each validator's HTTP URL is its gateway (eth, net, web3; Clique reads on loopback); the fork
healer, the sealers' restart and ``network status`` use geth's IPC socket.

``network_up`` on a folder whose network was stopped starts the same chain again (same keys,
same genesis; the same ports when they are still free).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fednode.errors import FednodeValueError, NetworkError
from fednode.network.genesis import DEFAULT_GAS_LIMIT
from fednode.network.heal import StallWatchdog, reseal_in_turn
from fednode.network.info import (
    NetworkInfo,
    ValidatorInfo,
    load_network,
    password_file_of,
    save_network,
)
from fednode.network.keys import move_legacy_password
from fednode.network.layout import (
    checked_geth_version,
    create_network,
    discard_partial,
    is_fresh_folder,
)
from fednode.network.node import (
    NodeSpec,
    StopResult,
    find_geth,
    is_running,
    start_node,
    stop_nodes,
    write_node_config,
)
from fednode.network.ports import assign_ports
from fednode.network.probe import (
    NodeStatus,
    probe_network,
    wait_until_live,
    wait_until_peered,
    wait_until_unlocked,
)

__all__ = [
    "DEFAULT_CHAIN_ID",
    "DEFAULT_VALIDATORS",
    "network_down",
    "network_status",
    "network_up",
]

DEFAULT_CHAIN_ID = 1337
DEFAULT_VALIDATORS = 4
_HOST = "127.0.0.1"
_log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    """Default progress sink: the logging module."""
    _log.info(message)


@contextlib.contextmanager
def _folder_lock(directory: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``<dir>/.lock`` so two commands never race on one folder."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise NetworkError(f"another fednode command is working on {directory}") from exc
        yield


def _live_nodes(info: NetworkInfo) -> list[ValidatorInfo]:
    """Returns the validators whose recorded PID is a live geth on their datadir."""
    return [v for v in info.validators if is_running(v.pid, v.datadir)]


def _node_specs(info: NetworkInfo) -> list[NodeSpec]:
    """Derives each validator's NodeSpec (its static peers are all the other validators)."""
    return [
        NodeSpec(
            name=v.name,
            datadir=Path(v.datadir),
            signer=v.signer,
            network_id=info.chain_id,
            host=_HOST,
            p2p_port=v.p2p_port,
            http_port=v.http_port,
            authrpc_port=v.authrpc_port,
            gas_limit=info.gas_limit,
            static_nodes=tuple(o.enode for o in info.validators if o.name != v.name),
            password_file=password_file_of(info.dir, v.name),
        )
        for v in info.validators
    ]


def _create(root: Path, **settings: Any) -> NetworkInfo:
    """Lays out a new network in an empty folder and records it; undoes everything on failure."""
    geth = find_geth()
    version = checked_geth_version(geth)
    try:
        info = create_network(root, geth=geth, version=version, **settings)
    except BaseException:
        discard_partial(root)
        raise
    save_network(info)
    return info


def _stopped_network(root: Path, **wanted: int | None) -> NetworkInfo:
    """Loads the network of ``root`` for a restart, refusing a live one or other settings."""
    info = load_network(root)
    live = _live_nodes(info)
    if live:
        pids = ", ".join(f"{v.name}={v.pid}" for v in live)
        raise NetworkError(
            f"a network is already running in {root} ({pids}); "
            f"run `fednode network down --dir {root}` first"
        )
    _check_resumable(info, **wanted)
    return info


def _check_resumable(info: NetworkInfo, **wanted: int | None) -> None:
    """Refuses to restart a stopped network with settings that contradict it."""
    have = {"validators": len(info.validators), "period": info.period, "chain_id": info.chain_id}
    clash = {k: (v, have[k]) for k, v in wanted.items() if v is not None and v != have[k]}
    if clash:
        detail = ", ".join(f"{k}={v[0]} (folder has {v[1]})" for k, v in clash.items())
        raise NetworkError(f"{info.dir} holds a stopped network with other settings: {detail}")
    for v in info.validators:
        if not (Path(v.datadir) / "geth" / "chaindata").is_dir():
            raise NetworkError(f"{v.datadir} was never initialised; remove {info.dir} and retry")


def _start_network(
    info: NetworkInfo, *, timeout: float, tie_to_caller: bool, progress: Progress
) -> NetworkInfo:
    """Starts every validator of ``info`` and waits until the chain is live.

    On any failure all started nodes are stopped again before the error propagates.
    """
    info = assign_ports(info, host=_HOST)
    geth = Path(info.geth)
    specs = _node_specs(info)
    for spec in specs:
        move_legacy_password(spec.datadir, spec.password_file)
        write_node_config(spec)
    progress(f"starting {len(specs)} validators")
    pids: dict[str, int | None] = {
        s.name: start_node(geth, s, tie_to_caller=tie_to_caller) for s in specs
    }
    info = info.with_pids(pids)
    save_network(info)
    deadline = time.monotonic() + timeout
    # Start-up is when Clique forks most: every node seals from launch (geth accepts propagated
    # blocks only once it has mined or synced), before it has peered. Once all are peered the
    # miners are stopped, blocks sealed apart are rewound and the sealers restart in turn order.
    watchdog = StallWatchdog(info.ipc_paths)
    try:
        wait_until_peered(info, timeout=timeout, progress=progress)
        wait_until_unlocked(info, timeout=max(deadline - time.monotonic(), 10.0),
                            progress=progress)
        progress("restarting the sealers one at a time, in turn order")
        reseal_in_turn(info.ipc_paths)
        watchdog.start()
        wait_until_live(info, timeout=max(deadline - time.monotonic(), 10.0), progress=progress)
    except BaseException:
        _stop_all(info, timeout=30.0)
        raise
    finally:
        watchdog.stop()
    return info


def _stop_all(info: NetworkInfo, *, timeout: float) -> list[StopResult]:
    """Stops all validators of ``info`` and records them as stopped in network.json."""
    nodes = [(v.name, v.pid, Path(v.datadir)) for v in info.validators]
    results = stop_nodes(nodes, timeout=timeout)
    save_network(info.with_pids(dict.fromkeys((v.name for v in info.validators), None)))
    return results


def network_up(
    directory: str | os.PathLike[str],
    *,
    validators: int | None = None,
    accounts: Sequence[str] | None = None,
    period: int | None = None,
    chain_id: int | None = None,
    gas_limit: int = DEFAULT_GAS_LIMIT,
    timeout: float = 90.0,
    tie_to_caller: bool = False,
    progress: Progress | None = None,
) -> NetworkInfo:
    """Starts a local consortium of geth Clique validators and waits until it seals blocks.

    A missing or empty folder gets a new network; a folder with a stopped network gets it
    restarted (the settings given must match it or be None).

    Args:
        directory: Network folder.
        validators: Number of validators (default 4 for a new network).
        accounts: Consortium account names (default admin, publisher, aggregator, auditor,
            edge-1..edge-<validators>), each prefunded and given a key file.
        period: Clique block period in seconds (default 1).
        chain_id: Chain id and network id (default 1337).
        gas_limit: Block gas limit of a new network.
        timeout: Seconds to wait for all nodes to peer and seal.
        tie_to_caller: SIGTERM the nodes when the calling process dies (test fixtures use
            it so that a killed test run leaves no geth behind). Call from a thread that lives
            as long as the network, since Linux ties the signal to the starting thread.
        progress: Called with short status lines while starting.

    Returns:
        The NetworkInfo that was written to ``<directory>/network.json``.

    Raises:
        NetworkError: The folder is in use or not empty, geth is missing, or a node failed to
            start or peer in time (the message ends with the node's log).
        FednodeValueError: Bad settings.

    Example:
        >>> info = network_up("/tmp/consortium", validators=4)  # doctest: +SKIP
        >>> info.http_urls[0]  # doctest: +SKIP
        'http://127.0.0.1:40123'
    """
    if validators is not None and not 1 <= validators <= 32:
        raise FednodeValueError(f"validators must be between 1 and 32, got {validators}")
    report = progress or _quiet
    root = Path(directory).resolve()
    with _folder_lock(root):
        if is_fresh_folder(root):
            info = _create(
                root,
                validators=DEFAULT_VALIDATORS if validators is None else validators,
                accounts=accounts,
                period=1 if period is None else period,
                chain_id=DEFAULT_CHAIN_ID if chain_id is None else chain_id,
                gas_limit=gas_limit,
                progress=report,
            )
        else:
            info = _stopped_network(root, validators=validators, period=period, chain_id=chain_id)
            report(f"restarting the stopped network in {root}")
        started = _start_network(info, timeout=timeout, tie_to_caller=tie_to_caller,
                                 progress=report)
    if tie_to_caller:
        _watch(root, started)
    return started


_WATCHDOGS: dict[Path, StallWatchdog] = {}
"""Fork-deadlock watchdogs of the networks this process owns (``tie_to_caller``)."""


def _watch(root: Path, info: NetworkInfo) -> None:
    _unwatch(root)
    _WATCHDOGS[root] = StallWatchdog(info.ipc_paths).start()


def _unwatch(root: Path) -> None:
    watchdog = _WATCHDOGS.pop(root, None)
    if watchdog is not None:
        watchdog.stop()


def network_status(directory: str | os.PathLike[str]) -> list[NodeStatus]:
    """Reports each validator's liveness, height, peer count and Clique signer set.

    Raises:
        NetworkError: The folder holds no network.

    Example:
        >>> [s.height for s in network_status("/tmp/consortium")]  # doctest: +SKIP
        [42, 42, 41, 42]
    """
    return probe_network(load_network(directory))


def network_down(directory: str | os.PathLike[str], *, timeout: float = 30.0) -> list[StopResult]:
    """Stops every validator gracefully (SIGTERM), with SIGKILL only after ``timeout`` seconds.

    Returns:
        One StopResult per validator; outcome 'killed' means geth will rewind its head.

    Raises:
        NetworkError: The folder holds no network or is locked by another command.

    Example:
        >>> [r.outcome for r in network_down("/tmp/consortium")]  # doctest: +SKIP
        ['stopped', 'stopped', 'stopped', 'stopped']
    """
    root = Path(directory).resolve()
    load_network(root)  # a clear error for a folder without a network, before locking it
    _unwatch(root)
    with _folder_lock(root):
        return _stop_all(load_network(root), timeout=timeout)
