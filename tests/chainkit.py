"""Chain: the one place where tests start local chains (anvil, geth) and deploy the contracts.

- :func:`running_anvil` starts anvil (``--hardfork paris``, like geth 1.13 Clique chains: no
  PUSH0) on a free loopback port, waits until it answers and yields an :class:`AnvilNode`
  (URL, Web3, ``fund`` with ``anvil_setBalance``); it always stops anvil again.
- :func:`running_geth_network` starts an N-validator geth Clique consortium in a folder and
  always stops it again (graceful, SIGKILL only when a node hangs).
- :func:`deploy_consortium` deploys the three contracts, grants roles and registers edges;
  :func:`deploy_on_geth` does so with the prefunded accounts of a geth network.

Accounts are fresh LocalAccounts derived from a label (:func:`labelled_account`): nothing
relies on node-held keys. Missing tools skip the test, or fail it where
``FEDNODE_REQUIRE_GETH`` asks for geth.
"""

from __future__ import annotations

import contextlib
import logging
import os
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

from fednode.chain.connection import connect_web3
from fednode.chain.deploy import (
    Deployment,
    EdgeRegistration,
    deploy_contracts,
    grant_roles,
    register_edges,
)
from fednode.errors import NetworkError
from fednode.network import NetworkInfo, find_geth, network_down, network_up, read_key_file
from fednode.network.layout import checked_geth_version

__all__ = [
    "ANVIL",
    "AnvilNode",
    "FUNDS",
    "GethConsortium",
    "REPO_ROOT",
    "deploy_consortium",
    "deploy_on_geth",
    "free_port",
    "geth_accounts",
    "labelled_account",
    "require_anvil",
    "require_geth",
    "running_anvil",
    "running_geth_network",
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
            w3.eth.chain_id
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


# ---- contracts ------------------------------------------------------------------------------


def deploy_consortium(
    w3: Web3,
    admin: LocalAccount,
    *,
    publishers: Sequence[str] = (),
    aggregators: Sequence[str] = (),
    auditors: Sequence[str] = (),
    edges: Sequence[EdgeRegistration] = (),
    confirmations: int = 0,
) -> Deployment:
    """Deploys Consortium, TaskRegistry and UpdateLedger, grants the roles, registers edges.

    Args:
      w3: connected Web3.
      admin: deployer and consortium admin.
      publishers: addresses given PUBLISHER_ROLE.
      aggregators: addresses given AGGREGATOR_ROLE.
      auditors: addresses given AUDITOR_ROLE.
      edges: edge operators to register with their validators (EDGE_ROLE).
      confirmations: blocks to wait on top of each deployment transaction.

    Returns:
      The deployment.
    """
    deployment = deploy_contracts(w3, admin, confirmations=confirmations)
    if publishers or aggregators or auditors:
        grant_roles(
            w3, deployment, admin,
            publishers=publishers, aggregators=aggregators, auditors=auditors,
        )  # fmt: skip
    if edges:
        register_edges(w3, deployment, admin, edges)
    return deployment


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
    directory: Path, *, validators: int = 4, timeout: float = 120.0
) -> Iterator[NetworkInfo]:
    """Starts ``validators`` geth Clique validators in ``directory``; stops them at exit.

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
    their roles, and edge ``edges[i]`` is registered with validator ``i``'s signer."""
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
