"""Chain: Consortium proposals beyond membership (quorum, admin transfer, renouncement), their
derived lifecycle (expiry, cancellation), and EDGE_ROLE renouncement keeping the registry."""

from __future__ import annotations

import pytest

from fednode.auditor.roles import role_history
from fednode.chain import Web3Ledger
from fednode.chain.constants import (
    AUDITOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    DEFAULT_VOTING_PERIOD,
    EDGE_ROLE,
)
from fednode.chain.records import ProposalAction, ProposalState
from fednode.chain.roles import REGISTERED_EDGE
from tests.contracts.contract_helpers import events, expect_revert, mine_after, send

ZERO = "0x" + "00" * 20


def _created(consortium, receipt) -> tuple[int, int]:
    [event] = events(consortium, "ProposalCreated", receipt)
    return int(event["proposalId"]), int(event["deadline"])


def _state(consortium, proposal_id: int) -> ProposalState:
    return ProposalState(consortium.functions.state(proposal_id).call())


def test_quorum_changes_by_vote_and_never_to_half(contracts, accounts):
    # Arrange
    send(accounts.admin, contracts.consortium, "endBootstrap")
    e0, e1, _ = accounts.edges
    # Act
    pid, _ = _created(contracts.consortium, send(e0, contracts.consortium, "proposeQuorum", 100))
    receipt = send(e1, contracts.consortium, "vote", pid)
    # Assert
    assert events(contracts.consortium, "VoteQuorumChanged", receipt) == [
        {"oldPercent": 51, "newPercent": 100}
    ]
    assert contracts.consortium.functions.requiredVotes().call() == 3
    assert _state(contracts.consortium, pid) == ProposalState.EXECUTED
    for percent in (50, 1, 0):
        expect_revert(e0, contracts.consortium, "proposeQuorum", (percent,),
                      "ConsortiumQuorumBelowFloor", quorumPercent=percent, minimumPercent=51)
    expect_revert(e0, contracts.consortium, "proposeQuorum", (101,), "ConsortiumInvalidQuorum",
                  quorumPercent=101)


def test_admin_is_transferred_by_vote(contracts, accounts):
    # Arrange
    send(accounts.admin, contracts.consortium, "endBootstrap")
    e0, e1, _ = accounts.edges
    new_admin = accounts.outsider.address
    # Act
    receipt = send(e0, contracts.consortium, "proposeAdminTransfer", new_admin)
    pid, _ = _created(contracts.consortium, receipt)
    executed = send(e1, contracts.consortium, "vote", pid)
    # Assert
    functions = contracts.consortium.functions
    assert functions.defaultAdmin().call() == new_admin
    assert not functions.hasRole(DEFAULT_ADMIN_ROLE, accounts.admin.address).call()
    assert events(contracts.consortium, "RoleRevoked", executed) == [
        {"role": DEFAULT_ADMIN_ROLE, "account": accounts.admin.address, "sender": e1.address}
    ]
    assert events(contracts.consortium, "RoleGranted", executed) == [
        {"role": DEFAULT_ADMIN_ROLE, "account": new_admin, "sender": e1.address}
    ]
    assert events(contracts.consortium, "ProposalExecuted", executed) == [
        {"proposalId": pid, "action": ProposalAction.TRANSFER_ADMIN, "role": DEFAULT_ADMIN_ROLE,
         "account": new_admin}
    ]
    expect_revert(e0, contracts.consortium, "proposeAdminTransfer", (new_admin,),
                  "ConsortiumAlreadyMember", role=DEFAULT_ADMIN_ROLE, account=new_admin)
    expect_revert(e0, contracts.consortium, "proposeAdminTransfer", (ZERO,),
                  "ConsortiumInvalidAccount", account=ZERO)


