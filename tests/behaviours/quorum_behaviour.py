"""Chain: the shared quorum behaviour suite (candidate sets, distinct edges, contributors).

Runs against InMemoryLedger (tests/unit/chain/test_chain_memory_governance.py) and Web3Ledger
on anvil (tests/contracts/test_contracts_web3_governance.py) with ``GovernanceActors``, so the
fake and the contract refuse the same commits with the same custom errors and args.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.behaviours.governance_behaviour import GovernanceActors, _expect
from tests.behaviours.ledger_behaviour import _model, make_spec

__all__ = ["QUORUM_BEHAVIOURS"]


def fixes_the_candidate_set_at_the_first_commit(actors: GovernanceActors) -> None:
    # Arrange: quorum 2; an update lands after the first aggregator's commit
    task_id = actors.publisher.publish_task(
        make_spec(rounds=2, min_updates=1, max_staleness=1, aggregator_quorum=2), _model(0.0)
    )
    first = actors.edges[0].submit_update(task_id, 0, _model(0.1), num_examples=3)
    actors.aggregator.commit_global_model(task_id, 1, _model(0.5), [first])
    late = actors.edges[1].submit_update(task_id, 0, _model(0.2), num_examples=3)
    # Act / Assert: the second aggregator saw the late update; the cut-off refuses it
    _expect(
        "UpdateLedgerCutoffMismatch",
        lambda: actors.second_aggregator.commit_global_model(
            task_id, 1, _model(0.6), [first, late]
        ),
        taskId=task_id, version=1, lastUpdateId=late, cutoffUpdateId=first,
    )
    assert actors.publisher.candidate_cutoff(task_id, 1) == first
    actors.second_aggregator.commit_global_model(task_id, 1, _model(0.5), [first])
    assert [r.version for r in actors.publisher.read_global_models(task_id)] == [0, 1]
    assert not actors.publisher.conflicted(task_id, 1)
    # the late update is the next version's candidate set
    for aggregator in (actors.aggregator, actors.second_aggregator):
        aggregator.commit_global_model(task_id, 2, _model(0.7), [late])
    assert actors.publisher.read_global_models(task_id)[2].update_ids == (late,)


def refuses_an_incomplete_candidate_set(actors: GovernanceActors) -> None:
    # Arrange: a stale update (base 0, submitted before version 1 was final) stays unconsumed
    task_id = actors.publisher.publish_task(
        make_spec(rounds=3, min_updates=1, aggregator_quorum=2), _model(0.0)
    )
    e0, e1 = actors.edges[:2]
    a = e0.submit_update(task_id, 0, _model(0.1), num_examples=3)
    actors.aggregator.commit_global_model(task_id, 1, _model(0.5), [a])
    stale = e1.submit_update(task_id, 0, _model(0.2), num_examples=3)
    actors.second_aggregator.commit_global_model(task_id, 1, _model(0.5), [a])
    fresh = e0.submit_update(task_id, 1, _model(0.3), num_examples=3)
    agg = actors.aggregator
    # Act / Assert: skipping it is incomplete, aggregating it is stale, rejecting it is right
    _expect(
        "UpdateLedgerIncompleteCandidateSet",
        lambda: agg.commit_global_model(task_id, 2, _model(0.6), [fresh]),
        taskId=task_id, version=2, listed=1, candidates=2,
    )
    _expect(
        "UpdateLedgerStaleUpdate",
        lambda: agg.commit_global_model(task_id, 2, _model(0.6), [stale, fresh]),
        updateId=stale, baseVersion=0, version=2,
    )
    agg.commit_global_model(task_id, 2, _model(0.6), [fresh], rejected_ids=[stale])
    assert actors.publisher.candidate_cutoff(task_id, 2) == fresh


def counts_distinct_edges_not_updates(actors: GovernanceActors) -> None:
    # Arrange: min_updates 2, staleness 1; after version 1, edge 0 submits on bases 0 and 1
    task_id = actors.publisher.publish_task(
        make_spec(rounds=3, min_updates=2, max_staleness=1), _model(0.0)
    )
    e0, e1, e2 = actors.edges
    v1 = [e.submit_update(task_id, 0, _model(0.1), num_examples=3) for e in (e1, e2)]
    actors.aggregator.commit_global_model(task_id, 1, _model(0.5), v1)
    alone = [e0.submit_update(task_id, base, _model(0.2), num_examples=3) for base in (0, 1)]
    # Act / Assert: two updates of one edge do not fill the version
    _expect(
        "UpdateLedgerTooFewEdges",
        lambda: actors.aggregator.commit_global_model(task_id, 2, _model(0.6), alone),
        taskId=task_id, edges=1, minUpdates=2,
    )
    other = e1.submit_update(task_id, 1, _model(0.3), num_examples=3)
    actors.aggregator.commit_global_model(task_id, 2, _model(0.6), [*alone, other])
    assert actors.publisher.contributions(task_id, e0.sender) == 2
    assert actors.publisher.contributions(task_id, e1.sender) == 2
    assert actors.publisher.contributions(task_id, actors.outsider.sender) == 0


QUORUM_BEHAVIOURS: tuple[Callable[[GovernanceActors], None], ...] = (
    fixes_the_candidate_set_at_the_first_commit,
    refuses_an_incomplete_candidate_set,
    counts_distinct_edges_not_updates,
)
