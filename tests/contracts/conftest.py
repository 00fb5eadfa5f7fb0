"""Chain: one anvil node and one deployment per test session; each test runs in a snapshot.

anvil runs with ``--hardfork paris`` like geth 1.13 Clique chains (no PUSH0). Accounts are
fresh LocalAccounts funded with ``anvil_setBalance``: nothing relies on node-held keys.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract

from fednode.chain.connection import connect_web3
from fednode.chain.deploy import (
    Deployment,
    EdgeRegistration,
    bind_contract,
    deploy_contracts,
    grant_roles,
    register_edges,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ANVIL = REPO_ROOT / "node_modules" / ".bin" / "anvil"
EDGE_COUNT = 3


@dataclass(frozen=True)
class Accounts:
    """Named test accounts; ``edges[i]`` runs validator ``validators[i]``."""

    admin: LocalAccount
    publisher: LocalAccount
    aggregator: LocalAccount
    auditor: LocalAccount
    outsider: LocalAccount
    edges: tuple[LocalAccount, ...]
    validators: tuple[LocalAccount, ...]


def _account(label: str) -> LocalAccount:
    return Account.from_key(keccak(text=f"fednode-test-{label}"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(w3: Web3, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"anvil exited with {proc.returncode}")
        try:
            if w3.eth.chain_id:
                return
        except Exception:  # connection refused until anvil listens
            time.sleep(0.1)
    raise RuntimeError("anvil did not start")


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    if not ANVIL.exists():
        pytest.skip("anvil is not installed (npm install in the repository root)")
    port = _free_port()
    command = [str(ANVIL), "--port", str(port), "--silent", "--hardfork", "paris"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(connect_web3(url), proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def w3(anvil_url: str) -> Web3:
    return connect_web3(anvil_url)


@pytest.fixture(scope="session")
def accounts(w3: Web3) -> Accounts:
    named = {n: _account(n) for n in ("admin", "publisher", "aggregator", "auditor", "outsider")}
    edges = tuple(_account(f"edge-{i}") for i in range(EDGE_COUNT))
    validators = tuple(_account(f"validator-{i}") for i in range(EDGE_COUNT))
    for account in (*named.values(), *edges):
        w3.provider.make_request("anvil_setBalance", [account.address, hex(10**22)])
    return Accounts(**named, edges=edges, validators=validators)


@pytest.fixture(scope="session")
def deployment(w3: Web3, accounts: Accounts) -> Deployment:
    deployed = deploy_contracts(w3, accounts.admin)
    grant_roles(
        w3,
        deployed,
        accounts.admin,
        publishers=[accounts.publisher.address],
        aggregators=[accounts.aggregator.address],
        auditors=[accounts.auditor.address],
    )
    registrations = [
        EdgeRegistration(edge.address, validator.address, f"hospital-{i}")
        for i, (edge, validator) in enumerate(zip(accounts.edges, accounts.validators, strict=True))
    ]
    register_edges(w3, deployed, accounts.admin, registrations)
    return deployed


@pytest.fixture(autouse=True)
def snapshot(request: pytest.FixtureRequest) -> Iterator[None]:
    """Reverts the chain after every test that touched it."""
    if "w3" not in request.fixturenames:
        yield
        return
    w3: Web3 = request.getfixturevalue("w3")
    request.getfixturevalue("deployment")
    snapshot_id = w3.provider.make_request("evm_snapshot", [])["result"]
    yield
    w3.provider.make_request("evm_revert", [snapshot_id])


@dataclass(frozen=True)
class Contracts:
    consortium: Contract
    registry: Contract
    ledger: Contract


@pytest.fixture(scope="session")
def contracts(w3: Web3, deployment: Deployment) -> Contracts:
    return Contracts(
        consortium=bind_contract(w3, deployment, "Consortium"),
        registry=bind_contract(w3, deployment, "TaskRegistry"),
        ledger=bind_contract(w3, deployment, "UpdateLedger"),
    )