def test_admin_is_renounced_by_vote(contracts, accounts):
    # Arrange
    send(accounts.admin, contracts.consortium, "endBootstrap")
    e0, e1, _ = accounts.edges
    # Act
    pid, _ = _created(contracts.consortium, send(e0, contracts.consortium, "proposeAdminRenounce"))
    executed = send(e1, contracts.consortium, "vote", pid)
    # Assert
    assert contracts.consortium.functions.defaultAdmin().call() == ZERO
    assert events(contracts.consortium, "RoleRevoked", executed) == [
        {"role": DEFAULT_ADMIN_ROLE, "account": accounts.admin.address, "sender": e1.address}
    ]
    expect_revert(e0, contracts.consortium, "proposeAdminRenounce", (), "ConsortiumNoAdmin")


def test_renounce_proposal_goes_stale_when_the_admin_moved(contracts, accounts):
    # Arrange: a renouncement of the admin, then the admin is transferred first
    e0, e1, e2 = accounts.edges
    renounce, _ = _created(contracts.consortium,
                           send(e0, contracts.consortium, "proposeAdminRenounce"))
    moved, _ = _created(contracts.consortium, send(
        e1, contracts.consortium, "proposeAdminTransfer", accounts.outsider.address))
    send(e2, contracts.consortium, "vote", moved)
    # Act / Assert: the renouncement named the former admin and can no longer execute
    expect_revert(e1, contracts.consortium, "vote", (renounce,), "ConsortiumNotMember",
                  role=DEFAULT_ADMIN_ROLE, account=accounts.admin.address)
    assert contracts.consortium.functions.defaultAdmin().call() == accounts.outsider.address


def test_end_bootstrap_cancels_a_pending_admin_transfer(contracts, accounts):
    # Arrange: a two-step transfer started while bootstrapping
    send(accounts.admin, contracts.consortium, "beginDefaultAdminTransfer",
         accounts.outsider.address)
    # Act
    send(accounts.admin, contracts.consortium, "endBootstrap")
    # Assert
    pending, schedule = contracts.consortium.functions.pendingDefaultAdmin().call()
    assert (pending, schedule) == (ZERO, 0)
    expect_revert(accounts.outsider, contracts.consortium, "acceptDefaultAdminTransfer", (),
                  "ConsortiumBootstrapEnded")


def test_propose_refuses_non_membership_actions(contracts, accounts):
    for action in (ProposalAction.SET_QUORUM, ProposalAction.TRANSFER_ADMIN,
                   ProposalAction.RENOUNCE_ADMIN):
        expect_revert(accounts.edges[0], contracts.consortium, "propose",
                      (int(action), AUDITOR_ROLE, accounts.outsider.address, ZERO, ""),
                      "ConsortiumUnexpectedAction", action=int(action))


def test_proposal_expires_after_its_voting_period(w3, contracts, accounts):
    # Arrange
    e0, e1, e2 = accounts.edges
    assert contracts.consortium.functions.votingPeriod().call() == DEFAULT_VOTING_PERIOD
    pid, deadline = _created(contracts.consortium, send(
        e0, contracts.consortium, "propose", 0, AUDITOR_ROLE, accounts.outsider.address, ZERO, ""))
    # Act: the last second still counts, the one after does not
    mine_after(w3, DEFAULT_VOTING_PERIOD - 5)
    active = _state(contracts.consortium, pid)
    mine_after(w3, 10)
    # Assert
    assert active == ProposalState.ACTIVE
    assert _state(contracts.consortium, pid) == ProposalState.EXPIRED
    for voter in (e1, e2):
        expect_revert(voter, contracts.consortium, "vote", (pid,), "ConsortiumProposalExpired",
                      proposalId=pid, deadline=deadline)
    expect_revert(e0, contracts.consortium, "cancel", (pid,), "ConsortiumProposalExpired",
                  proposalId=pid, deadline=deadline)
    assert not contracts.consortium.functions.hasRole(
        AUDITOR_ROLE, accounts.outsider.address).call()


