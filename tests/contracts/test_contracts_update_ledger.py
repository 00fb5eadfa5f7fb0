"""Chain: UpdateLedger stores update digests, commits global models and refuses bad input."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from fednode.chain.constants import MAX_PAYLOAD_SIZE
from fednode.types import TaskState
from tests.contracts.contract_helpers import (
    events,
    expect_revert,
    expect_view_revert,
    publish,
    send,
    struct,
    submit,
)


def _commit(accounts, contracts, task_id, version, ids, payload=b"global"):
    return send(
        accounts.aggregator, contracts.ledger, "commitGlobalModel", task_id, version, ids, [], payload
    )


def test_update_ledger_stores_update_and_emits(contracts, accounts):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry)
    edge, payload = accounts.edges[2], b"\x00\x01payload"
    # Act
    receipt = send(edge, contracts.ledger, "submitUpdate", task_id, 0, 42, 1_500_000, payload)
    # Assert
    assert events(contracts.ledger, "UpdateSubmitted", receipt) == [
        {
            "updateId": 1,
            "taskId": task_id,
            "baseVersion": 0,
            "edge": edge.address,
            "digest": keccak(payload),
            "numExamples": 42,
            "epsilonMicro": 1_500_000,
            "payloadSize": len(payload),
        }
    ]
    assert struct(contracts.ledger, "update", 1) == {
        "taskId": task_id,
        "edge": edge.address,
        "baseVersion": 0,
        "numExamples": 42,
        "digest": keccak(payload),
        "epsilonMicro": 1_500_000,
        "payloadSize": len(payload),
        "blockNumber": receipt["blockNumber"],
        "aggregatedIn": 0,
    }
    functions = contracts.ledger.functions
    assert functions.submissionOf(task_id, 0, edge.address).call() == 1
    assert functions.submissionOf(task_id, 0, accounts.edges[0].address).call() == 0
    assert (functions.updateCount().call(), functions.taskUpdateCount(task_id).call()) == (1, 1)


@pytest.mark.parametrize(
    "case",
    ["unknown-task", "empty", "too-big", "zero-examples", "too-many-examples", "future", "stale",
     "duplicate"],
)
def test_update_ledger_refuses_bad_submissions(contracts, accounts, case):
    # Arrange: a task at version 1 that tolerates no staleness
    task_id = publish(accounts.publisher, contracts.registry, rounds=3, max_examples=1_000)
    first = submit(accounts.edges[0], contracts.ledger, task_id)
    _commit(accounts, contracts, task_id, 1, [first])
    submit(accounts.edges[1], contracts.ledger, task_id, 1)
    args, error, expected = {
        "unknown-task": ((99, 0, 1, 0, b"u"), "TaskRegistryUnknownTask", {"taskId": 99}),
        "empty": (
            (task_id, 1, 1, 0, b""),
            "UpdateLedgerInvalidPayloadSize",
            {"size": 0, "maxSize": MAX_PAYLOAD_SIZE},
        ),
        "too-big": (
            (task_id, 1, 1, 0, b"\x01" * (MAX_PAYLOAD_SIZE + 1)),
            "UpdateLedgerInvalidPayloadSize",
            {"size": MAX_PAYLOAD_SIZE + 1, "maxSize": MAX_PAYLOAD_SIZE},
        ),
        "zero-examples": ((task_id, 1, 0, 0, b"u"), "UpdateLedgerZeroExamples", {}),
        "too-many-examples": (
            (task_id, 1, 2**64 - 1, 0, b"u"),
            "UpdateLedgerTooManyExamples",
            {"numExamples": 2**64 - 1, "maxExamples": 1_000},
        ),
        "future": (
            (task_id, 2, 1, 0, b"u"),
            "UpdateLedgerFutureBase",
            {"taskId": task_id, "baseVersion": 2, "latestVersion": 1},
        ),
        "stale": (
            (task_id, 0, 1, 0, b"u"),
            "UpdateLedgerStaleBase",
            {"taskId": task_id, "baseVersion": 0, "latestVersion": 1, "maxStaleness": 0},
        ),
        "duplicate": (
            (task_id, 1, 1, 0, b"other"),
            "UpdateLedgerDuplicateSubmission",
            {"taskId": task_id, "baseVersion": 1, "edge": accounts.edges[1].address},
        ),
    }[case]
    # Act / Assert
    expect_revert(accounts.edges[1], contracts.ledger, "submitUpdate", args, error, **expected)


@pytest.mark.parametrize("state", [TaskState.FINISHED, TaskState.CANCELLED])
def test_update_ledger_refuses_inactive_tasks(contracts, accounts, state):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry, rounds=1)
    update = submit(accounts.edges[0], contracts.ledger, task_id)
    if state == TaskState.FINISHED:
        _commit(accounts, contracts, task_id, 1, [update])
    else:
        send(accounts.publisher, contracts.registry, "cancelTask", task_id)
    expected = {"taskId": task_id, "current": state}
    # Act / Assert
    for sender, fn_name, args in (
        (accounts.edges[1], "submitUpdate", (task_id, 0, 1, 0, b"u")),
        (accounts.aggregator, "commitGlobalModel", (task_id, 1, [update], [], b"g")),
    ):
        expect_revert(
            sender, contracts.ledger, fn_name, args, "UpdateLedgerUnexpectedTaskState", **expected
        )


def test_update_ledger_accepts_stale_base_within_max_staleness(contracts, accounts):
    task_id = publish(accounts.publisher, contracts.registry, rounds=3, max_staleness=1)
    first = submit(accounts.edges[0], contracts.ledger, task_id)
    _commit(accounts, contracts, task_id, 1, [first])
    late = submit(accounts.edges[1], contracts.ledger, task_id, 0)
    receipt = _commit(accounts, contracts, task_id, 2, [late])
    assert events(contracts.ledger, "GlobalModelCommitted", receipt)[0]["updateCount"] == 1
    assert struct(contracts.ledger, "update", late)["aggregatedIn"] == 2


def test_update_ledger_commits_global_model_with_event(contracts, accounts):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry, min_updates=2)
    ids = [submit(edge, contracts.ledger, task_id) for edge in accounts.edges]
    # Act
    receipt = _commit(accounts, contracts, task_id, 1, ids, b"global-1")
    # Assert
    assert events(contracts.ledger, "GlobalModelCommitted", receipt) == [
        {
            "taskId": task_id,
            "version": 1,
            "digest": keccak(b"global-1"),
            "aggregator": accounts.aggregator.address,
            "updateCount": 3,
        }
    ]
    assert struct(contracts.ledger, "globalModel", task_id, 1) == {
        "digest": keccak(b"global-1"),
        "aggregator": accounts.aggregator.address,
        "blockNumber": receipt["blockNumber"],
        "updateIds": ids,
    }
    assert contracts.ledger.functions.latestVersion(task_id).call() == 1
    assert [struct(contracts.ledger, "update", i)["aggregatedIn"] for i in ids] == [1, 1, 1]


def test_update_ledger_version_zero_is_the_initial_model(contracts, accounts):
    task_id = publish(accounts.publisher, contracts.registry, initial_model=b"m0")
    published_block = struct(contracts.registry, "task", task_id)["publishedBlock"]
    assert struct(contracts.ledger, "globalModel", task_id, 0) == {
        "digest": keccak(b"m0"),
        "aggregator": accounts.publisher.address,
        "blockNumber": published_block,
        "updateIds": [],
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown-task",
        "version",
        "empty",
        "too-few",
        "unknown-update",
        "zero-id",
        "unordered",
        "repeated",
        "other-task",
        "stale",
        "reused",
    ],
)
def test_update_ledger_refuses_bad_commits(contracts, accounts, case):
    # Arrange: task A (min 2, staleness 1) at version 1 from a0; a1, a2 on base 0; b0 on task B
    task_a = publish(accounts.publisher, contracts.registry, rounds=4, max_staleness=1)
    task_b = publish(accounts.publisher, contracts.registry)
    e0, e1, e2 = accounts.edges
    a0 = submit(e0, contracts.ledger, task_a)
    a1 = submit(e1, contracts.ledger, task_a)
    b0 = submit(e0, contracts.ledger, task_b)
    _commit(accounts, contracts, task_a, 1, [a0])
    a2 = submit(e2, contracts.ledger, task_a, 0)
    submit(e0, contracts.ledger, task_a, 1)  # a fresh base-1 update after the cut-offs
    args, error, expected = {
        "unknown-task": ((77, 1, [a1], b"g"), "TaskRegistryUnknownTask", {"taskId": 77}),
        "version": (
            (task_a, 3, [a1], b"g"),
            "UpdateLedgerUnexpectedVersion",
            {"taskId": task_a, "version": 3, "expected": 2},
        ),
        "empty": (
            (task_a, 2, [a1], b""),
            "UpdateLedgerInvalidPayloadSize",
            {"size": 0, "maxSize": MAX_PAYLOAD_SIZE},
        ),
        "too-few": (
            (task_a, 2, [], b"g"),
            "UpdateLedgerTooFewEdges",
            {"taskId": task_a, "edges": 0, "minUpdates": 1},
        ),
        "unknown-update": (
            (task_a, 2, [a1, 999], b"g"),
            "UpdateLedgerUnknownUpdate",
            {"updateId": 999},
        ),
        "zero-id": ((task_a, 2, [0], b"g"), "UpdateLedgerUnknownUpdate", {"updateId": 0}),
        "unordered": (
            (task_a, 2, [a2, a1], b"g"),
            "UpdateLedgerUnorderedUpdates",
            {"previousId": a2, "updateId": a1},
        ),
        "repeated": (
            (task_a, 2, [a1, a1], b"g"),
            "UpdateLedgerUnorderedUpdates",
            {"previousId": a1, "updateId": a1},
        ),
        "other-task": (
            (task_a, 2, [a1, b0], b"g"),
            "UpdateLedgerUpdateNotInTask",
            {"updateId": b0, "taskId": task_a},
        ),
        "stale": None,
        "reused": (
            (task_a, 2, [a0, a2], b"g"),
            "UpdateLedgerUpdateAlreadyAggregated",
            {"updateId": a0, "version": 1},
        ),
    }[case] or _stale_case(accounts, contracts, task_a, a1, a2)
    # Act / Assert
    args = (*args[:3], [], args[3])
    expect_revert(
        accounts.aggregator, contracts.ledger, "commitGlobalModel", args, error, **expected
    )


def _stale_case(accounts, contracts, task_id, fresh_id, stale_id):
    """Moves task A to version 2 (cut-off ``fresh_id``) so that base-0 update ``stale_id``,
    after the cut-off, is too old for version 3."""
    _commit(accounts, contracts, task_id, 2, [fresh_id])
    return (
        (task_id, 3, [stale_id], b"g"),
        "UpdateLedgerStaleUpdate",
        {"updateId": stale_id, "baseVersion": 0, "version": 3},
    )


def test_update_ledger_views_revert_on_unknown_ids(contracts, accounts):
    task_id = publish(accounts.publisher, contracts.registry)
    ledger = contracts.ledger
    expect_view_revert(ledger, "update", (0,), "UpdateLedgerUnknownUpdate", updateId=0)
    expect_view_revert(ledger, "update", (5,), "UpdateLedgerUnknownUpdate", updateId=5)
    expect_view_revert(
        ledger, "globalModel", (task_id, 1), "UpdateLedgerUnknownVersion", taskId=task_id, version=1
    )
    expect_view_revert(ledger, "latestVersion", (9,), "TaskRegistryUnknownTask", taskId=9)
    expect_view_revert(ledger, "globalModel", (9, 0), "TaskRegistryUnknownTask", taskId=9)


def test_update_ledger_points_at_its_registry_and_consortium(contracts, deployment):
    assert contracts.ledger.functions.registry().call() == deployment.address("TaskRegistry")
    assert contracts.ledger.functions.consortium().call() == deployment.address("Consortium")


def test_update_ledger_takes_exactly_max_examples(contracts, accounts):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry, max_examples=1_000)
    # Act
    update_id = submit(accounts.edges[0], contracts.ledger, task_id, num_examples=1_000)
    # Assert
    assert struct(contracts.ledger, "update", update_id)["numExamples"] == 1_000
    assert struct(contracts.registry, "task", task_id)["maxExamples"] == 1_000


def test_update_ledger_refuses_zero_spend_in_a_dp_task(contracts, accounts):
    # Arrange: a DP task (epsilon budget 1.0 per edge) and a task without a budget
    dp_task = publish(accounts.publisher, contracts.registry, epsilon_budget_micro=1_000_000)
    plain_task = publish(accounts.publisher, contracts.registry)
    edge = accounts.edges[0]
    # Act / Assert
    expect_revert(
        edge, contracts.ledger, "submitUpdate", (dp_task, 0, 1, 0, b"u"),
        "UpdateLedgerZeroPrivacySpend", taskId=dp_task, budget=1_000_000,
    )
    assert contracts.ledger.functions.epsilonSpent(dp_task, edge.address).call() == 0
    submit(edge, contracts.ledger, dp_task, epsilon_micro=1)
    submit(edge, contracts.ledger, plain_task, epsilon_micro=0)
