"""Chain: the shared governance behaviour suite (budget, quorum, reputation, membership votes).

Runs against InMemoryLedger (tests/unit/chain) and Web3Ledger on anvil (tests/contracts) with
``GovernanceActors``: ledger views of one chain, bootstrap still open. ``second_aggregator``
must hold AGGREGATOR_ROLE; ``wait(seconds)`` moves the chain's clock forward. Behaviours that
end the bootstrap phase are last-in-chain friendly: the contract tests run each in a snapshot,
the unit tests on a fresh fake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from fednode.chain.constants import AUDITOR_ROLE, DEFAULT_ADMIN_ROLE, EDGE_ROLE
from fednode.chain.records import ProposalAction, ProposalState, Reputation
from fednode.errors import ContractRevertError
from tests.behaviours.ledger_behaviour import _model, make_spec

__all__ = ["GOVERNANCE_BEHAVIOURS", "GovernanceActors"]


@dataclass(frozen=True)
class GovernanceActors:
    """Views of one chain: admin, publisher, three edges, two aggregators, an outsider."""

    admin: Any
    publisher: Any
    edges: tuple[Any, ...]
    aggregator: Any
    second_aggregator: Any
    outsider: Any
    wait: Callable[[int], None]


def _expect(name: str, call: Callable[[], object], **args: object) -> None:
    with pytest.raises(ContractRevertError) as info:
        call()
    assert info.value.name == name, info.value
    assert info.value.args_by_name == args, info.value


def enforces_the_privacy_budget(actors: GovernanceActors) -> None:
    # Arrange
    task_id = actors.publisher.publish_task(
        make_spec(rounds=3, min_updates=1, max_staleness=1, epsilon_budget=1.0), _model(0.0)
    )
    edge = actors.edges[0]
    first = edge.submit_update(task_id, 0, _model(0.1), num_examples=3, epsilon_micro=700_000)
    actors.aggregator.commit_global_model(task_id, 1, _model(0.2), [first])
    # Act / Assert
    _expect(
        "UpdateLedgerPrivacyBudgetExceeded",
        lambda: edge.submit_update(task_id, 1, _model(0.3), num_examples=3, epsilon_micro=300_001),
        taskId=task_id, edge=edge.sender, spent=700_000, requested=300_001, budget=1_000_000,
    )
    edge.submit_update(task_id, 1, _model(0.3), num_examples=3, epsilon_micro=300_000)
    assert edge.epsilon_spent(task_id, edge.sender) == 1_000_000


def finalizes_only_with_a_quorum_of_aggregators(actors: GovernanceActors) -> None:
    # Arrange
    task_id = actors.publisher.publish_task(
        make_spec(rounds=2, min_updates=1, aggregator_quorum=2), _model(0.0)
    )
    update = actors.edges[0].submit_update(task_id, 0, _model(0.1), num_examples=3)
    # Act
    actors.aggregator.commit_global_model(task_id, 1, _model(0.5), [update])
    pending = actors.publisher.read_global_models(task_id)
    actors.second_aggregator.commit_global_model(task_id, 1, _model(0.5), [update])
    # Assert
    assert [r.version for r in pending] == [0]
    final = actors.publisher.read_global_models(task_id)
    assert [r.version for r in final] == [0, 1]
    assert final[1].aggregator == actors.second_aggregator.sender
    commits = actors.publisher.read_commits(task_id)
    assert [(c.aggregator, c.final) for c in commits] == [
        (actors.aggregator.sender, True), (actors.second_aggregator.sender, True)
    ]
    assert actors.publisher.reputation(actors.edges[0].sender).accepted >= 1


def flags_conflicting_commits(actors: GovernanceActors) -> None:
    # Arrange
    task_id = actors.publisher.publish_task(
        make_spec(rounds=2, min_updates=1, aggregator_quorum=2), _model(0.0)
    )
    update = actors.edges[1].submit_update(task_id, 0, _model(0.1), num_examples=3)
    # Act
    actors.aggregator.commit_global_model(task_id, 1, _model(0.5), [update])
    actors.second_aggregator.commit_global_model(task_id, 1, _model(0.6), [update])
    # Assert
    assert actors.publisher.conflicted(task_id, 1)
    assert [r.version for r in actors.publisher.read_global_models(task_id)] == [0]
    assert [c.final for c in actors.publisher.read_commits(task_id)] == [False, False]


def counts_rejected_updates_in_reputation(actors: GovernanceActors) -> None:
    # Arrange
    task_id = actors.publisher.publish_task(make_spec(rounds=2, min_updates=1), _model(0.0))
    good = actors.edges[0].submit_update(task_id, 0, _model(0.1), num_examples=3)
    bad = actors.edges[2].submit_update(task_id, 0, _model(9.0), num_examples=3)
    before = actors.publisher.reputation(actors.edges[2].sender)
    # Act
    actors.aggregator.commit_global_model(task_id, 1, _model(0.2), [good], rejected_ids=[bad])
    # Assert
    after = actors.publisher.reputation(actors.edges[2].sender)
    assert after.rejected == before.rejected + 1
    assert after.score_bps < Reputation().score_bps


def adds_and_removes_members_by_vote(actors: GovernanceActors) -> None:
    # Arrange
    actors.admin.end_bootstrap()
    e0, e1, e2 = actors.edges
    # Act
    added = e0.propose_member(ProposalAction.ADD, AUDITOR_ROLE, actors.outsider.sender)
    executed = e1.vote(added)
    removed = e0.propose_member(ProposalAction.REMOVE, EDGE_ROLE, e2.sender)
    e1.vote(removed)
    # Assert
    assert executed and actors.admin.has_role(AUDITOR_ROLE, actors.outsider.sender)
    assert e2.sender not in actors.admin.edges()
    assert not actors.admin.has_role(EDGE_ROLE, e2.sender)
    assert [p.executed for p in actors.admin.list_proposals()][-2:] == [True, True]
    _expect("ConsortiumBootstrapEnded", lambda: actors.admin.grant_role(EDGE_ROLE, e2.sender))


def changes_quorum_and_admin_only_by_vote(actors: GovernanceActors) -> None:
    # Arrange
    actors.admin.end_bootstrap()
    e0, e1, e2 = actors.edges
    outsider = actors.outsider.sender
    # Act / Assert: the admin's own doors are shut
    _expect("ConsortiumBootstrapEnded", lambda: actors.admin.set_vote_quorum(100))
    _expect("ConsortiumBootstrapEnded",
            lambda: actors.admin.renounce_role(DEFAULT_ADMIN_ROLE, actors.admin.sender))
    _expect("ConsortiumQuorumBelowFloor", lambda: e0.propose_quorum(50),
            quorumPercent=50, minimumPercent=51)
    e1.vote(e0.propose_quorum(100))
    transfer = e0.propose_admin_transfer(outsider)
    transferred_early = e1.vote(transfer)
    e2.vote(transfer)
    moved_to = actors.admin.default_admin()
    renounce = e2.propose_admin_renounce()
    e0.vote(renounce)
    e1.vote(renounce)
    # Assert
    assert actors.admin.vote_quorum_percent() == 100 and not transferred_early
    assert moved_to == outsider
    assert actors.admin.default_admin() == "0x" + "00" * 20
    assert not actors.admin.has_role(DEFAULT_ADMIN_ROLE, actors.admin.sender)
    _expect("ConsortiumNoAdmin", e0.propose_admin_renounce)
    assert actors.admin.proposal_state(renounce) == ProposalState.EXECUTED


def expires_and_cancels_proposals(actors: GovernanceActors) -> None:
    # Arrange
    e0, e1, _ = actors.edges
    target = actors.outsider.sender
    withdrawn = e0.propose_member(ProposalAction.ADD, AUDITOR_ROLE, target)
    # Act / Assert: cancellation
    _expect("ConsortiumNotProposer", lambda: e1.cancel_proposal(withdrawn),
            proposalId=withdrawn, caller=e1.sender)
    e0.cancel_proposal(withdrawn)
    _expect("ConsortiumProposalCancelled", lambda: e1.vote(withdrawn), proposalId=withdrawn)
    # Act / Assert: expiry
    stale = e0.propose_member(ProposalAction.ADD, AUDITOR_ROLE, target)
    deadline = e0.get_proposal(stale).deadline
    actors.wait(e0.voting_period() + 1)
    _expect("ConsortiumProposalExpired", lambda: e1.vote(stale), proposalId=stale,
            deadline=deadline)
    assert [e0.proposal_state(p) for p in (withdrawn, stale)] == [
        ProposalState.CANCELLED, ProposalState.EXPIRED]
    assert not actors.admin.has_role(AUDITOR_ROLE, target)


def renouncing_edge_role_keeps_the_registry(actors: GovernanceActors) -> None:
    # Arrange
    e0, e1, e2 = actors.edges
    # Act
    e2.renounce_role(EDGE_ROLE, e2.sender)
    e1.renounce_role(EDGE_ROLE, e1.sender)
    # Assert
    assert actors.admin.edges() == [e0.sender]
    assert actors.admin.validator_of(e2.sender) == "0x" + "00" * 20
    assert actors.admin.required_votes() == 1
    _expect("ConsortiumLastEdge", lambda: e0.renounce_role(EDGE_ROLE, e0.sender), edge=e0.sender)
    _expect("AccessControlBadConfirmation", lambda: e1.renounce_role(EDGE_ROLE, e0.sender))
    _expect("AccessControlEnforcedDefaultAdminDelay",
            lambda: actors.admin.renounce_role(DEFAULT_ADMIN_ROLE, actors.admin.sender),
            schedule=0)
    assert actors.admin.has_role(EDGE_ROLE, e0.sender)


GOVERNANCE_BEHAVIOURS = (
    enforces_the_privacy_budget,
    finalizes_only_with_a_quorum_of_aggregators,
    flags_conflicting_commits,
    counts_rejected_updates_in_reputation,
    adds_and_removes_members_by_vote,
    changes_quorum_and_admin_only_by_vote,
    expires_and_cancels_proposals,
    renouncing_edge_role_keeps_the_registry,
)
