"""Chain: Web3Ledger passes the shared Ledger behaviour suite on real geth 1.13 Clique validators.

This is where geth-specific concerns are proven: Clique ``extraData`` (POA middleware), no
PUSH0 (paris bytecode), fee and gas handling, 1-second blocks with a confirmation depth, and
maximum-size payload transactions under geth's 128 KiB limit.
"""

from __future__ import annotations

import pytest
from eth_account import Account

from fednode.chain import (
    EdgeRegistration,
    Web3Ledger,
    connect_web3,
    deploy_contracts,
    grant_roles,
    register_edges,
)
from fednode.network import read_key_file
from tests.behaviours.ledger_behaviour import LEDGER_BEHAVIOURS, LedgerActors

pytestmark = pytest.mark.integration

EDGES = ("edge-1", "edge-2", "edge-3")


@pytest.fixture(scope="module")
def geth_actors(geth_network) -> LedgerActors:
    info = geth_network
    w3 = connect_web3(info.http_urls[0])
    account = {name: Account.from_key(read_key_file(info.key_file(name))) for name in info.accounts}
    deployment = deploy_contracts(w3, account["admin"], confirmations=1)
    grant_roles(
        w3,
        deployment,
        account["admin"],
        publishers=[account["publisher"].address],
        aggregators=[account["aggregator"].address],
    )
    registrations = [
        EdgeRegistration(account[name].address, validator.signer, name)
        for name, validator in zip(EDGES, info.validators, strict=False)
    ]
    register_edges(w3, deployment, account["admin"], registrations)

    def ledger(name: str, url: str) -> Web3Ledger:
        return Web3Ledger(connect_web3(url), deployment, account[name], confirmations=1)

    urls = info.http_urls
    return LedgerActors(
        publisher=ledger("publisher", urls[0]),
        edges=tuple(ledger(name, urls[i % len(urls)]) for i, name in enumerate(EDGES)),
        aggregator=ledger("aggregator", urls[-1]),
        outsider=ledger("auditor", urls[1 % len(urls)]),
    )


@pytest.mark.parametrize("behaviour", LEDGER_BEHAVIOURS, ids=lambda b: b.__name__)
def test_chain_web3_ledger_on_geth_behaves_like_a_ledger(behaviour, geth_actors):
    behaviour(geth_actors)