def test_proposer_cancels_and_nobody_else_can(contracts, accounts):
    # Arrange
    e0, e1, _ = accounts.edges
    pid, _ = _created(contracts.consortium, send(
        e0, contracts.consortium, "propose", 0, AUDITOR_ROLE, accounts.outsider.address, ZERO, ""))
    # Act
    for other in (e1, accounts.admin, accounts.outsider):
        expect_revert(other, contracts.consortium, "cancel", (pid,), "ConsortiumNotProposer",
                      proposalId=pid, caller=other.address)
    receipt = send(e0, contracts.consortium, "cancel", pid)
    # Assert
    assert events(contracts.consortium, "ProposalCancelled", receipt) == [
        {"proposalId": pid, "proposer": e0.address}
    ]
    assert _state(contracts.consortium, pid) == ProposalState.CANCELLED
    expect_revert(e1, contracts.consortium, "vote", (pid,), "ConsortiumProposalCancelled",
                  proposalId=pid)
    expect_revert(e0, contracts.consortium, "cancel", (pid,), "ConsortiumProposalCancelled",
                  proposalId=pid)


@pytest.mark.parametrize("by", ["renounce", "admin-revoke"])
def test_losing_edge_role_leaves_the_registry(contracts, accounts, by):
    # Arrange
    e0, e1, e2 = accounts.edges
    validator = accounts.validators[2].address
    # Act
    if by == "renounce":
        receipt = send(e2, contracts.consortium, "renounceRole", EDGE_ROLE, e2.address)
    else:
        receipt = send(accounts.admin, contracts.consortium, "revokeRole", EDGE_ROLE, e2.address)
    # Assert
    assert events(contracts.consortium, "EdgeRemoved", receipt) == [
        {"edge": e2.address, "validator": validator}
    ]
    functions = contracts.consortium.functions
    assert functions.edges().call() == [e0.address, e1.address]
    assert (functions.edgeCount().call(), functions.edgeOf(validator).call()) == (2, ZERO)
    assert functions.validatorOf(e2.address).call() == ZERO


def test_last_edge_can_neither_renounce_nor_be_revoked(contracts, accounts):
    # Arrange
    e0, e1, e2 = accounts.edges
    for edge in (e1, e2):
        send(edge, contracts.consortium, "renounceRole", EDGE_ROLE, edge.address)
    # Act / Assert
    expect_revert(e0, contracts.consortium, "renounceRole", (EDGE_ROLE, e0.address),
                  "ConsortiumLastEdge", edge=e0.address)
    expect_revert(accounts.admin, contracts.consortium, "revokeRole", (EDGE_ROLE, e0.address),
                  "ConsortiumLastEdge", edge=e0.address)
    assert contracts.consortium.functions.edges().call() == [e0.address]


def test_set_ledger_is_refused_after_bootstrap(contracts, accounts):
    send(accounts.admin, contracts.consortium, "endBootstrap")
    expect_revert(accounts.admin, contracts.registry, "setLedger", (accounts.outsider.address,),
                  "TaskRegistryBootstrapEnded")


def test_role_history_follows_votes_and_renouncements(w3, deployment, accounts):
    # Arrange: the admin handed over by vote, an edge walking out of the registry
    ledgers = [Web3Ledger(w3, deployment, a, timeout=30.0) for a in accounts.edges]
    Web3Ledger(w3, deployment, accounts.admin, timeout=30.0).end_bootstrap()
    transfer = ledgers[0].propose_admin_transfer(accounts.outsider.address)
    ledgers[1].vote(transfer)
    ledgers[2].renounce_role(EDGE_ROLE, accounts.edges[2].address)
    # Act
    changes = ledgers[0].role_changes()
    history = role_history(changes)
    head = w3.eth.block_number
    # Assert: the rebuilt timeline says what eth_call at every block says
    pairs = {(c.role, c.account) for c in changes if c.role != REGISTERED_EDGE}
    assert (DEFAULT_ADMIN_ROLE, accounts.outsider.address) in pairs
    for role, account in pairs:
        for block in range(deployment.deploy_block, head + 1):
            assert history.held(role, account, block) == ledgers[0].has_role_at(
                role, account, block), (role, account, block)
    gone = accounts.edges[2].address
    assert history.held(REGISTERED_EDGE, gone, head - 1) and not history.held(
        REGISTERED_EDGE, gone, head)
    assert not history.held(DEFAULT_ADMIN_ROLE, accounts.admin.address, head)
