"""Chain: UpdateLedger privacy budget, aggregator quorum, conflicts and reputation facts."""

from __future__ import annotations

from eth_account import Account
from eth_utils import keccak

from fednode.chain.constants import AGGREGATOR_ROLE
from fednode.chain.records import commit_hash
from tests.contracts.contract_helpers import (
    commit,
    events,
    expect_revert,
    expect_view_revert,
    publish,
    send,
    struct,
    submit,
)

SECOND = Account.from_key(keccak(text="fednode-test-aggregator-2"))
THIRD = Account.from_key(keccak(text="fednode-test-aggregator-3"))


def _aggregators(w3, accounts, contracts):
    for account in (SECOND, THIRD):
        w3.provider.make_request("anvil_setBalance", [account.address, hex(10**21)])
        send(accounts.admin, contracts.consortium, "grantRole", AGGREGATOR_ROLE, account.address)
    return accounts.aggregator, SECOND, THIRD


def test_quorum_budget_tracks_spend_and_refuses_overspend(contracts, accounts):
    # Arrange: a budget of 1.0 epsilon per site
    task_id = publish(
        accounts.publisher, contracts.registry, rounds=3, epsilon_budget_micro=1_000_000
    )
    edge = accounts.edges[0]
    first = submit(edge, contracts.ledger, task_id, epsilon_micro=600_000)
    commit(accounts.aggregator, contracts.ledger, task_id, 1, [first])
    # Act / Assert
    expect_revert(
        edge,
        contracts.ledger,
        "submitUpdate",
        (task_id, 1, 1, 400_001, b"u"),
        "UpdateLedgerPrivacyBudgetExceeded",
        taskId=task_id,
        edge=edge.address,
        spent=600_000,
        requested=400_001,
        budget=1_000_000,
    )
    assert contracts.ledger.functions.epsilonSpent(task_id, edge.address).call() == 600_000
    other = accounts.edges[1]
    submit(other, contracts.ledger, task_id, 1, epsilon_micro=1_000_000)
    assert contracts.ledger.functions.epsilonSpent(task_id, other.address).call() == 1_000_000


def test_quorum_zero_budget_is_unlimited(contracts, accounts):
    task_id = publish(accounts.publisher, contracts.registry)
    submit(accounts.edges[0], contracts.ledger, task_id, epsilon_micro=2**63)
    assert contracts.ledger.functions.epsilonSpent(task_id, accounts.edges[0].address).call() == 2**63


def test_quorum_refuses_zero_aggregator_quorum(contracts, accounts):
    expect_revert(
        accounts.publisher,
        contracts.registry,
        "publishTask",
        (b"{}", (1, 1, 0, 0, 0, 0, 100), b"m"),
        "TaskRegistryInvalidAggregatorQuorum",
        aggregatorQuorum=0,
    )


def test_quorum_of_one_finalizes_at_once(contracts, accounts):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry)
    update = submit(accounts.edges[0], contracts.ledger, task_id)
    # Act
    receipt = commit(accounts.aggregator, contracts.ledger, task_id, 1, [update])
    # Assert
    assert events(contracts.ledger, "GlobalModelFinalized", receipt) == [
        {
            "taskId": task_id,
            "version": 1,
            "digest": keccak(b"global"),
            "aggregator": accounts.aggregator.address,
            "commits": 1,
        }
    ]
    assert contracts.ledger.functions.latestVersion(task_id).call() == 1


