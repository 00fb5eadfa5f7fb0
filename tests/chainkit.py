"""Chain: the one place where tests start local chains (anvil, geth) and deploy the contracts.

- :func:`running_anvil` starts anvil (``--hardfork paris``, like geth 1.13 Clique chains: no
  PUSH0) on a free loopback port, waits until it answers and yields an :class:`AnvilNode`
  (URL, Web3, ``fund`` with ``anvil_setBalance``); it always stops anvil again.
- :func:`running_geth_network` starts an N-validator geth Clique consortium in a folder and
  always stops it again (graceful, SIGKILL only when a node hangs).
- :func:`deploy_consortium` deploys the three contracts, grants roles and registers edges;
  :func:`deploy_on_geth` does so with the prefunded accounts of a geth network.
- :func:`deployed_geth_network` is :func:`running_geth_network` plus ``fednode deploy``;
  :func:`kill_validators` SIGKILLs validators (only PIDs that are still their geth) and
  :func:`restart_validators` starts them again on their old ports.
- :func:`partition_validator` cuts one validator off from its peers (both sides drop each
  other from their static peers, so nobody re-dials); :func:`heal_partition` re-peers it.

Accounts are fresh LocalAccounts derived from a label (:func:`labelled_account`): nothing
relies on node-held keys. Missing tools skip the test, or fail it where
``FEDNODE_REQUIRE_GETH`` asks for geth.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from edge_server.config import EdgeConfig
from edge_server.service import EdgeServer, enroll_device
from fednode.chain.connect import open_ledger
from fednode.chain.connection import connect_web3
from fednode.chain.deploy import Deployment, EdgeRegistration, deploy_consortium
from fednode.chain.web3_ledger import Web3Ledger
from fednode.errors import NetworkError
from fednode.network import (
    NetworkInfo,
    find_geth,
    load_network,
    network_down,
    network_up,
    read_key_file,
)
from fednode.network.info import password_file_of, save_network
from fednode.network.layout import checked_geth_version
from fednode.network.node import NodeSpec, is_running, rpc_call, start_node
from fednode.site.device_client import DeviceIdentity, EdgeClient

__all__ = [
    "ANVIL",
    "AnvilNode",
    "FUNDS",
    "GethConsortium",
    "REPO_ROOT",
    "block_height",
    "deploy_consortium",
    "deploy_on_geth",
    "deployed_geth_network",
    "free_port",
    "geth_accounts",
    "heal_partition",
    "kill_validators",
    "labelled_account",
    "partition_validator",
    "peer_keys",
    "require_anvil",
    "require_geth",
    "restart_validators",
    "running_anvil",
    "running_geth_network",
    "wait_for_height",
]

_log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
ANVIL = REPO_ROOT / "node_modules" / ".bin" / "anvil"
FUNDS = 10**22
"""Wei that :meth:`AnvilNode.fund` gives each account by default."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def labelled_account(label: str, *, namespace: str = "fednode-test") -> LocalAccount:
    """The account whose key is ``keccak("<namespace>-<label>")``: the same in every run."""
    return Account.from_key(keccak(text=f"{namespace}-{label}"))


# ---- anvil ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnvilNode:
    """A running anvil node."""

    url: str
    w3: Web3

    def fund(self, accounts: Iterable[LocalAccount], amount: int = FUNDS) -> None:
        """Sets each account's balance to ``amount`` wei."""
        for account in accounts:
            self.w3.provider.make_request("anvil_setBalance", [account.address, hex(amount)])

    def mine(self, blocks: int = 1) -> None:
        """Mines ``blocks`` empty blocks at once."""
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])


def require_anvil() -> Path:
    """The anvil binary, or a skip that says how to install it."""
    if not ANVIL.exists():
        pytest.skip("anvil is not installed (npm install in the repository root)")
    return ANVIL


