"""Adversary: governance without a back door, attacked on anvil with raw signed transactions.

The consortium is deployed the way ``fednode deploy`` does it (founding roles, founding edges,
then the bootstrap ends). The attackers sign their own transactions with their own keys and
send them raw, with a fixed gas limit, so no client-side check stands in the way: every attack
is mined and reverts on chain. Its named custom error is read from an ``eth_call`` of the same
call, and the whole governance state (every role of every party, the admin and any pending
transfer or delay change, the quorum, the edge registry, proposals, the registry's ledger) is
compared before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError

from fednode.chain.compile import CONTRACT_NAMES, load_artifact
from fednode.chain.constants import (
    AGGREGATOR_ROLE,
    AUDITOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    EDGE_ROLE,
    PUBLISHER_ROLE,
)
from fednode.chain.deploy import EdgeRegistration, bind_contract, deploy_consortium
from fednode.chain.records import ProposalAction, ProposalState
from fednode.chain.revert import revert_error_from
from fednode.errors import ContractRevertError
from tests.chainkit import AnvilNode, labelled_account, running_anvil

ADD, REMOVE = int(ProposalAction.ADD), int(ProposalAction.REMOVE)
ZERO = "0x" + "00" * 20
GAS = 1_000_000
ROLES = (DEFAULT_ADMIN_ROLE, PUBLISHER_ROLE, EDGE_ROLE, AGGREGATOR_ROLE, AUDITOR_ROLE)
ADMIN_ATTACKS = 16


@dataclass(frozen=True)
class Consortium:
    """The deployed contracts and every party's key."""

    w3: Web3
    consortium: Contract
    registry: Contract
    admin: LocalAccount
    accomplice: LocalAccount
    publisher: LocalAccount
    aggregator: LocalAccount
    edges: tuple[LocalAccount, ...]
    validators: tuple[LocalAccount, ...]

    @property
    def parties(self) -> tuple[str, ...]:
        people = (self.admin, self.accomplice, self.publisher, self.aggregator, *self.edges)
        return tuple(p.address for p in people)


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    with running_anvil() as anvil:
        yield anvil


