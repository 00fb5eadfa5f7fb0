"""Aggregator: the rule-state checkpoint between rounds, commits that land twice, the crash hook."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import fednode.aggregator.checkpoint as checkpoint_module
from fednode.aggregator.build import build_global_model, replay_rule_state
from fednode.aggregator.checkpoint import RuleCheckpoint, advance_checkpoint, resume_rule_state
from fednode.aggregator.crash import CRASH_ENV, crash_if_armed
from fednode.aggregator.round import run_round, run_task
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import decode_params, encode_params
from fednode.errors import ChainTimeoutError, ContractRevertError, FednodeValueError
from fednode.tasks import heart_task_spec, initial_payload
from fednode.types import TaskState

EDGES = [f"0x{i:040x}" for i in range(1, 5)]
PUBLISHER, AGGREGATOR, OTHER = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40
SPEC = heart_task_spec(normalization_task=0, rounds=6, server_optimizer="adam",
                       server_learning_rate=0.1)


@pytest.fixture
def chain():
    admin = InMemoryLedger()
    for index, edge in enumerate(EDGES):
        admin.register_edge(edge, f"0x{index + 100:040x}", f"edge-{index + 1}")
    admin.grant_role(PUBLISHER_ROLE, PUBLISHER)
    admin.grant_role(AGGREGATOR_ROLE, AGGREGATOR)
    admin.grant_role(AGGREGATOR_ROLE, OTHER)
    task_id = admin.as_sender(PUBLISHER).publish_task(
        SPEC, initial_payload(SPEC, key=jax.random.key(0)))
    return admin, task_id


def _submit(admin, task_id, *, scale=0.01):
    """Each edge submits a delta of its own constant on the latest version."""
    latest = admin.read_global_models(task_id)[-1]
    params = decode_params(latest.payload)
    for index, edge in enumerate(EDGES):
        fill = np.float32(scale * (index + 1) * (latest.version + 1))
        delta = jax.tree_util.tree_map(lambda a, f=fill: np.full(np.shape(a), f, np.float32),
                                       params)
        admin.as_sender(edge).submit_update(task_id, latest.version, encode_params(delta),
                                            num_examples=10 + index)


def _count_builds(monkeypatch) -> list[int]:
    calls: list[int] = []
    inner = checkpoint_module.build_global_model

    def counting(*args, **kwargs):
        calls.append(1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "build_global_model", counting)
    return calls


def _leaves(state) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state)]


def _assert_same_state(a, b) -> None:
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_run_task_reuses_the_checkpoint_and_replays_nothing(chain, monkeypatch):
    # Arrange: every round's updates are there before the aggregator asks
    admin, task_id = chain
    aggregator = admin.as_sender(AGGREGATOR)
    builds = _count_builds(monkeypatch)
    results = []

    def next_round(result):
        results.append(result)
        if admin.get_task(task_id).state != TaskState.FINISHED:
            _submit(admin, task_id)

    _submit(admin, task_id)
    # Act
    run_task(aggregator, task_id, timeout=1, poll=0.01, on_round=next_round)
    # Assert: no replay at all, and the last checkpoint is the full replay's state
    records = admin.read_global_models(task_id)
    assert len(records) == SPEC.rounds + 1 and builds == []
    assert results[-1].checkpoint.version == SPEC.rounds
    _assert_same_state(results[-1].checkpoint.rule_state,
                       replay_rule_state(SPEC, records, admin.read_updates(task_id)))


class _CountingReads:
    """The aggregator's ledger, counting reads of every update of the task (no base version)."""

    def __init__(self, inner) -> None:
        self._inner, self.full_reads = inner, 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def read_updates(self, task_id, *, base_version=None):
        self.full_reads += base_version is None
        return self._inner.read_updates(task_id, base_version=base_version)


def test_rounds_read_only_the_staleness_window_unless_they_replay(chain):
    # Arrange
    admin, task_id = chain
    ledger = _CountingReads(admin.as_sender(AGGREGATOR))
    _submit(admin, task_id)
    first = run_round(ledger, task_id, timeout=1, poll=0.01)
    _submit(admin, task_id)
    # Act: with the checkpoint nothing is replayed; without it version 1 is
    second = run_round(ledger, task_id, timeout=1, poll=0.01, checkpoint=first.checkpoint)
    reads_with_checkpoint = ledger.full_reads
    _submit(admin, task_id)
    run_round(ledger, task_id, timeout=1, poll=0.01)
    # Assert
    assert reads_with_checkpoint == 0 and ledger.full_reads == 1
    assert second.record.update_ids == tuple(
        u.update_id for u in admin.read_updates(task_id, base_version=1))


