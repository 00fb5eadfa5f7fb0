"""Chain: the shared Ledger behaviour suite, run against InMemoryLedger and Web3Ledger.

Each behaviour takes a ``LedgerActors`` (one ledger view per account) and publishes its own
fresh task, so behaviours are independent on a shared chain. Run them with::

    @pytest.mark.parametrize("behaviour", LEDGER_BEHAVIOURS, ids=lambda b: b.__name__)
    def test_x_behaves_like_a_ledger(behaviour, actors):
        behaviour(actors)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from fednode.chain.constants import AGGREGATOR_ROLE, EDGE_ROLE, MAX_PAYLOAD_SIZE, PUBLISHER_ROLE
from fednode.chain.ledger import Ledger
from fednode.codec import digest_bytes, encode_params
from fednode.errors import ContractRevertError, FednodeValueError
from fednode.types import TaskSpec, TaskState

__all__ = ["LEDGER_BEHAVIOURS", "LedgerActors", "make_spec"]

_names = itertools.count()


@dataclass(frozen=True)
class LedgerActors:
    """Ledger views of one chain: a publisher, three edges, an aggregator and an outsider."""

    publisher: Ledger
    edges: tuple[Ledger, ...]
    aggregator: Ledger
    outsider: Ledger


def make_spec(**overrides: object) -> TaskSpec:
    """A small valid task spec with a unique name."""
    fields: dict[str, object] = {
        "name": f"behaviour-{next(_names)}",
        "data_schema": "heart-v1",
        "num_features": 4,
        "rounds": 2,
        "min_updates": 2,
    }
    fields.update(overrides)
    return TaskSpec(**fields)  # type: ignore[arg-type]


def _model(value: float) -> bytes:
    return encode_params({"w": np.full(4, value, np.float32), "b": np.zeros(1, np.float32)})


def _publish(actors: LedgerActors, **overrides: object) -> int:
    return actors.publisher.publish_task(make_spec(**overrides), _model(0.0))


def _reverts(name: str, **args: object) -> Callable[[ContractRevertError], None]:
    def check(error: ContractRevertError) -> None:
        assert error.name == name, error
        assert error.args_by_name == args, error

    return check


def _expect(name: str, call: Callable[[], object], **args: object) -> None:
    with pytest.raises(ContractRevertError) as info:
        call()
    _reverts(name, **args)(info.value)


def publishes_and_reads_a_task(actors: LedgerActors) -> None:
    # Arrange
    spec = make_spec(rounds=3, min_updates=1, max_staleness=1)
    initial = _model(0.5)
    # Act
    task_id = actors.publisher.publish_task(spec, initial)
    # Assert
    task = actors.outsider.get_task(task_id)
    assert (task.task_id, task.spec, task.spec_digest) == (task_id, spec, spec.digest)
    assert task.publisher == actors.publisher.sender
    assert (task.state, task.latest_version) == (TaskState.OPEN, 0)
    assert task_id in [record.task_id for record in actors.outsider.list_tasks()]
    [initial_model] = actors.outsider.read_global_models(task_id)
    assert (initial_model.version, initial_model.payload) == (0, initial)
    assert initial_model.digest == digest_bytes(initial)
    assert initial_model.update_ids == ()
    assert initial_model.block_number == task.published_block


def submits_and_reads_updates_in_ledger_order(actors: LedgerActors) -> None:
    # Arrange
    task_id = _publish(actors, max_staleness=1, rounds=3)
    first, second = actors.edges[0], actors.edges[1]
    # Act
    id_a = second.submit_update(task_id, 0, _model(1.0), num_examples=30, epsilon_micro=7)
    id_b = first.submit_update(task_id, 0, _model(2.0), num_examples=40)
    # Assert
    assert id_b > id_a
    updates = actors.outsider.read_updates(task_id)
    assert [u.update_id for u in updates] == [id_a, id_b]
    a, b = updates
    assert (a.edge, a.task_id, a.base_version) == (second.sender, task_id, 0)
    assert (a.payload, a.digest) == (_model(1.0), digest_bytes(_model(1.0)))
    assert (a.num_examples, a.epsilon_micro, b.epsilon_micro) == (30, 7, 0)
    assert a.block_number <= b.block_number and a.tx_hash != b.tx_hash
    assert actors.outsider.read_updates(task_id, base_version=1) == []
    assert actors.outsider.read_updates(task_id, base_version=0) == updates


def refuses_a_second_submission_per_base_version(actors: LedgerActors) -> None:
    task_id = _publish(actors)
    edge = actors.edges[0]
    edge.submit_update(task_id, 0, _model(1.0), num_examples=1)
    _expect(
        "UpdateLedgerDuplicateSubmission",
        lambda: edge.submit_update(task_id, 0, _model(3.0), num_examples=1),
        taskId=task_id,
        baseVersion=0,
        edge=edge.sender,
    )


def refuses_updates_from_accounts_without_edge_role(actors: LedgerActors) -> None:
    task_id = _publish(actors)
    _expect(
        "AccessControlUnauthorizedAccount",
        lambda: actors.outsider.submit_update(task_id, 0, _model(1.0), num_examples=1),
        account=actors.outsider.sender,
        neededRole=EDGE_ROLE,
    )


def refuses_publishing_without_publisher_role(actors: LedgerActors) -> None:
    _expect(
        "AccessControlUnauthorizedAccount",
        lambda: actors.outsider.publish_task(make_spec(), _model(0.0)),
        account=actors.outsider.sender,
        neededRole=PUBLISHER_ROLE,
    )


def refuses_bad_update_arguments(actors: LedgerActors) -> None:
    task_id = _publish(actors)
    edge = actors.edges[0]
    _expect(
        "UpdateLedgerInvalidPayloadSize",
        lambda: edge.submit_update(task_id, 0, b"", num_examples=1),
        size=0,
        maxSize=MAX_PAYLOAD_SIZE,
    )
    _expect(
        "UpdateLedgerInvalidPayloadSize",
        lambda: edge.submit_update(task_id, 0, b"\x01" * (MAX_PAYLOAD_SIZE + 1), num_examples=1),
        size=MAX_PAYLOAD_SIZE + 1,
        maxSize=MAX_PAYLOAD_SIZE,
    )
    _expect(
        "UpdateLedgerZeroExamples", lambda: edge.submit_update(task_id, 0, b"x", num_examples=0)
    )
    _expect(
        "UpdateLedgerFutureBase",
        lambda: edge.submit_update(task_id, 1, b"x", num_examples=1),
        taskId=task_id,
        baseVersion=1,
        latestVersion=0,
    )
    _expect(
        "TaskRegistryUnknownTask",
        lambda: edge.submit_update(10**9, 0, b"x", num_examples=1),
        taskId=10**9,
    )


def bounds_examples_and_privacy_spend_per_update(actors: LedgerActors) -> None:
    # Arrange: a DP task (budget 2.0 epsilon per edge) capping updates at 500 examples
    task_id = _publish(actors, max_examples=500, epsilon_budget=2.0)
    edge = actors.edges[0]
    # Act / Assert
    _expect(
        "UpdateLedgerTooManyExamples",
        lambda: edge.submit_update(task_id, 0, b"x", num_examples=2**63 - 1, epsilon_micro=1),
        numExamples=2**63 - 1,
        maxExamples=500,
    )
    _expect(
        "UpdateLedgerZeroPrivacySpend",
        lambda: edge.submit_update(task_id, 0, b"x", num_examples=500, epsilon_micro=0),
        taskId=task_id,
        budget=2_000_000,
    )
    assert edge.read_updates(task_id) == []
    update_id = edge.submit_update(task_id, 0, b"x", num_examples=500, epsilon_micro=1)
    assert [u.update_id for u in edge.read_updates(task_id)] == [update_id]
    assert edge.get_task(task_id).spec.max_examples == 500


def accepts_a_maximum_size_update(actors: LedgerActors) -> None:
    task_id = _publish(actors)
    payload = bytes(range(256)) * (MAX_PAYLOAD_SIZE // 256)
    update_id = actors.edges[0].submit_update(task_id, 0, payload, num_examples=1)
    [update] = actors.outsider.read_updates(task_id)
    assert (update.update_id, len(update.payload)) == (update_id, MAX_PAYLOAD_SIZE)
    assert update.payload == payload


def runs_rounds_to_the_finish(actors: LedgerActors) -> None:
    # Arrange
    task_id = _publish(actors, rounds=2, min_updates=2)
    e0, e1, e2 = actors.edges[:3]
    ids = [e.submit_update(task_id, 0, _model(i), num_examples=10) for i, e in enumerate((e0, e1))]
    # Act
    v1 = actors.aggregator.commit_global_model(task_id, 1, _model(9.0), ids)
    # Assert
    assert (v1.version, v1.update_ids, v1.aggregator) == (1, tuple(ids), actors.aggregator.sender)
    assert v1.digest == digest_bytes(_model(9.0))
    task = actors.outsider.get_task(task_id)
    assert (task.state, task.latest_version) == (TaskState.TRAINING, 1)
    _expect(
        "UpdateLedgerStaleBase",
        lambda: e2.submit_update(task_id, 0, b"x", num_examples=1),
        taskId=task_id,
        baseVersion=0,
        latestVersion=1,
        maxStaleness=0,
    )
    ids2 = [e.submit_update(task_id, 1, _model(5.0), num_examples=3) for e in (e2, e0)]
    actors.aggregator.commit_global_model(task_id, 2, _model(8.0), ids2)
    assert actors.outsider.get_task(task_id).state == TaskState.FINISHED
    models = actors.outsider.read_global_models(task_id)
    assert [m.version for m in models] == [0, 1, 2]
    assert models[1] == v1
    assert (models[2].payload, models[2].update_ids) == (_model(8.0), tuple(ids2))
    _expect(
        "UpdateLedgerUnexpectedTaskState",
        lambda: e1.submit_update(task_id, 2, b"x", num_examples=1),
        taskId=task_id,
        current=int(TaskState.FINISHED),
    )


def refuses_bad_global_commits(actors: LedgerActors) -> None:
    # Arrange
    task_id = _publish(actors, rounds=3, min_updates=2)
    other_task = _publish(actors, rounds=3, min_updates=1)
    e0, e1 = actors.edges[:2]
    a = e0.submit_update(task_id, 0, _model(1.0), num_examples=1)
    b = e1.submit_update(task_id, 0, _model(2.0), num_examples=1)
    foreign = e0.submit_update(other_task, 0, _model(3.0), num_examples=1)
    agg = actors.aggregator
    # Act / Assert
    _expect(
        "AccessControlUnauthorizedAccount",
        lambda: actors.outsider.commit_global_model(task_id, 1, b"g", [a, b]),
        account=actors.outsider.sender,
        neededRole=AGGREGATOR_ROLE,
    )
    _expect(
        "UpdateLedgerUnexpectedVersion",
        lambda: agg.commit_global_model(task_id, 2, b"g", [a, b]),
        taskId=task_id,
        version=2,
        expected=1,
    )
    _expect(
        "UpdateLedgerTooFewEdges",
        lambda: agg.commit_global_model(task_id, 1, b"g", [a], rejected_ids=[b]),
        taskId=task_id,
        edges=1,
        minUpdates=2,
    )
    _expect(
        "UpdateLedgerTooFewEdges",
        lambda: agg.commit_global_model(task_id, 1, b"g", []),
        taskId=task_id,
        edges=0,
        minUpdates=2,
    )
    _expect(
        "UpdateLedgerUnorderedUpdates",
        lambda: agg.commit_global_model(task_id, 1, b"g", [b, a]),
        previousId=b,
        updateId=a,
    )
    _expect(
        "UpdateLedgerUnknownUpdate",
        lambda: agg.commit_global_model(task_id, 1, b"g", [a, 10**9]),
        updateId=10**9,
    )
    _expect(
        "UpdateLedgerUpdateNotInTask",
        lambda: agg.commit_global_model(task_id, 1, b"g", [a, foreign]),
        updateId=foreign,
        taskId=task_id,
    )
    _expect(
        "UpdateLedgerInvalidPayloadSize",
        lambda: agg.commit_global_model(task_id, 1, b"", [a, b]),
        size=0,
        maxSize=MAX_PAYLOAD_SIZE,
    )


def refuses_stale_and_reused_updates_in_commits(actors: LedgerActors) -> None:
    # Arrange: staleness 0 task and staleness 1 task, min one update each
    strict = _publish(actors, rounds=3, min_updates=1, max_staleness=0)
    lenient = _publish(actors, rounds=3, min_updates=1, max_staleness=1)
    e0, e1 = actors.edges[:2]
    s0, s1 = (e.submit_update(strict, 0, _model(1.0), num_examples=1) for e in (e0, e1))
    l0 = e0.submit_update(lenient, 0, _model(1.0), num_examples=1)
    agg = actors.aggregator
    agg.commit_global_model(strict, 1, b"g1", [s0])
    agg.commit_global_model(lenient, 1, b"g1", [l0])
    # Act / Assert
    _expect(
        "UpdateLedgerStaleUpdate",
        lambda: agg.commit_global_model(strict, 2, b"g2", [s1]),
        updateId=s1,
        baseVersion=0,
        version=2,
    )
    _expect(
        "UpdateLedgerUpdateAlreadyAggregated",
        lambda: agg.commit_global_model(lenient, 2, b"g2", [l0]),
        updateId=l0,
        version=1,
    )
    late = e1.submit_update(lenient, 0, _model(2.0), num_examples=1)
    assert agg.commit_global_model(lenient, 2, b"g2", [late]).update_ids == (late,)


def cancels_a_task_by_its_publisher_only(actors: LedgerActors) -> None:
    # Arrange
    task_id = _publish(actors)
    # Act / Assert
    _expect(
        "TaskRegistryNotPublisher",
        lambda: actors.outsider.cancel_task(task_id),
        taskId=task_id,
        account=actors.outsider.sender,
    )
    actors.publisher.cancel_task(task_id)
    assert actors.outsider.get_task(task_id).state == TaskState.CANCELLED
    _expect(
        "TaskRegistryUnexpectedState",
        lambda: actors.publisher.cancel_task(task_id),
        taskId=task_id,
        current=int(TaskState.CANCELLED),
    )
    _expect(
        "UpdateLedgerUnexpectedTaskState",
        lambda: actors.edges[0].submit_update(task_id, 0, b"x", num_examples=1),
        taskId=task_id,
        current=int(TaskState.CANCELLED),
    )


def submits_and_reads_evaluations_of_final_versions(actors: LedgerActors) -> None:
    # Arrange: two edges contribute to version 1 (the task is then Finished)
    task_id = _publish(actors, rounds=1, min_updates=1)
    e0, e1 = actors.edges[:2]
    ids = [e.submit_update(task_id, 0, _model(1.0), num_examples=5) for e in (e0, e1)]
    actors.aggregator.commit_global_model(task_id, 1, _model(2.0), ids)
    # Act: the last version of a finished task can still be evaluated
    first = e0.submit_evaluation(task_id, 1, metric=0.5, num_examples=20, secondary=0.25)
    second = e1.submit_evaluation(task_id, 1, metric=0.8125, num_examples=30)
    # Assert
    assert first < second
    everything = actors.outsider.read_evaluations(task_id)
    assert [r.evaluation_id for r in everything] == [first, second]
    a, b = everything
    assert (a.task_id, a.version, a.edge, a.metric_micro, a.secondary_micro) == (
        task_id, 1, e0.sender, 500_000, 250_000
    )
    assert (b.edge, b.metric, b.secondary, b.num_examples) == (e1.sender, 0.8125, None, 30)
    assert a.block_number < b.block_number
    assert actors.outsider.read_evaluations(task_id, 1) == [a, b]
    assert actors.outsider.read_evaluations(task_id, 0) == []
    assert actors.outsider.get_task(task_id).state == TaskState.FINISHED


def refuses_bad_evaluations(actors: LedgerActors) -> None:
    # Arrange: edge 0 contributed to version 1, edge 2 submitted nothing
    task_id = _publish(actors, rounds=2, min_updates=1)
    edge, stranger = actors.edges[0], actors.edges[2]
    update = edge.submit_update(task_id, 0, _model(1.0), num_examples=5)
    actors.aggregator.commit_global_model(task_id, 1, _model(2.0), [update])
    # Act / Assert
    _expect(
        "AccessControlUnauthorizedAccount",
        lambda: actors.outsider.submit_evaluation(task_id, 1, metric=0.5, num_examples=1),
        account=actors.outsider.sender,
        neededRole=EDGE_ROLE,
    )
    _expect(
        "EvaluationLedgerInitialVersion",
        lambda: edge.submit_evaluation(task_id, 0, metric=0.5, num_examples=1),
        taskId=task_id,
    )
    _expect(
        "EvaluationLedgerUnknownVersion",
        lambda: edge.submit_evaluation(task_id, 2, metric=0.5, num_examples=1),
        taskId=task_id,
        version=2,
        latestVersion=1,
    )
    _expect(
        "EvaluationLedgerNotContributor",
        lambda: stranger.submit_evaluation(task_id, 1, metric=0.5, num_examples=1),
        taskId=task_id,
        edge=stranger.sender,
    )
    _expect(
        "EvaluationLedgerMetricOutOfRange",
        lambda: edge.submit_evaluation(task_id, 1, metric=1.5, num_examples=1),
        valueMicro=1_500_000,
        maxMicro=1_000_000,
    )
    _expect(
        "EvaluationLedgerMetricOutOfRange",
        lambda: edge.submit_evaluation(task_id, 1, metric=0.5, num_examples=1, secondary=1.25),
        valueMicro=1_250_000,
        maxMicro=1_000_000,
    )
    _expect(
        "EvaluationLedgerZeroExamples",
        lambda: edge.submit_evaluation(task_id, 1, metric=0.5, num_examples=0),
    )
    _expect(
        "TaskRegistryUnknownTask",
        lambda: edge.submit_evaluation(10**9, 1, metric=0.5, num_examples=1),
        taskId=10**9,
    )
    edge.submit_evaluation(task_id, 1, metric=0.5, num_examples=1)
    _expect(
        "EvaluationLedgerDuplicateEvaluation",
        lambda: edge.submit_evaluation(task_id, 1, metric=0.6, num_examples=2),
        taskId=task_id,
        version=1,
        edge=edge.sender,
    )
    with pytest.raises(FednodeValueError):
        edge.submit_evaluation(task_id, 1, metric=float("nan"), num_examples=1)
    assert [r.metric for r in actors.outsider.read_evaluations(task_id)] == [0.5]


def reports_unknown_tasks(actors: LedgerActors) -> None:
    for read in (
        actors.outsider.get_task,
        actors.outsider.read_updates,
        actors.outsider.read_global_models,
        actors.outsider.read_evaluations,
    ):
        _expect("TaskRegistryUnknownTask", lambda read=read: read(10**9), taskId=10**9)


LEDGER_BEHAVIOURS: tuple[Callable[[LedgerActors], None], ...] = (
    publishes_and_reads_a_task,
    submits_and_reads_updates_in_ledger_order,
    refuses_a_second_submission_per_base_version,
    refuses_updates_from_accounts_without_edge_role,
    refuses_publishing_without_publisher_role,
    refuses_bad_update_arguments,
    bounds_examples_and_privacy_spend_per_update,
    accepts_a_maximum_size_update,
    runs_rounds_to_the_finish,
    refuses_bad_global_commits,
    refuses_stale_and_reused_updates_in_commits,
    cancels_a_task_by_its_publisher_only,
    submits_and_reads_evaluations_of_final_versions,
    refuses_bad_evaluations,
    reports_unknown_tasks,
)