def test_quorum_of_two_needs_two_agreeing_commits_and_flags_conflicts(w3, contracts, accounts):
    # Arrange
    first, second, third = _aggregators(w3, accounts, contracts)
    task_id = publish(accounts.publisher, contracts.registry, aggregator_quorum=2)
    u1 = submit(accounts.edges[0], contracts.ledger, task_id)
    u2 = submit(accounts.edges[1], contracts.ledger, task_id)
    # Act
    pending = commit(first, contracts.ledger, task_id, 1, [u1, u2])
    conflicting = commit(
        second, contracts.ledger, task_id, 1, [u1], rejected_ids=[u2], payload=b"other"
    )
    final = commit(third, contracts.ledger, task_id, 1, [u1, u2])
    # Assert
    assert events(contracts.ledger, "GlobalModelFinalized", pending) == []
    assert events(contracts.ledger, "GlobalModelConflict", conflicting) == [
        {
            "taskId": task_id,
            "version": 1,
            "aggregator": second.address,
            "digest": keccak(b"other"),
            "firstDigest": keccak(b"global"),
        }
    ]
    assert events(contracts.ledger, "GlobalModelFinalized", final)[0]["commits"] == 2
    functions = contracts.ledger.functions
    assert functions.conflicted(task_id, 1).call()
    assert functions.latestVersion(task_id).call() == 1
    assert struct(contracts.ledger, "globalModel", task_id, 1)["aggregator"] == third.address
    assert [c[2] for c in functions.commits(task_id, 1).call()] == [
        first.address, second.address, third.address
    ]
    assert functions.commits(task_id, 1).call()[0][1] == commit_hash(keccak(b"global"), (u1, u2), ())


def test_quorum_refuses_a_second_commit_by_the_same_aggregator(w3, contracts, accounts):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry, aggregator_quorum=2)
    update = submit(accounts.edges[0], contracts.ledger, task_id)
    commit(accounts.aggregator, contracts.ledger, task_id, 1, [update])
    # Act / Assert
    expect_revert(
        accounts.aggregator,
        contracts.ledger,
        "commitGlobalModel",
        (task_id, 1, [update], [], b"global"),
        "UpdateLedgerAlreadyCommitted",
        taskId=task_id,
        version=1,
        aggregator=accounts.aggregator.address,
    )


def test_quorum_rejected_updates_count_against_reputation(contracts, accounts):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry, rounds=3, max_staleness=1)
    e0, e1, e2 = accounts.edges
    good = submit(e0, contracts.ledger, task_id)
    bad = submit(e1, contracts.ledger, task_id)
    # Act
    commit(accounts.aggregator, contracts.ledger, task_id, 1, [good], rejected_ids=[bad])
    late = submit(e2, contracts.ledger, task_id, 0)
    # Assert
    reputation = contracts.ledger.functions.reputation
    assert reputation(e0.address).call() == (1, 1, 0, 0)
    assert reputation(e1.address).call() == (1, 0, 1, 0)
    assert reputation(e2.address).call() == (1, 0, 0, 1)
    score = contracts.ledger.functions.reputationScore
    assert [score(e.address).call() for e in (e0, e1, e2)] == [10_000, 5_000, 5_000]
    assert late > bad


def test_quorum_refuses_bad_rejected_ids(contracts, accounts):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry, rounds=3)
    e0, e1, _ = accounts.edges
    good = submit(e0, contracts.ledger, task_id)
    bad = submit(e1, contracts.ledger, task_id)
    # Act / Assert
    expect_revert(
        accounts.aggregator, contracts.ledger, "commitGlobalModel",
        (task_id, 1, [good], [good], b"g"),
        "UpdateLedgerRejectedAndAggregated", updateId=good,
    )
    expect_revert(
        accounts.aggregator, contracts.ledger, "commitGlobalModel",
        (task_id, 1, [good], [bad, bad], b"g"),
        "UpdateLedgerUnorderedUpdates", previousId=bad, updateId=bad,
    )
    commit(accounts.aggregator, contracts.ledger, task_id, 1, [good], rejected_ids=[bad])
    expect_revert(
        accounts.aggregator, contracts.ledger, "commitGlobalModel",
        (task_id, 2, [bad], [], b"g"),
        "UpdateLedgerUpdateAlreadyRejected", updateId=bad, version=1,
    )


def test_quorum_views_of_unknown_tasks(contracts):
    expect_view_revert(contracts.ledger, "latestVersion", (5,), "TaskRegistryUnknownTask", taskId=5)
    assert contracts.ledger.functions.commits(5, 1).call() == []