def test_rounds_without_a_checkpoint_replay_every_version(chain, monkeypatch):
    # Arrange
    admin, task_id = chain
    aggregator = admin.as_sender(AGGREGATOR)
    builds = _count_builds(monkeypatch)
    # Act: three separate rounds, as three fresh processes would run them
    for _ in range(3):
        _submit(admin, task_id)
        run_round(aggregator, task_id, timeout=1, poll=0.01)
    # Assert: versions 1, then 1-2 replayed (0 + 1 + 2 builds)
    assert len(builds) == 3


def test_a_foreign_version_is_replayed_on_top_of_the_checkpoint(chain, monkeypatch):
    # Arrange: we build version 1; another aggregator commits version 2 (not what we'd build)
    admin, task_id = chain
    _submit(admin, task_id)
    first = run_round(admin.as_sender(AGGREGATOR), task_id, timeout=1, poll=0.01)
    _submit(admin, task_id)
    ids = [u.update_id for u in admin.read_updates(task_id, base_version=1)]
    forged = decode_params(admin.read_global_models(task_id)[1].payload)
    forged["output"]["bias"] = np.asarray(forged["output"]["bias"]) + np.float32(1.0)
    admin.as_sender(OTHER).commit_global_model(task_id, 2, encode_params(forged), ids)
    builds = _count_builds(monkeypatch)
    task, records = admin.get_task(task_id), admin.read_global_models(task_id)
    updates = admin.read_updates(task_id)
    # Act
    resumed = resume_rule_state(task, records, updates, first.checkpoint)
    # Assert: only version 2 was replayed, and the state equals a replay from version 1
    assert len(builds) == 1 and resumed.version == 2
    _assert_same_state(resumed.rule_state, replay_rule_state(SPEC, records, updates))


@pytest.mark.parametrize("tamper", ["digest", "update_ids", "task", "spec", "too_long"])
def test_a_checkpoint_that_does_not_match_the_ledger_is_ignored(chain, monkeypatch, tamper):
    # Arrange
    admin, task_id = chain
    for _ in range(2):
        _submit(admin, task_id)
        run_round(admin.as_sender(AGGREGATOR), task_id, timeout=1, poll=0.01)
    task, records = admin.get_task(task_id), admin.read_global_models(task_id)
    updates = admin.read_updates(task_id)
    good = resume_rule_state(task, records, updates)
    (d0, u0), (d1, u1), rest = good.lineage[0], good.lineage[1], good.lineage[2:]
    bad = {
        "digest": good._replace(lineage=((d0, u0), (b"\x00" * 32, u1), *rest)),
        "update_ids": good._replace(lineage=((d0, u0), (d1, (99,)), *rest)),
        "task": good._replace(task_id=task_id + 1),
        "spec": good._replace(spec_digest=b"\x00" * 32),
        "too_long": good._replace(lineage=(*good.lineage, (b"\x01" * 32, (7,)))),
    }[tamper]._replace(rule_state="garbage")
    builds = _count_builds(monkeypatch)
    # Act
    resumed = resume_rule_state(task, records, updates, bad)
    # Assert: a full replay (versions 1 and 2), not the garbage state
    assert len(builds) == 2
    _assert_same_state(resumed.rule_state, good.rule_state)


def test_resume_refuses_gaps_and_missing_updates(chain):
    admin, task_id = chain
    _submit(admin, task_id)
    run_round(admin.as_sender(AGGREGATOR), task_id, timeout=1, poll=0.01)
    task, records = admin.get_task(task_id), admin.read_global_models(task_id)
    with pytest.raises(FednodeValueError, match="without gaps"):
        resume_rule_state(task, records[1:], [])
    with pytest.raises(FednodeValueError, match="not given"):
        resume_rule_state(task, records, [])


def test_advance_refuses_a_version_that_does_not_follow(chain):
    admin, task_id = chain
    _submit(admin, task_id)
    result = run_round(admin.as_sender(AGGREGATOR), task_id, timeout=1, poll=0.01)
    with pytest.raises(FednodeValueError, match="does not follow"):
        advance_checkpoint(result.checkpoint, result.record, None)
    assert isinstance(result.checkpoint, RuleCheckpoint)


