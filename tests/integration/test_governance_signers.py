"""Chain: on real geth, a voted-in edge's validator becomes a Clique signer and a voted-out one
leaves the signer set, through ``sync_signers``; ``signer_drift`` reports the gap meanwhile."""

from __future__ import annotations

import time

import pytest
from eth_account import Account
from eth_utils import keccak

from fednode.chain import EDGE_ROLE, Web3Ledger
from fednode.chain.connection import connect_web3
from fednode.chain.records import ProposalAction
from fednode.network.signers import chain_signers, registry_signers, signer_drift, sync_signers
from tests.chainkit import deploy_on_geth

pytestmark = pytest.mark.integration

NEW_VALIDATOR = Account.from_key(keccak(text="fednode-governance-new-validator")).address


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.5)


def test_governance_signers_follow_the_registry(geth_network):
    # Arrange: a fresh deployment with the four validators' edges, bootstrap ended by deploy
    info = geth_network
    urls, control = info.http_urls, info.ipc_paths  # votes go to the IPC sockets only
    names = [f"edge-{i + 1}" for i in range(len(info.validators))]
    consortium = deploy_on_geth(info, names)
    account, deployment = consortium.accounts, consortium.deployment
    w3 = connect_web3(urls[0])
    edges = [Web3Ledger(w3, deployment, account[n], confirmations=1) for n in names]
    assert not Web3Ledger(w3, deployment, account["admin"]).bootstrapping()
    assert signer_drift(registry_signers(edges[0]), chain_signers(control[0])).clean
    newcomer = Account.from_key(keccak(text="fednode-governance-newcomer")).address
    # Act 1: vote a new edge operator in (3 of 4 votes), then sync the signers
    pid = edges[0].propose_member(
        ProposalAction.ADD, EDGE_ROLE, newcomer, validator=NEW_VALIDATOR, name="edge-5"
    )
    edges[1].vote(pid)
    edges[2].vote(pid)
    drift = signer_drift(registry_signers(edges[0]), chain_signers(control[0]))
    sync_signers(control, registry_signers(edges[0]))
    _wait_for(lambda: NEW_VALIDATOR in chain_signers(control[0]))
    # Assert 1
    assert drift.missing == (NEW_VALIDATOR,) and drift.extra == ()
    # Act 2: vote it out again and sync (the signer set returns to the four validators)
    pid = edges[3].propose_member(ProposalAction.REMOVE, EDGE_ROLE, newcomer)
    edges[1].vote(pid)
    edges[2].vote(pid)
    sync_signers(control, registry_signers(edges[0]))
    _wait_for(lambda: NEW_VALIDATOR not in chain_signers(control[0]))
    # Assert 2
    assert signer_drift(registry_signers(edges[0]), chain_signers(control[0])).clean
    sync_signers(control, registry_signers(edges[0]))  # discards the now-stale proposals
    assert all(not (connect_web3(u).provider.make_request("clique_proposals", [])["result"])
               for u in urls)
