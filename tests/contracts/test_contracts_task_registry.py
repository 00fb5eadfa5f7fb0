"""Chain: TaskRegistry publishes immutable tasks, derives their state and refuses bad input."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from fednode.chain.compile import load_artifact
from fednode.chain.constants import MAX_PAYLOAD_SIZE
from fednode.chain.transactions import TransactionSender
from fednode.types import TaskState
from tests.contracts.contract_helpers import (
    events,
    expect_revert,
    expect_view_revert,
    mine_after,
    publish,
    send,
    struct,
    submit,
)


def test_task_registry_max_payload_size_matches_python(contracts):
    assert contracts.registry.functions.MAX_PAYLOAD_SIZE().call() == MAX_PAYLOAD_SIZE
    assert contracts.ledger.functions.MAX_PAYLOAD_SIZE().call() == MAX_PAYLOAD_SIZE


def test_task_registry_publishes_with_event_and_stored_record(w3, contracts, accounts):
    # Arrange
    spec, model = b'{"name":"heart"}', b"\x01\x02\x03"
    first_id = contracts.registry.functions.taskCount().call() + 1
    # Act
    receipt = send(
        accounts.publisher, contracts.registry, "publishTask", spec,
        (5, 3, 1, 2**40, 7_000_000, 2, 500), model,
    )
    # Assert
    assert events(contracts.registry, "TaskPublished", receipt) == [
        {
            "taskId": first_id,
            "publisher": accounts.publisher.address,
            "specDigest": keccak(spec),
            "initialModelDigest": keccak(model),
            "rounds": 5,
            "minUpdates": 3,
            "maxStaleness": 1,
            "deadline": 2**40,
            "epsilonBudgetMicro": 7_000_000,
            "aggregatorQuorum": 2,
        }
    ]
    assert struct(contracts.registry, "task", first_id) == {
        "specDigest": keccak(spec),
        "initialModelDigest": keccak(model),
        "publisher": accounts.publisher.address,
        "rounds": 5,
        "minUpdates": 3,
        "maxStaleness": 1,
        "deadline": 2**40,
        "publishedBlock": receipt["blockNumber"],
        "cancelled": False,
        "epsilonBudgetMicro": 7_000_000,
        "aggregatorQuorum": 2,
        "maxExamples": 500,
    }
    assert contracts.registry.functions.taskCount().call() == first_id
    assert contracts.registry.functions.state(first_id).call() == TaskState.OPEN


def test_task_registry_task_ids_start_at_one(contracts):
    expect_view_revert(contracts.registry, "task", (0,), "TaskRegistryUnknownTask", taskId=0)
    assert contracts.registry.functions.taskCount().call() == 0


@pytest.mark.parametrize(
    ("args", "error", "expected"),
    [
        ((b"", 1, 1, 0, 0, b"m"), "TaskRegistryEmptySpec", {}),
        ((b"{}", 0, 1, 0, 0, b"m"), "TaskRegistryInvalidRounds", {"rounds": 0}),
        ((b"{}", 1, 0, 0, 0, b"m"), "TaskRegistryInvalidMinUpdates", {"minUpdates": 0}),
        (
            (b"{}", 1, 1, 0, 0, b""),
            "TaskRegistryInvalidInitialModelSize",
            {"size": 0, "maxSize": MAX_PAYLOAD_SIZE},
        ),
        (
            (b"{}", 1, 1, 0, 0, b"\x01" * (MAX_PAYLOAD_SIZE + 1)),
            "TaskRegistryInvalidInitialModelSize",
            {"size": MAX_PAYLOAD_SIZE + 1, "maxSize": MAX_PAYLOAD_SIZE},
        ),
        ((b"{}", 1, 1, 0, 1, b"m"), "TaskRegistryInvalidDeadline", {"deadline": 1}),
        ((b"{}", 1, 1, 0, 0, b"m", 0), "TaskRegistryInvalidMaxExamples", {"maxExamples": 0}),
    ],
    ids=["empty-spec", "zero-rounds", "zero-min-updates", "empty-model", "big-model", "deadline",
         "zero-max-examples"],
)
def test_task_registry_refuses_bad_tasks(contracts, accounts, args, error, expected):
    spec, rounds, min_updates, staleness, deadline, model, *rest = args
    max_examples = rest[0] if rest else 100
    args = (spec, (rounds, min_updates, staleness, deadline, 0, 1, max_examples), model)
    expect_revert(accounts.publisher, contracts.registry, "publishTask", args, error, **expected)


def test_task_registry_state_runs_open_training_finished(contracts, accounts):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry, rounds=2)
    state = contracts.registry.functions.state
    update = submit(accounts.edges[0], contracts.ledger, task_id)
    # Act / Assert
    assert state(task_id).call() == TaskState.OPEN
    send(accounts.aggregator, contracts.ledger, "commitGlobalModel", task_id, 1, [update], [], b"g1")
    assert state(task_id).call() == TaskState.TRAINING
    update = submit(accounts.edges[0], contracts.ledger, task_id, 1)
    send(accounts.aggregator, contracts.ledger, "commitGlobalModel", task_id, 2, [update], [], b"g2")
    assert state(task_id).call() == TaskState.FINISHED


def test_task_registry_task_expires_after_its_deadline(w3, contracts, accounts):
    # Arrange
    now = int(w3.eth.get_block("latest")["timestamp"])
    task_id = publish(accounts.publisher, contracts.registry, deadline=now + 100)
    # Act
    mine_after(w3, 101)
    # Assert
    assert contracts.registry.functions.state(task_id).call() == TaskState.EXPIRED
    expect_revert(
        accounts.publisher,
        contracts.registry,
        "cancelTask",
        (task_id,),
        "TaskRegistryUnexpectedState",
        taskId=task_id,
        current=TaskState.EXPIRED,
    )


def test_task_registry_cancels_by_publisher_with_event(contracts, accounts):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry)
    # Act
    receipt = send(accounts.publisher, contracts.registry, "cancelTask", task_id)
    # Assert
    assert events(contracts.registry, "TaskCancelled", receipt) == [
        {"taskId": task_id, "publisher": accounts.publisher.address}
    ]
    assert contracts.registry.functions.state(task_id).call() == TaskState.CANCELLED
    assert struct(contracts.registry, "task", task_id)["cancelled"] is True


@pytest.mark.parametrize("case", ["unknown", "not-publisher", "cancelled", "finished"])
def test_task_registry_refuses_bad_cancels(contracts, accounts, case):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry, rounds=1)
    caller, expected = accounts.publisher, {"taskId": task_id}
    if case == "unknown":
        task_id, expected, error = 999, {"taskId": 999}, "TaskRegistryUnknownTask"
    elif case == "not-publisher":
        caller, error = accounts.admin, "TaskRegistryNotPublisher"
        expected["account"] = accounts.admin.address
    elif case == "cancelled":
        send(accounts.publisher, contracts.registry, "cancelTask", task_id)
        error, expected["current"] = "TaskRegistryUnexpectedState", TaskState.CANCELLED
    else:
        update = submit(accounts.edges[0], contracts.ledger, task_id)
        send(accounts.aggregator, contracts.ledger, "commitGlobalModel", task_id, 1, [update], [], b"g")
        error, expected["current"] = "TaskRegistryUnexpectedState", TaskState.FINISHED
    # Act / Assert
    expect_revert(caller, contracts.registry, "cancelTask", (task_id,), error, **expected)


def test_task_registry_unknown_task_views_revert(contracts):
    expect_view_revert(contracts.registry, "state", (7,), "TaskRegistryUnknownTask", taskId=7)
    expect_view_revert(contracts.registry, "task", (7,), "TaskRegistryUnknownTask", taskId=7)


def test_task_registry_ledger_is_set_once(contracts, accounts, deployment):
    assert contracts.registry.functions.ledger().call() == deployment.address("UpdateLedger")
    assert contracts.registry.functions.consortium().call() == deployment.address("Consortium")
    expect_revert(
        accounts.admin,
        contracts.registry,
        "setLedger",
        (accounts.outsider.address,),
        "TaskRegistryLedgerAlreadySet",
        ledger=deployment.address("UpdateLedger"),
    )


def test_task_registry_fresh_registry_sets_ledger_with_event(w3, contracts, accounts):
    # Arrange: a second registry on the same consortium
    artifact = load_artifact("TaskRegistry")
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    init = factory.constructor(contracts.consortium.address).data_in_transaction
    receipt = TransactionSender(w3, accounts.admin).transact(None, bytes.fromhex(init[2:]))
    registry = w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])
    zero = "0x" + "00" * 20
    # Act / Assert
    task_id = publish(accounts.publisher, registry)
    assert registry.functions.state(task_id).call() == TaskState.OPEN  # no ledger yet
    expect_revert(
        accounts.admin, registry, "setLedger", (zero,), "TaskRegistryInvalidLedger", ledger=zero
    )
    set_receipt = send(accounts.admin, registry, "setLedger", accounts.outsider.address)
    assert events(registry, "LedgerSet", set_receipt) == [{"ledger": accounts.outsider.address}]
