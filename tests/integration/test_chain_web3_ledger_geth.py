"""Chain: Web3Ledger passes the shared Ledger behaviour suite on real geth 1.13 Clique validators.

This is where geth-specific concerns are proven: Clique ``extraData`` (POA middleware), no
PUSH0 (paris bytecode), fee and gas handling, 1-second blocks with a confirmation depth, and
maximum-size payload transactions under geth's 128 KiB limit.
"""

from __future__ import annotations

import pytest

from fednode.chain import Web3Ledger, connect_web3
from tests.behaviours.ledger_behaviour import LEDGER_BEHAVIOURS, LedgerActors
from tests.chainkit import deploy_on_geth

pytestmark = pytest.mark.integration

EDGES = ("edge-1", "edge-2", "edge-3")


@pytest.fixture(scope="module")
def geth_actors(geth_network) -> LedgerActors:
    info = geth_network
    deployed = deploy_on_geth(info, EDGES)
    deployment, account = deployed.deployment, deployed.accounts

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
