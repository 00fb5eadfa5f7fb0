"""Chain: InMemoryLedger passes the shared governance behaviour suite, plus hypothesis
invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fednode.chain import AGGREGATOR_ROLE, EDGE_ROLE, PUBLISHER_ROLE, InMemoryLedger
from fednode.errors import ContractRevertError
from tests.behaviours.governance_behaviour import GOVERNANCE_BEHAVIOURS, GovernanceActors
from tests.behaviours.ledger_behaviour import _model, make_spec
from tests.behaviours.quorum_behaviour import QUORUM_BEHAVIOURS

ADMIN = "0x" + "aa" * 20
PUBLISHER = "0x" + "0b" * 20
AGGREGATORS = ("0x" + "0c" * 20, "0x" + "0e" * 20)
OUTSIDER = "0x" + "0d" * 20
EDGES = tuple("0x" + f"{10 + i:02x}" * 20 for i in range(3))
VALIDATORS = tuple("0x" + f"{20 + i:02x}" * 20 for i in range(3))


def _admin(clock=None) -> InMemoryLedger:
    ledger = InMemoryLedger(ADMIN, clock=clock)
    ledger.grant_role(PUBLISHER_ROLE, PUBLISHER)
    for aggregator in AGGREGATORS:
        ledger.grant_role(AGGREGATOR_ROLE, aggregator)
    for i, (edge, validator) in enumerate(zip(EDGES, VALIDATORS, strict=True)):
        ledger.register_edge(edge, validator, f"hospital-{i}")
    return ledger


def _actors() -> GovernanceActors:
    now = [1_800_000_000]
    admin = _admin(clock=lambda: now[0])

    def wait(seconds: int) -> None:
        now[0] += seconds

    return GovernanceActors(
        admin=admin,
        publisher=admin.as_sender(PUBLISHER),
        edges=tuple(admin.as_sender(edge) for edge in EDGES),
        aggregator=admin.as_sender(AGGREGATORS[0]),
        second_aggregator=admin.as_sender(AGGREGATORS[1]),
        outsider=admin.as_sender(OUTSIDER),
        wait=wait,
    )


@pytest.mark.parametrize(
    "behaviour", GOVERNANCE_BEHAVIOURS + QUORUM_BEHAVIOURS, ids=lambda b: b.__name__
)
def test_memory_ledger_behaves_like_governance(behaviour):
    behaviour(_actors())


@settings(max_examples=40, deadline=None)
@given(spends=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 600_000)), max_size=12))
def test_memory_ledger_budget_is_never_exceeded(spends):
    # Arrange: budget 1.0 epsilon (a DP task: every update declares a spend > 0)
    actors = _actors()
    task_id = actors.publisher.publish_task(
        make_spec(rounds=30, min_updates=1, max_staleness=29, epsilon_budget=1.0), _model(0.0)
    )
    # Act: each accepted update is aggregated at once, so the next one is on a fresh base
    latest = 0
    for edge_index, epsilon in spends:
        edge = actors.edges[edge_index]
        try:
            update = edge.submit_update(
                task_id, latest, _model(0.1), num_examples=1, epsilon_micro=epsilon
            )
        except ContractRevertError as exc:
            assert exc.name == "UpdateLedgerPrivacyBudgetExceeded"
            continue
        latest += 1
        actors.aggregator.commit_global_model(task_id, latest, _model(0.2), [update])
    # Assert
    assert all(actors.admin.epsilon_spent(task_id, e.sender) <= 1_000_000 for e in actors.edges)


@settings(max_examples=30, deadline=None)
@given(votes=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=10))
def test_memory_ledger_roles_change_only_through_quorum(votes):
    # Arrange
    actors = _actors()
    actors.admin.end_bootstrap()
    proposal = actors.edges[0].propose_member(0, EDGE_ROLE, OUTSIDER, validator="0x" + "33" * 20)
    # Act: random voters (duplicates are refused)
    voters = {actors.edges[0].sender}
    for voter, _ in votes:
        try:
            actors.edges[voter].vote(proposal)
            voters.add(actors.edges[voter].sender)
        except ContractRevertError as exc:
            assert exc.name in ("ConsortiumAlreadyVoted", "ConsortiumProposalClosed")
    # Assert
    assert actors.admin.has_role(EDGE_ROLE, OUTSIDER) == (len(voters) >= 2)