class _Sender:
    """A TransactionSender stand-in whose in-flight count drains after ``polls`` polls."""

    def __init__(self, polls: int, on_drained) -> None:
        self.polls, self.on_drained = polls, on_drained

    def in_flight(self) -> int:
        if self.polls == 0:
            return 0
        self.polls -= 1
        if self.polls == 0:
            self.on_drained()
        return 1


class _RestartedAggregator:
    """The aggregator's ledger right after a restart: the killed run's commit is in flight."""

    def __init__(self, inner, transactions) -> None:
        self._inner, self.transactions, self.commits_sent = inner, transactions, 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def pending_writes(self) -> int:
        return self.transactions.in_flight()

    def commit_global_model(self, *args, **kwargs):
        self.commits_sent += 1
        return self._inner.commit_global_model(*args, **kwargs)


def _killed_runs_commit(admin, task_id):
    """What the killed aggregator had sent: the same build of the next version."""
    task, records = admin.get_task(task_id), admin.read_global_models(task_id)
    updates = [u for u in admin.read_updates(task_id) if u.base_version == records[-1].version]
    state = replay_rule_state(SPEC, records, admin.read_updates(task_id))
    built = build_global_model(task.spec, records[-1].payload, updates, rule_state=state)
    return lambda: admin.as_sender(AGGREGATOR).commit_global_model(
        task_id, len(records), built.payload, built.update_ids)


def test_a_restarted_aggregator_waits_for_the_commit_already_in_flight(chain):
    # Arrange
    admin, task_id = chain
    _submit(admin, task_id)
    ledger = _RestartedAggregator(admin.as_sender(AGGREGATOR),
                                  _Sender(3, _killed_runs_commit(admin, task_id)))
    # Act
    result = run_round(ledger, task_id, timeout=1, poll=0.01)
    # Assert: the in-flight commit became version 1; nothing was sent again
    assert ledger.commits_sent == 0 and result.record.version == 1
    assert [c.version for c in admin.read_commits(task_id)] == [1]
    assert result.checkpoint.version == 1


def test_a_commit_refused_because_the_version_landed_resolves_to_it(chain):
    # Arrange: the killed run's commit lands between this run's check and its commit
    admin, task_id = chain
    _submit(admin, task_id)
    land = _killed_runs_commit(admin, task_id)

    class _Racing(_RestartedAggregator):
        def commit_global_model(self, *args, **kwargs):
            land()
            return super().commit_global_model(*args, **kwargs)

    ledger = _Racing(admin.as_sender(AGGREGATOR), _Sender(0, lambda: None))
    # Act
    result = run_round(ledger, task_id, timeout=1, poll=0.01)
    # Assert
    assert ledger.commits_sent == 1 and result.record.version == 1
    assert len(admin.read_commits(task_id)) == 1


def test_other_reverts_and_stuck_transactions_still_raise(chain):
    admin, task_id = chain
    _submit(admin, task_id)
    no_role = admin.as_sender("0x" + "d" * 40)
    with pytest.raises(ContractRevertError, match="AccessControlUnauthorizedAccount"):
        run_round(no_role, task_id, timeout=1, poll=0.01)
    stuck = _RestartedAggregator(admin.as_sender(AGGREGATOR), _Sender(10**6, lambda: None))
    with pytest.raises(ChainTimeoutError, match="still pending"):
        run_round(stuck, task_id, timeout=0.05, poll=0.01)


def test_crash_hook_is_off_by_default_and_checks_its_setting(monkeypatch):
    exits = []
    monkeypatch.setattr("os._exit", exits.append)
    monkeypatch.delenv(CRASH_ENV, raising=False)
    crash_if_armed("after_read", 1)
    monkeypatch.setenv(CRASH_ENV, "after_build:2")
    crash_if_armed("after_read", 2)
    crash_if_armed("after_build", 1)
    assert exits == []
    crash_if_armed("after_build", 2)
    assert exits == [87]
    monkeypatch.setenv(CRASH_ENV, "after_lunch")
    with pytest.raises(ValueError, match="FEDNODE_AGGREGATOR_CRASH_AT"):
        crash_if_armed("after_read", 1)
    with pytest.raises(ValueError, match="unknown crash point"):
        crash_if_armed("before_breakfast", 1)
