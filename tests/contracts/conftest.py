"""Chain: one anvil node and one deployment per test session; each test runs in a snapshot.

anvil runs with ``--hardfork paris`` like geth 1.13 Clique chains (no PUSH0). Accounts are
fresh LocalAccounts funded with ``anvil_setBalance``: nothing relies on node-held keys.
Starting anvil and deploying go through ``tests.chainkit``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from fednode.chain.deploy import Deployment, EdgeRegistration, bind_contract
from tests.chainkit import AnvilNode, deploy_consortium, labelled_account, running_anvil

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


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilNode]:
    with running_anvil() as node:
        yield node


@pytest.fixture(scope="session")
def anvil_url(anvil_node: AnvilNode) -> str:
    return anvil_node.url


@pytest.fixture(scope="session")
def w3(anvil_node: AnvilNode) -> Web3:
    return anvil_node.w3


@pytest.fixture(scope="session")
def accounts(anvil_node: AnvilNode) -> Accounts:
    named = {
        n: labelled_account(n) for n in ("admin", "publisher", "aggregator", "auditor", "outsider")
    }
    edges = tuple(labelled_account(f"edge-{i}") for i in range(EDGE_COUNT))
    validators = tuple(labelled_account(f"validator-{i}") for i in range(EDGE_COUNT))
    anvil_node.fund([*named.values(), *edges])
    return Accounts(**named, edges=edges, validators=validators)


@pytest.fixture(scope="session")
def deployment(w3: Web3, accounts: Accounts) -> Deployment:
    registrations = [
        EdgeRegistration(edge.address, validator.address, f"hospital-{i}")
        for i, (edge, validator) in enumerate(zip(accounts.edges, accounts.validators, strict=True))
    ]
    return deploy_consortium(
        w3, accounts.admin,
        publishers=[accounts.publisher.address], aggregators=[accounts.aggregator.address],
        auditors=[accounts.auditor.address], edges=registrations,
        keep_bootstrap=True,  # the contract tests exercise the bootstrap admin too
    )  # fmt: skip


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
