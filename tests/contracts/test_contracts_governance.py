"""Chain: Consortium governance: bootstrap, proposals, votes, quorum, every refusal and event."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from fednode.chain.constants import (
    AGGREGATOR_ROLE,
    AUDITOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    DEFAULT_VOTING_PERIOD,
    EDGE_ROLE,
    PUBLISHER_ROLE,
)
from tests.contracts.contract_helpers import events, expect_revert, expect_view_revert, send

ADD, REMOVE = 0, 1
ZERO = "0x" + "00" * 20
NEWCOMER = Account.from_key(keccak(text="fednode-test-newcomer"))
NEW_VALIDATOR = Account.from_key(keccak(text="fednode-test-new-validator"))


def _propose(sender, consortium, action, role, account, validator=ZERO, name=""):
    receipt = send(sender, consortium, "propose", action, role, account, validator, name)
    return int(events(consortium, "ProposalCreated", receipt)[0]["proposalId"]), receipt


def _timestamp(w3, receipt) -> int:
    return int(w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def _end_bootstrap(accounts, contracts):
    return send(accounts.admin, contracts.consortium, "endBootstrap")


def test_governance_end_bootstrap_emits_and_locks_admin_grants(contracts, accounts):
    # Act
    receipt = _end_bootstrap(accounts, contracts)
    # Assert
    assert events(contracts.consortium, "BootstrapEnded", receipt) == [
        {"admin": accounts.admin.address}
    ]
    assert not contracts.consortium.functions.bootstrapping().call()
    for fn_name, args in (
        ("grantRole", (AUDITOR_ROLE, accounts.outsider.address)),
        ("revokeRole", (PUBLISHER_ROLE, accounts.publisher.address)),
        ("registerEdge", (NEWCOMER.address, NEW_VALIDATOR.address, "x")),
        ("endBootstrap", ()),
    ):
        expect_revert(
            accounts.admin, contracts.consortium, fn_name, args, "ConsortiumBootstrapEnded"
        )


def test_governance_only_admin_ends_bootstrap_or_sets_quorum(contracts, accounts):
    for fn_name, args in (("endBootstrap", ()), ("setVoteQuorum", (50,))):
        expect_revert(
            accounts.edges[0],
            contracts.consortium,
            fn_name,
            args,
            "AccessControlUnauthorizedAccount",
            account=accounts.edges[0].address,
            neededRole=DEFAULT_ADMIN_ROLE,
        )


@pytest.mark.parametrize(
    ("percent", "error", "expected"),
    [
        (101, "ConsortiumInvalidQuorum", {"quorumPercent": 101}),
        (50, "ConsortiumQuorumBelowFloor", {"quorumPercent": 50, "minimumPercent": 51}),
        (0, "ConsortiumQuorumBelowFloor", {"quorumPercent": 0, "minimumPercent": 51}),
    ],
)
def test_governance_refuses_a_bad_quorum(contracts, accounts, percent, error, expected):
    expect_revert(
        accounts.admin, contracts.consortium, "setVoteQuorum", (percent,), error, **expected
    )


def test_governance_quorum_change_emits_and_sets_required_votes(contracts, accounts):
    # Arrange: three edges, default 51 % -> 2 votes
    functions = contracts.consortium.functions
    assert (functions.edgeCount().call(), functions.requiredVotes().call()) == (3, 2)
    # Act
    receipt = send(accounts.admin, contracts.consortium, "setVoteQuorum", 100)
    # Assert
    assert events(contracts.consortium, "VoteQuorumChanged", receipt) == [
        {"oldPercent": 51, "newPercent": 100}
    ]
    assert functions.requiredVotes().call() == 3


def test_governance_adds_an_edge_by_majority_vote(w3, contracts, accounts):
    # Arrange
    _end_bootstrap(accounts, contracts)
    e0, e1, _ = accounts.edges
    # Act
    proposal_id, created = _propose(
        e0, contracts.consortium, ADD, EDGE_ROLE, NEWCOMER.address, NEW_VALIDATOR.address, "new"
    )
    executed = send(e1, contracts.consortium, "vote", proposal_id)
    # Assert
    assert events(contracts.consortium, "ProposalCreated", created) == [
        {
            "proposalId": proposal_id,
            "proposer": e0.address,
            "action": ADD,
            "role": EDGE_ROLE,
            "account": NEWCOMER.address,
            "validator": NEW_VALIDATOR.address,
            "name": "new",
            "quorumPercent": 0,
            "deadline": _timestamp(w3, created) + DEFAULT_VOTING_PERIOD,
        }
    ]
    assert events(contracts.consortium, "VoteCast", created) == [
        {"proposalId": proposal_id, "voter": e0.address, "votes": 1, "required": 2}
    ]
    assert events(contracts.consortium, "VoteCast", executed) == [
        {"proposalId": proposal_id, "voter": e1.address, "votes": 2, "required": 2}
    ]
    assert events(contracts.consortium, "EdgeRegistered", executed) == [
        {"edge": NEWCOMER.address, "validator": NEW_VALIDATOR.address, "name": "new"}
    ]
    assert events(contracts.consortium, "RoleGranted", executed) == [
        {"role": EDGE_ROLE, "account": NEWCOMER.address, "sender": e1.address}
    ]
    assert events(contracts.consortium, "ProposalExecuted", executed) == [
        {"proposalId": proposal_id, "action": ADD, "role": EDGE_ROLE, "account": NEWCOMER.address}
    ]
    functions = contracts.consortium.functions
    assert functions.validatorOf(NEWCOMER.address).call() == NEW_VALIDATOR.address
    assert functions.edges().call()[-1] == NEWCOMER.address
    assert functions.edgeCount().call() == 4


def test_governance_removes_an_edge_and_its_validator(contracts, accounts):
    # Arrange
    e0, e1, e2 = accounts.edges
    validator = contracts.consortium.functions.validatorOf(e2.address).call()
    # Act
    proposal_id, _ = _propose(e0, contracts.consortium, REMOVE, EDGE_ROLE, e2.address)
    executed = send(e1, contracts.consortium, "vote", proposal_id)
    # Assert
    assert events(contracts.consortium, "EdgeRemoved", executed) == [
        {"edge": e2.address, "validator": validator}
    ]
    assert events(contracts.consortium, "RoleRevoked", executed) == [
        {"role": EDGE_ROLE, "account": e2.address, "sender": e1.address}
    ]
    functions = contracts.consortium.functions
    assert functions.edges().call() == [e0.address, e1.address]
    assert functions.edgeOf(validator).call() == ZERO
    assert not functions.hasRole(EDGE_ROLE, e2.address).call()


@pytest.mark.parametrize("role", [PUBLISHER_ROLE, AGGREGATOR_ROLE, AUDITOR_ROLE])
def test_governance_grants_and_revokes_other_roles(contracts, accounts, role):
    # Arrange
    _end_bootstrap(accounts, contracts)
    e0, e1, _ = accounts.edges
    has_role = contracts.consortium.functions.hasRole
    # Act
    added, _ = _propose(e0, contracts.consortium, ADD, role, accounts.outsider.address)
    send(e1, contracts.consortium, "vote", added)
    granted = has_role(role, accounts.outsider.address).call()
    removed, _ = _propose(e1, contracts.consortium, REMOVE, role, accounts.outsider.address)
    send(e0, contracts.consortium, "vote", removed)
    # Assert
    assert granted and not has_role(role, accounts.outsider.address).call()


def test_governance_votes_of_removed_edges_do_not_count(contracts, accounts):
    # Arrange: e2 proposes to add the outsider as auditor, then e2 itself is removed
    e0, e1, e2 = accounts.edges
    stale, _ = _propose(e2, contracts.consortium, ADD, AUDITOR_ROLE, accounts.outsider.address)
    remove, _ = _propose(e0, contracts.consortium, REMOVE, EDGE_ROLE, e2.address)
    send(e1, contracts.consortium, "vote", remove)
    # Act: one live vote (e0) of the two needed of two edges
    receipt = send(e0, contracts.consortium, "vote", stale)
    # Assert
    assert events(contracts.consortium, "VoteCast", receipt) == [
        {"proposalId": stale, "voter": e0.address, "votes": 1, "required": 2}
    ]
    assert contracts.consortium.functions.liveVotes(stale).call() == 1
    assert not contracts.consortium.functions.proposal(stale).call()[5]


@pytest.mark.parametrize(
    "case",
    ["ungoverned", "zero-account", "already-member", "not-member", "zero-validator",
     "validator-taken", "last-edge"],
)
def test_governance_refuses_bad_proposals(contracts, accounts, case):
    # Arrange
    e0, e1, e2 = accounts.edges
    taken = accounts.validators[1].address
    if case == "last-edge":  # vote e2, then e1 (with its own vote) out: e0 is left alone
        for edge in (e2, e1):
            pid, _ = _propose(e0, contracts.consortium, REMOVE, EDGE_ROLE, edge.address)
            send(e1, contracts.consortium, "vote", pid)
    args, error, expected = {
        "ungoverned": (
            (ADD, DEFAULT_ADMIN_ROLE, NEWCOMER.address, ZERO, ""),
            "ConsortiumUngovernedRole",
            {"role": DEFAULT_ADMIN_ROLE},
        ),
        "zero-account": (
            (ADD, AUDITOR_ROLE, ZERO, ZERO, ""), "ConsortiumInvalidAccount", {"account": ZERO}
        ),
        "already-member": (
            (ADD, PUBLISHER_ROLE, accounts.publisher.address, ZERO, ""),
            "ConsortiumAlreadyMember",
            {"role": PUBLISHER_ROLE, "account": accounts.publisher.address},
        ),
        "not-member": (
            (REMOVE, AUDITOR_ROLE, NEWCOMER.address, ZERO, ""),
            "ConsortiumNotMember",
            {"role": AUDITOR_ROLE, "account": NEWCOMER.address},
        ),
        "zero-validator": (
            (ADD, EDGE_ROLE, NEWCOMER.address, ZERO, ""),
            "ConsortiumInvalidValidator",
            {"validator": ZERO},
        ),
        "validator-taken": (
            (ADD, EDGE_ROLE, NEWCOMER.address, taken, ""),
            "ConsortiumValidatorAlreadyRegistered",
            {"validator": taken, "edge": e1.address},
        ),
        "last-edge": ((REMOVE, EDGE_ROLE, e0.address, ZERO, ""), "ConsortiumLastEdge",
                      {"edge": e0.address}),
    }[case]
    # Act / Assert
    expect_revert(e0, contracts.consortium, "propose", args, error, **expected)


def test_governance_refuses_bad_votes(contracts, accounts):
    # Arrange
    e0, e1, e2 = accounts.edges
    pid, _ = _propose(e0, contracts.consortium, ADD, AUDITOR_ROLE, NEWCOMER.address)
    # Act / Assert
    expect_revert(e0, contracts.consortium, "vote", (pid,), "ConsortiumAlreadyVoted",
                  proposalId=pid, voter=e0.address)
    expect_revert(e0, contracts.consortium, "vote", (99,), "ConsortiumUnknownProposal",
                  proposalId=99)
    send(e1, contracts.consortium, "vote", pid)
    expect_revert(e2, contracts.consortium, "vote", (pid,), "ConsortiumProposalClosed",
                  proposalId=pid)
    expect_view_revert(contracts.consortium, "proposal", (0,), "ConsortiumUnknownProposal",
                       proposalId=0)


@pytest.mark.parametrize("fn_name", ["propose", "vote"])
def test_governance_only_edges_propose_and_vote(contracts, accounts, fn_name):
    args = (ADD, AUDITOR_ROLE, NEWCOMER.address, ZERO, "") if fn_name == "propose" else (1,)
    for account in (accounts.admin, accounts.publisher, accounts.aggregator, accounts.outsider):
        expect_revert(
            account,
            contracts.consortium,
            fn_name,
            args,
            "AccessControlUnauthorizedAccount",
            account=account.address,
            neededRole=EDGE_ROLE,
        )


def test_governance_execution_rechecks_the_proposal(contracts, accounts):
    # Arrange: two proposals to add the same auditor; the first one executes
    e0, e1, e2 = accounts.edges
    first, _ = _propose(e0, contracts.consortium, ADD, AUDITOR_ROLE, NEWCOMER.address)
    second, _ = _propose(e1, contracts.consortium, ADD, AUDITOR_ROLE, NEWCOMER.address)
    send(e2, contracts.consortium, "vote", first)
    # Act / Assert: the second can no longer execute
    expect_revert(e2, contracts.consortium, "vote", (second,), "ConsortiumAlreadyMember",
                  role=AUDITOR_ROLE, account=NEWCOMER.address)