def _wait_until_answering(
    w3: Web3, proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _ = w3.eth.chain_id
            return
        except Exception:  # connection refused until anvil listens
            if proc.poll() is not None or time.monotonic() > deadline:
                state = "did not start" if proc.returncode is None else f"exited {proc.returncode}"
                output = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"anvil {state}; its output:\n{output}") from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start_anvil(
    anvil: Path, log: Path, timeout: float, attempts: int = 3
) -> tuple[subprocess.Popen[bytes], AnvilNode]:
    """Starts anvil; a port taken between :func:`free_port` and anvil's bind gets a new one."""
    attempt = 1
    while True:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [str(anvil), "--port", str(port), "--silent", "--hardfork", "paris"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        node = AnvilNode(url, connect_web3(url))
        try:
            _wait_until_answering(node.w3, proc, log, timeout)
            return proc, node
        except RuntimeError:
            _stop(proc)
            if attempt == attempts or "in use" not in log.read_text(errors="replace"):
                raise
            attempt += 1


@contextlib.contextmanager
def running_anvil(*, timeout: float = 30.0) -> Iterator[AnvilNode]:
    """Starts anvil on a free port, yields it once it answers, stops it at exit.

    Skips the test when anvil is not installed.

    Raises:
      RuntimeError: anvil exited or did not answer within ``timeout`` (with its output).
    """
    anvil = require_anvil()
    with tempfile.TemporaryDirectory(prefix="anvil-") as folder:
        proc, node = _start_anvil(anvil, Path(folder) / "anvil.log", timeout)
        try:
            yield node
        finally:
            _stop(proc)


# ---- geth -----------------------------------------------------------------------------------


def require_geth() -> Path:
    """The geth 1.13 binary, or a skip (a failure under ``FEDNODE_REQUIRE_GETH``)."""
    try:
        geth = find_geth()
        checked_geth_version(geth)
    except NetworkError as exc:
        if os.environ.get("FEDNODE_REQUIRE_GETH"):
            pytest.fail(f"FEDNODE_REQUIRE_GETH is set but there is no usable geth: {exc}")
        pytest.skip(f"no usable geth: {exc}")
    return geth


@contextlib.contextmanager
def running_geth_network(
    directory: Path, *, validators: int | None = 4, timeout: float = 120.0
) -> Iterator[NetworkInfo]:
    """Starts ``validators`` geth Clique validators in ``directory``; stops them at exit.

    ``validators=None`` restarts the stopped network a folder already holds, at its size.

    The nodes are tied to the test process (``tie_to_caller``), so a killed test run does not
    leave geth behind; teardown logs every node that needed SIGKILL.
    """
    info = network_up(directory, validators=validators, timeout=timeout, tie_to_caller=True)
    try:
        yield info
    finally:
        for result in network_down(directory):
            if result.outcome == "killed":
                _log.warning("%s needed SIGKILL at teardown", result.name)


def geth_accounts(info: NetworkInfo) -> dict[str, LocalAccount]:
    """The network's prefunded accounts by name (admin, publisher, ..., edge-1..N)."""
    return {name: Account.from_key(read_key_file(info.key_file(name))) for name in info.accounts}


@dataclass(frozen=True)
class GethConsortium:
    """A fresh deployment on a geth network and the accounts that act on it."""

    deployment: Deployment
    accounts: dict[str, LocalAccount]


def deploy_on_geth(info: NetworkInfo, edges: Sequence[str]) -> GethConsortium:
    """Deploys on node 0 with one confirmation: the network's publisher and aggregator get
    their roles, edge ``edges[i]`` is registered with validator ``i``'s signer, and the
    bootstrap ends (as ``fednode deploy`` does)."""
    accounts = geth_accounts(info)
    registrations = [
        EdgeRegistration(accounts[name].address, validator.signer, name)
        for name, validator in zip(edges, info.validators, strict=False)
    ]
    deployment = deploy_consortium(
        connect_web3(info.http_urls[0]), accounts["admin"],
        publishers=[accounts["publisher"].address], aggregators=[accounts["aggregator"].address],
        edges=registrations, confirmations=1,
    )  # fmt: skip
    return GethConsortium(deployment, accounts)


# ---- faults: validators killed and restarted --------------------------------------------


def block_height(url: str) -> int:
    """The latest block number a validator reports (``eth_blockNumber``)."""
    return int(rpc_call(url, "eth_blockNumber", timeout=10.0), 16)


def wait_for_height(url: str, height: int, *, timeout: float = 120.0) -> None:
    """Waits until the validator at ``url`` is at block ``height`` or later (errors retried).

    Raises:
      AssertionError: it did not get there within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if block_height(url) >= height:
                return
        assert time.monotonic() < deadline, f"{url} did not reach block {height}"
        time.sleep(0.5)


@contextlib.contextmanager
def deployed_geth_network(
    directory: Path, *, validators: int = 4, timeout: float = 180.0
) -> Iterator[Path]:
    """:func:`running_geth_network` with the contracts deployed as ``fednode deploy`` does.

    Yields the network folder, with ``deployment.json`` written, so ``open_ledger(directory,
    name)`` works for every consortium account.
    """
    from fednode.cli.chain_cmd import deploy_network  # ~1 s to import: only geth tests pay

    with running_geth_network(directory, validators=validators, timeout=timeout):
        deploy_network(directory)
        yield directory


def _sigkill_geth(pid: int | None, datadir: Path | str) -> None:
    """SIGKILLs ``pid`` only if it is the geth running on ``datadir``.

    The PID is pinned with a pidfd before ``/proc/<pid>/cmdline`` is checked, so a PID the
    kernel hands to another program in between is never signalled.
    """
    if not pid:
        raise NetworkError(f"no PID recorded for the validator on {datadir}")
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise NetworkError(f"PID {pid} (validator on {datadir}) is not running") from None
    try:
        if not is_running(pid, datadir):
            raise NetworkError(f"PID {pid} is not the geth running on {datadir}; not killing it")
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    finally:
        os.close(pidfd)


def kill_validators(directory: Path, indices: Sequence[int], *, timeout: float = 30.0) -> None:
    """SIGKILLs validators (no graceful flush) and waits until they are gone.

    Raises:
      NetworkError: a recorded PID is not (or no longer) that validator's geth.
      AssertionError: a killed geth was still running after ``timeout`` seconds.
    """
    info = load_network(directory)
    chosen = [info.validators[i] for i in indices]
    for validator in chosen:
        _sigkill_geth(validator.pid, validator.datadir)
    deadline = time.monotonic() + timeout
    while any(is_running(v.pid, v.datadir) for v in chosen):
        assert time.monotonic() < deadline, "killed geth did not exit"
        time.sleep(0.1)


def restart_validators(directory: Path, indices: Sequence[int]) -> None:
    """Starts killed validators again on their old ports while the others keep running.

    The new PIDs go into ``network.json``, so ``network_down`` (and the fixtures) stop them.
    """
    info = load_network(directory)
    pids = {}
    for index in indices:
        v = info.validators[index]
        spec = NodeSpec(
            name=v.name, datadir=Path(v.datadir), signer=v.signer, network_id=info.chain_id,
            host="127.0.0.1", p2p_port=v.p2p_port, http_port=v.http_port,
            authrpc_port=v.authrpc_port, gas_limit=info.gas_limit,
            static_nodes=tuple(o.enode for o in info.validators if o.name != v.name),
            password_file=password_file_of(info.dir, v.name),
        )  # fmt: skip
        pids[v.name] = start_node(find_geth(), spec, tie_to_caller=True)
    save_network(info.with_pids(pids))


# ---- partitions -----------------------------------------------------------------------------


def _enode_key(enode: str) -> str:
    """The public key part of ``enode://<key>@host:port``, lowercase."""
    return enode.removeprefix("enode://").split("@", 1)[0].lower()


def peer_keys(url: str) -> set[str]:
    """Public keys of the peers a validator is connected to now (``admin_peers``, on its IPC
    socket: the public gateway refuses ``admin_`` calls)."""
    return {_enode_key(p["enode"]) for p in rpc_call(url, "admin_peers", timeout=10.0)}


def _cut(info: NetworkInfo, index: int) -> None:
    alone = info.validators[index]
    for i, other in enumerate(info.validators):
        if i != index:
            rpc_call(info.ipc_paths[i], "admin_removePeer", [alone.enode], timeout=10.0)
            rpc_call(info.ipc_paths[index], "admin_removePeer", [other.enode], timeout=10.0)


def _connected_to(info: NetworkInfo, index: int) -> set[str]:
    """Keys of the validators still connected to ``index``, seen from either side."""
    alone = _enode_key(info.validators[index].enode)
    seen = peer_keys(info.ipc_paths[index])
    for i, url in enumerate(info.ipc_paths):
        if i != index and alone in peer_keys(url):
            seen.add(_enode_key(info.validators[i].enode))
    return seen


def partition_validator(
    info: NetworkInfo, index: int, *, quiet_s: float = 3.0, timeout: float = 30.0
) -> None:
    """Cuts validator ``index`` off from every other validator (a network partition).

    Each side calls ``admin_removePeer`` on the other: geth drops the enode from its static
    peers and disconnects it, and with discovery off nobody dials it again. A dial already in
    flight can reconnect a pair, so the cut is repeated until no side sees the other for
    ``quiet_s`` seconds.

    Raises:
      NetworkError: the validator still had peers after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while True:
        if _connected_to(info, index):
            _cut(info, index)
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        if time.monotonic() > deadline:
            still = _connected_to(info, index)
            raise NetworkError(f"validator {index} still connected to {len(still)} peers")
        time.sleep(0.2)


def heal_partition(info: NetworkInfo, index: int, *, timeout: float = 60.0) -> None:
    """Re-peers validator ``index`` with every other one (``admin_addPeer`` on both sides).

    Returns once it is connected to all of them; catching up on blocks is geth's sync.

    Raises:
      NetworkError: it was not connected to every other validator after ``timeout`` seconds.
    """
    alone = info.validators[index]
    others = [(i, v) for i, v in enumerate(info.validators) if i != index]
    for i, other in others:
        rpc_call(info.ipc_paths[i], "admin_addPeer", [alone.enode], timeout=10.0)
        rpc_call(info.ipc_paths[index], "admin_addPeer", [other.enode], timeout=10.0)
    wanted = {_enode_key(v.enode) for _, v in others}
    deadline = time.monotonic() + timeout
    while not wanted <= peer_keys(info.ipc_paths[index]):
        if time.monotonic() > deadline:
            raise NetworkError(f"validator {index} did not re-peer within {timeout:.0f}s")
        time.sleep(0.2)


# --- edge servers -------------------------------------------------------------------------------


def start_edge_with_device(
    network: Path, work: Path, index: int, *, node: int
) -> tuple[EdgeServer, EdgeClient, Web3Ledger]:
    """Starts ``edge-<index+1>`` (its ledger on validator ``node``, confirmations 1) with one
    enrolled device ``dev-<index+1>``; the caller stops the server and closes the client."""
    name = f"edge-{index + 1}"
    ledger = open_ledger(network, name, node=node, confirmations=1)
    config = EdgeConfig(name=name, db_path=str(work / f"{name}.sqlite"), port=0,
                        submit_poll_interval_s=0.2, confirmations=1)
    server = EdgeServer(config, ledger)
    server.start()
    identity = DeviceIdentity.generate(device_id=f"dev-{index + 1}")
    enroll_device(server.store, identity.device_id, identity.public_key_hex)
    return server, EdgeClient(server.url, identity), ledger