@pytest.fixture(scope="module")
def chain(node: AnvilNode) -> Consortium:
    def account(label: str) -> LocalAccount:
        return labelled_account(label, namespace="fednode-adversary-governance")

    admin, accomplice, publisher, aggregator = (
        account(n) for n in ("admin", "accomplice", "publisher", "aggregator"))
    edges = tuple(account(f"edge-{i}") for i in range(3))
    validators = tuple(account(f"validator-{i}") for i in range(3))
    node.fund([admin, accomplice, publisher, aggregator, *edges])
    deployment = deploy_consortium(
        node.w3, admin, publishers=[publisher.address], aggregators=[aggregator.address],
        edges=[EdgeRegistration(e.address, v.address, f"hospital-{i}")
               for i, (e, v) in enumerate(zip(edges, validators, strict=True))],
    )  # the default: the bootstrap ends once the founding members are registered
    return Consortium(
        node.w3, bind_contract(node.w3, deployment, "Consortium"),
        bind_contract(node.w3, deployment, "TaskRegistry"), admin, accomplice, publisher,
        aggregator, edges, validators,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def snapshot(chain: Consortium) -> Iterator[None]:
    snapshot_id = chain.w3.provider.make_request("evm_snapshot", [])["result"]
    yield
    chain.w3.provider.make_request("evm_revert", [snapshot_id])


def _raw(w3: Web3, account: LocalAccount, contract: Contract, fn_name: str, args: tuple) -> int:
    """Signs ``fn_name(*args)`` with ``account``'s key, sends it raw; returns the status."""
    tx = {
        "to": contract.address, "data": contract.encode_abi(fn_name, list(args)), "gas": GAS,
        "gasPrice": w3.eth.gas_price, "nonce": w3.eth.get_transaction_count(account.address),
        "chainId": w3.eth.chain_id,
    }  # fmt: skip
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    return int(receipt["status"])


def _attack(
    chain: Consortium, account: LocalAccount, contract: Contract, fn_name: str, args: tuple = ()
) -> ContractRevertError:
    """The attack's named error (from ``eth_call``); it is then mined anyway and must revert."""
    data = contract.encode_abi(fn_name, list(args))
    with pytest.raises((ContractLogicError, Web3RPCError)) as info:
        chain.w3.eth.call({"from": account.address, "to": contract.address, "data": data})
    error = revert_error_from(info.value)
    assert error is not None, info.value
    assert _raw(chain.w3, account, contract, fn_name, args) == 0, f"{fn_name} was not refused"
    return error


def _governance_state(chain: Consortium) -> dict[str, Any]:
    fns = chain.consortium.functions
    edges = fns.edges().call()
    return {
        "roles": {(r, p): fns.hasRole(r, p).call() for r in ROLES for p in chain.parties},
        "admin": fns.defaultAdmin().call(),
        "pending_admin": tuple(fns.pendingDefaultAdmin().call()),
        "delay": fns.defaultAdminDelay().call(),
        "pending_delay": tuple(fns.pendingDefaultAdminDelay().call()),
        "bootstrapping": fns.bootstrapping().call(),
        "quorum": fns.voteQuorumPercent().call(),
        "edges": edges,
        "validators": [fns.validatorOf(e).call() for e in edges],
        "edge_count": fns.edgeCount().call(),
        "proposals": fns.proposalCount().call(),
        "ledger": chain.registry.functions.ledger().call(),
    }


def _admin_attacks(chain: Consortium) -> list[tuple[LocalAccount, Contract, str, tuple, str]]:
    """Every admin-only entry point, tried by the admin (or the accomplice it names)."""
    c, admin, accomplice = chain.consortium, chain.admin, chain.accomplice.address
    ended = "ConsortiumBootstrapEnded"
    return [
        (admin, c, "grantRole", (AUDITOR_ROLE, admin.address), ended),
        (admin, c, "grantRole", (EDGE_ROLE, accomplice), ended),
        (admin, c, "grantRole", (DEFAULT_ADMIN_ROLE, accomplice), ended),
        (admin, c, "revokeRole", (EDGE_ROLE, chain.edges[0].address), ended),
        (admin, c, "revokeRole", (PUBLISHER_ROLE, chain.publisher.address), ended),
        (admin, c, "registerEdge", (accomplice, accomplice, "evil"), ended),
        (admin, c, "setVoteQuorum", (1,), ended),
        (admin, c, "setVoteQuorum", (100,), ended),
        (admin, c, "endBootstrap", (), ended),
        (admin, c, "beginDefaultAdminTransfer", (accomplice,), ended),
        (admin, c, "cancelDefaultAdminTransfer", (), ended),
        (admin, c, "changeDefaultAdminDelay", (0,), ended),
        (admin, c, "rollbackDefaultAdminDelay", (), ended),
        (admin, c, "renounceRole", (DEFAULT_ADMIN_ROLE, admin.address), ended),
        (chain.accomplice, c, "acceptDefaultAdminTransfer", (), ended),
        (admin, chain.registry, "setLedger", (accomplice,), "TaskRegistryBootstrapEnded"),
    ]


MEMBER_FUNCTIONS = {
    "Consortium": {"propose", "proposeQuorum", "proposeAdminTransfer", "proposeAdminRenounce",
                   "vote", "cancel"},
    "TaskRegistry": {"publishTask", "cancelTask"},
    "UpdateLedger": {"submitUpdate", "commitGlobalModel"},
    "EvaluationLedger": {"submitEvaluation"},
}
"""State-changing functions open to a role other than the admin (tested in tests/contracts)."""


def test_every_state_changing_function_is_either_attacked_here_or_a_member_function(chain):
    # Arrange
    attacked = {(contract.address, fn) for _, contract, fn, _, _ in _admin_attacks(chain)}
    names = {chain.consortium.address: "Consortium", chain.registry.address: "TaskRegistry"}
    covered = {(names[address], fn) for address, fn in attacked}
    covered |= {("Consortium", "renounceRole")}  # attacked below for every role
    # Act
    writes = {
        (name, entry["name"]) for name in CONTRACT_NAMES for entry in load_artifact(name)["abi"]
        if entry["type"] == "function" and entry["stateMutability"] not in ("view", "pure")
    }
    # Assert: a new admin function must join the attack list before it ships
    assert len(_admin_attacks(chain)) == ADMIN_ATTACKS
    unclassified = writes - covered - {(n, f) for n, fs in MEMBER_FUNCTIONS.items() for f in fs}
    assert unclassified == set()


@pytest.mark.parametrize("index", range(ADMIN_ATTACKS), ids=lambda i: f"attack-{i}")
def test_admin_after_bootstrap_has_no_power_left(chain, index):
    # Arrange
    attacker, contract, fn_name, args, expected = _admin_attacks(chain)[index]
    before = _governance_state(chain)
    # Act
    error = _attack(chain, attacker, contract, fn_name, args)
    # Assert
    assert (error.name, error.args_by_name) == (expected, {}), f"{fn_name}{args}: {error}"
    assert _governance_state(chain) == before


def test_two_step_admin_transfer_started_in_bootstrap_cannot_finish_after_it(node):
    # Arrange: an admin that began handing its role to an accomplice before ending the bootstrap
    admin, accomplice, edge = (labelled_account(n, namespace="fednode-adversary-pending")
                               for n in ("admin", "accomplice", "edge"))
    node.fund([admin, accomplice, edge])
    deployment = deploy_consortium(
        node.w3, admin, edges=[EdgeRegistration(edge.address, accomplice.address, "e")],
        keep_bootstrap=True,  # honest: the transfer below is set-up, then the bootstrap ends
    )
    consortium = bind_contract(node.w3, deployment, "Consortium")
    assert _raw(node.w3, admin, consortium, "beginDefaultAdminTransfer", (accomplice.address,))
    assert _raw(node.w3, admin, consortium, "endBootstrap", ())
    # Act
    status = _raw(node.w3, accomplice, consortium, "acceptDefaultAdminTransfer", ())
    # Assert
    assert status == 0
    assert consortium.functions.defaultAdmin().call() == admin.address
    assert tuple(consortium.functions.pendingDefaultAdmin().call()) == (ZERO, 0)


def test_admin_cannot_propose_or_vote(chain):
    # Arrange
    c, admin = chain.consortium, chain.admin
    before = _governance_state(chain)
    unauthorized = {"account": admin.address, "neededRole": EDGE_ROLE}
    # Act
    errors = [
        _attack(chain, admin, c, "propose", (ADD, AUDITOR_ROLE, admin.address, ZERO, "")),
        _attack(chain, admin, c, "proposeQuorum", (51,)),
        _attack(chain, admin, c, "proposeAdminTransfer", (chain.accomplice.address,)),
        _attack(chain, admin, c, "proposeAdminRenounce"),
    ]
    # Assert
    assert [(e.name, e.args_by_name) for e in errors] == [
        ("AccessControlUnauthorizedAccount", unauthorized)] * 4
    assert _governance_state(chain) == before


def test_edge_renouncing_its_role_leaves_the_registry_consistent(chain):
    # Arrange
    c = chain.consortium
    e0, e1, e2 = chain.edges
    # Act: two edges walk out; the last one tries too
    walked_out = [_raw(chain.w3, e, c, "renounceRole", (EDGE_ROLE, e.address)) for e in (e2, e1)]
    before = _governance_state(chain)
    last = _attack(chain, e0, c, "renounceRole", (EDGE_ROLE, e0.address))
    # Assert
    assert walked_out == [1, 1]
    assert (last.name, last.args_by_name) == ("ConsortiumLastEdge", {"edge": e0.address})
    assert _governance_state(chain) == before
    fns = c.functions
    assert fns.edges().call() == [e0.address] and fns.edgeCount().call() == 1
    for edge, validator in zip((e1, e2), chain.validators[1:], strict=True):
        assert not fns.hasRole(EDGE_ROLE, edge.address).call()
        assert (fns.validatorOf(edge.address).call(), fns.edgeOf(validator.address).call()) == (
            ZERO, ZERO)


def test_edge_cannot_renounce_for_another(chain):
    # Arrange
    e0, _, e2 = chain.edges
    before = _governance_state(chain)
    # Act
    error = _attack(chain, e2, chain.consortium, "renounceRole", (EDGE_ROLE, e0.address))
    # Assert
    assert error.name == "AccessControlBadConfirmation"
    assert _governance_state(chain) == before


def test_vote_on_an_expired_proposal_is_refused(chain):
    # Arrange: the attacker's proposal got no second vote in time
    c, (_, e1, e2) = chain.consortium, chain.edges
    accomplice = chain.accomplice.address
    assert _raw(chain.w3, e2, c, "propose", (ADD, AUDITOR_ROLE, accomplice, ZERO, ""))
    pid = c.functions.proposalCount().call()
    deadline = c.functions.proposal(pid).call()[8]
    chain.w3.provider.make_request("evm_increaseTime", [c.functions.votingPeriod().call() + 1])
    chain.w3.provider.make_request("evm_mine", [])
    before = _governance_state(chain)
    # Act: a colluding edge votes it through late
    error = _attack(chain, e1, c, "vote", (pid,))
    # Assert
    assert (error.name, error.args_by_name) == (
        "ConsortiumProposalExpired", {"proposalId": pid, "deadline": deadline})
    assert ProposalState(c.functions.state(pid).call()) == ProposalState.EXPIRED
    assert not c.functions.hasRole(AUDITOR_ROLE, accomplice).call()
    assert _governance_state(chain) == before


def test_only_the_proposer_cancels_and_the_honest_proposal_still_passes(chain):
    # Arrange: an honest edge proposes to remove the aggregator; the attacker edge would stop it
    c, (e0, e1, e2) = chain.consortium, chain.edges
    aggregator = chain.aggregator.address
    assert _raw(chain.w3, e0, c, "propose", (REMOVE, AGGREGATOR_ROLE, aggregator, ZERO, ""))
    pid = c.functions.proposalCount().call()
    # Act
    errors = [_attack(chain, who, c, "cancel", (pid,)) for who in (e2, chain.admin)]
    executed = _raw(chain.w3, e1, c, "vote", (pid,))
    # Assert
    assert [(e.name, e.args_by_name) for e in errors] == [
        ("ConsortiumNotProposer", {"proposalId": pid, "caller": who.address})
        for who in (e2, chain.admin)]
    assert executed == 1
    assert ProposalState(c.functions.state(pid).call()) == ProposalState.EXECUTED
    assert not c.functions.hasRole(AGGREGATOR_ROLE, aggregator).call()


@pytest.mark.parametrize("percent", [50, 34, 1, 0])
def test_quorum_at_or_below_half_is_refused_even_by_vote(chain, percent):
    # Arrange
    c, e2 = chain.consortium, chain.edges[2]
    before = _governance_state(chain)
    # Act
    error = _attack(chain, e2, c, "proposeQuorum", (percent,))
    # Assert
    assert (error.name, error.args_by_name) == (
        "ConsortiumQuorumBelowFloor", {"quorumPercent": percent, "minimumPercent": 51})
    assert _governance_state(chain) == before


def test_one_edge_alone_cannot_pass_a_proposal(chain):
    # Arrange
    c, e2 = chain.consortium, chain.edges[2]
    accomplice = chain.accomplice.address
    # Act: the attacker proposes (its own vote counts) to make the accomplice the admin
    status = _raw(chain.w3, e2, c, "proposeAdminTransfer", (accomplice,))
    pid = c.functions.proposalCount().call()
    # Assert
    assert status == 1
    assert ProposalState(c.functions.state(pid).call()) == ProposalState.ACTIVE
    assert c.functions.defaultAdmin().call() == chain.admin.address
    assert c.functions.liveVotes(pid).call() < c.functions.requiredVotes().call()
