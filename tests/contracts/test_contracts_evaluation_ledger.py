"""Chain: EvaluationLedger on anvil: custom errors with their args, the event, the views."""

from __future__ import annotations

import pytest
from web3 import Web3
from web3.contract import Contract

from fednode.chain.constants import EDGE_ROLE
from fednode.chain.deploy import Deployment, bind_contract
from fednode.types import METRIC_SCALE, NO_METRIC_MICRO
from tests.contracts.contract_helpers import (
    commit,
    events,
    expect_revert,
    expect_view_revert,
    publish,
    send,
    submit,
)


@pytest.fixture
def evaluations(w3: Web3, deployment: Deployment) -> Contract:
    return bind_contract(w3, deployment, "EvaluationLedger")


def _evaluate(account, evaluations, task_id, version, metric, secondary=NO_METRIC_MICRO, n=10):
    receipt = send(account, evaluations, "submitEvaluation", task_id, version, metric, secondary, n)
    return receipt, events(evaluations, "EvaluationSubmitted", receipt)


def test_evaluation_ledger_is_wired_to_the_update_ledger(evaluations, contracts):
    assert evaluations.functions.ledger().call() == contracts.ledger.address
    assert evaluations.functions.consortium().call() == contracts.consortium.address
    assert evaluations.functions.METRIC_SCALE().call() == METRIC_SCALE
    assert evaluations.functions.NO_SECONDARY_METRIC().call() == NO_METRIC_MICRO


def _contribute(accounts, contracts, task_id, edges) -> None:
    """Version 1 of ``task_id`` aggregates one update of each of ``edges``."""
    ids = [submit(edge, contracts.ledger, task_id) for edge in edges]
    commit(accounts.aggregator, contracts.ledger, task_id, 1, ids)


def test_evaluation_submitted_event_and_views(accounts, contracts, evaluations):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry, rounds=2)
    edge_a, edge_b = accounts.edges[:2]
    _contribute(accounts, contracts, task_id, [edge_a, edge_b])
    before = evaluations.functions.evaluationCount().call()
    # Act
    receipt, [event] = _evaluate(edge_a, evaluations, task_id, 1, 812_500, 900_000, n=61)
    # Assert
    assert event == {
        "evaluationId": before + 1,
        "taskId": task_id,
        "version": 1,
        "edge": edge_a.address,
        "metricMicro": 812_500,
        "secondaryMicro": 900_000,
        "numExamples": 61,
    }
    evaluation_id = before + 1
    assert evaluations.functions.evaluationOf(task_id, 1, edge_a.address).call() == evaluation_id
    assert evaluations.functions.evaluationOf(task_id, 1, edge_b.address).call() == 0
    assert evaluations.functions.evaluationCount().call() == evaluation_id
    [stored] = evaluations.functions.evaluations(task_id, 1).call()
    block = receipt["blockNumber"]
    assert stored == (1, edge_a.address, 812_500, 900_000, 61, block, evaluation_id)
    assert evaluations.functions.evaluations(task_id, 0).call() == []
    assert evaluations.functions.taskEvaluations(task_id).call() == [stored]


def test_evaluation_needs_a_final_version(accounts, contracts, evaluations):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry, rounds=2)
    edge = accounts.edges[0]
    # Act / Assert: version 1 does not exist until it is committed
    expect_revert(
        edge, evaluations, "submitEvaluation", (task_id, 1, 1, NO_METRIC_MICRO, 1),
        "EvaluationLedgerUnknownVersion", taskId=task_id, version=1, latestVersion=0,
    )  # fmt: skip
    update_id = submit(edge, contracts.ledger, task_id)
    commit(accounts.aggregator, contracts.ledger, task_id, 1, [update_id])
    _, [event] = _evaluate(edge, evaluations, task_id, 1, 700_000)
    assert event["version"] == 1


def test_evaluation_refusals_name_the_rule(accounts, contracts, evaluations):
    task_id = publish(accounts.publisher, contracts.registry)
    edge, stranger = accounts.edges[0], accounts.edges[2]
    _contribute(accounts, contracts, task_id, [edge])
    call = "submitEvaluation"
    expect_revert(
        accounts.outsider, evaluations, call, (task_id, 1, 1, 1, 1),
        "AccessControlUnauthorizedAccount", account=accounts.outsider.address, neededRole=EDGE_ROLE,
    )  # fmt: skip
    expect_revert(
        edge, evaluations, call, (task_id, 0, 1, 1, 1),
        "EvaluationLedgerInitialVersion", taskId=task_id,
    )  # fmt: skip
    expect_revert(
        stranger, evaluations, call, (task_id, 1, 1, 1, 1),
        "EvaluationLedgerNotContributor", taskId=task_id, edge=stranger.address,
    )  # fmt: skip
    expect_revert(
        edge, evaluations, call, (task_id, 1, METRIC_SCALE + 1, 1, 1),
        "EvaluationLedgerMetricOutOfRange", valueMicro=METRIC_SCALE + 1, maxMicro=METRIC_SCALE,
    )  # fmt: skip
    expect_revert(
        edge, evaluations, call, (task_id, 1, 1, NO_METRIC_MICRO - 1, 1),
        "EvaluationLedgerMetricOutOfRange", valueMicro=NO_METRIC_MICRO - 1, maxMicro=METRIC_SCALE,
    )  # fmt: skip
    expect_revert(edge, evaluations, call, (task_id, 1, 1, 1, 0), "EvaluationLedgerZeroExamples")
    expect_revert(
        edge, evaluations, call, (99, 1, 1, 1, 1), "TaskRegistryUnknownTask", taskId=99
    )
    _evaluate(edge, evaluations, task_id, 1, METRIC_SCALE, 0)
    expect_revert(
        edge, evaluations, call, (task_id, 1, 5, 5, 5),
        "EvaluationLedgerDuplicateEvaluation", taskId=task_id, version=1, edge=edge.address,
    )  # fmt: skip
    expect_view_revert(evaluations, "taskEvaluations", (99,), "TaskRegistryUnknownTask", taskId=99)
    expect_view_revert(evaluations, "evaluations", (99, 0), "TaskRegistryUnknownTask", taskId=99)


def test_evaluation_of_a_cancelled_task_is_still_recorded(accounts, contracts, evaluations):
    # A cancelled task's last version may still be evaluated (the record is about the model).
    task_id = publish(accounts.publisher, contracts.registry, rounds=2)
    _contribute(accounts, contracts, task_id, [accounts.edges[1]])
    send(accounts.publisher, contracts.registry, "cancelTask", task_id)
    _, [event] = _evaluate(accounts.edges[1], evaluations, task_id, 1, 1)
    assert (event["taskId"], event["edge"]) == (task_id, accounts.edges[1].address)
