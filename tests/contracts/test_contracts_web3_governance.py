"""Chain: Web3Ledger on anvil passes the shared governance behaviour suite."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from fednode.chain import AGGREGATOR_ROLE, Web3Ledger
from tests.behaviours.governance_behaviour import GOVERNANCE_BEHAVIOURS, GovernanceActors
from tests.contracts.contract_helpers import mine_after
from tests.behaviours.quorum_behaviour import QUORUM_BEHAVIOURS

SECOND = Account.from_key(keccak(text="fednode-test-aggregator-2"))


@pytest.fixture
def actors(w3, deployment, accounts) -> GovernanceActors:
    def ledger(account):
        return Web3Ledger(w3, deployment, account, timeout=30.0)

    w3.provider.make_request("anvil_setBalance", [SECOND.address, hex(10**21)])
    admin = ledger(accounts.admin)
    admin.grant_role(AGGREGATOR_ROLE, SECOND.address)
    return GovernanceActors(
        admin=admin,
        publisher=ledger(accounts.publisher),
        edges=tuple(ledger(edge) for edge in accounts.edges),
        aggregator=ledger(accounts.aggregator),
        second_aggregator=ledger(SECOND),
        outsider=ledger(accounts.outsider),
        wait=lambda seconds: mine_after(w3, seconds),
    )


@pytest.mark.parametrize(
    "behaviour", GOVERNANCE_BEHAVIOURS + QUORUM_BEHAVIOURS, ids=lambda b: b.__name__
)
def test_web3_ledger_behaves_like_governance(behaviour, actors):
    behaviour(actors)
