"""Aggregator: the round loop on the in-memory ledger, the auditor's replay of what it wrote."""

from __future__ import annotations

import dataclasses
import threading

import jax
import numpy as np
import pytest

from fednode.aggregator.build import replay_rule_state
from fednode.aggregator.round import run_round, run_task
from fednode.auditor.replay import verify_task
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import decode_params, encode_params
from fednode.device.data import load_heart_disease, normalize, normalizer_from_stats
from fednode.device.normalization import combine_feature_stats, compute_feature_stats
from fednode.device.train import train_local
from fednode.errors import ChainTimeoutError
from fednode.tasks import heart_task_spec, initial_payload
from fednode.types import TaskState

EDGES = [f"0x{i:040x}" for i in range(1, 5)]


@pytest.fixture
def consortium():
    admin = InMemoryLedger()
    for index, edge in enumerate(EDGES):
        admin.register_edge(edge, f"0x{index + 100:040x}", f"edge-{index + 1}")
    admin.grant_role(PUBLISHER_ROLE, "0x" + "a" * 40)
    admin.grant_role(AGGREGATOR_ROLE, "0x" + "b" * 40)
    return admin.as_sender("0x" + "a" * 40), admin.as_sender("0x" + "b" * 40), admin


def _publish(publisher, rounds=3):
    spec = heart_task_spec(normalization_task=0, rounds=rounds)
    return publisher.publish_task(spec, initial_payload(spec, key=jax.random.key(0))), spec


def _submit_round(admin, task_id, spec, sites, normalizer, key):
    latest = admin.read_global_models(task_id)[-1]
    params = decode_params(latest.payload)
    for edge, site, k in zip(EDGES, sites, jax.random.split(key, len(sites)), strict=True):
        x = normalize(site.x_train, normalizer)
        update = train_local(params, (x, site.y_train), key=k, spec=spec)
        admin.as_sender(edge).submit_update(task_id, latest.version, encode_params(update.delta),
                                            num_examples=update.num_examples)


@pytest.fixture(scope="module")
def sites_and_normalizer():
    sites = load_heart_disease()
    stats = combine_feature_stats([compute_feature_stats(s.x_train) for s in sites])
    return sites, normalizer_from_stats(stats)


def test_rounds_commit_versions_that_the_auditor_recomputes(consortium, sites_and_normalizer):
    # Arrange
    publisher, aggregator, admin = consortium
    sites, normalizer = sites_and_normalizer
    task_id, spec = _publish(publisher)
    # Act
    for round_index in range(spec.rounds):
        _submit_round(admin, task_id, spec, sites, normalizer, jax.random.key(round_index))
        run_round(aggregator, task_id, timeout=1)
    report = verify_task(admin, task_id)
    # Assert
    assert admin.get_task(task_id).state == TaskState.FINISHED
    assert report.ok and [v.version for v in report.verdicts] == [0, 1, 2, 3]
    assert all(len(r.update_ids) == 4 for r in admin.read_global_models(task_id)[1:])


def test_round_times_out_with_a_clear_error_when_updates_are_missing(consortium):
    # Arrange
    publisher, aggregator, _ = consortium
    task_id, _ = _publish(publisher)
    # Act / Assert
    with pytest.raises(ChainTimeoutError, match="0/4 distinct edges"):
        run_round(aggregator, task_id, timeout=0.05, poll=0.01)


def test_run_task_stops_when_the_task_is_finished(consortium, sites_and_normalizer):
    # Arrange
    publisher, aggregator, admin = consortium
    sites, normalizer = sites_and_normalizer
    task_id, spec = _publish(publisher, rounds=1)
    _submit_round(admin, task_id, spec, sites, normalizer, jax.random.key(0))
    # Act
    results = run_task(aggregator, task_id, timeout=1)
    # Assert
    assert [r.record.version for r in results] == [1]
    assert admin.get_task(task_id).state == TaskState.FINISHED


def test_replayed_rule_state_matches_the_rounds_already_committed(consortium,
                                                                   sites_and_normalizer):
    # Arrange
    publisher, aggregator, admin = consortium
    sites, normalizer = sites_and_normalizer
    task_id, spec = _publish(publisher, rounds=2)
    for round_index in range(2):
        _submit_round(admin, task_id, spec, sites, normalizer, jax.random.key(round_index))
        run_round(aggregator, task_id, timeout=1)
    # Act
    state = replay_rule_state(spec, admin.read_global_models(task_id), admin.read_updates(task_id))
    # Assert
    assert state.version == 2 and state.rule.num_rounds == 2


def test_auditor_flags_a_commit_that_does_not_match_its_updates(consortium,
                                                                 sites_and_normalizer):
    # Arrange: the aggregator commits a model that is not the FedAvg of the listed updates.
    publisher, aggregator, admin = consortium
    sites, normalizer = sites_and_normalizer
    task_id, spec = _publish(publisher, rounds=1)
    _submit_round(admin, task_id, spec, sites, normalizer, jax.random.key(0))
    ids = [u.update_id for u in admin.read_updates(task_id)]
    forged = decode_params(admin.read_global_models(task_id)[0].payload)
    forged["output"]["bias"] = np.asarray(forged["output"]["bias"]) + np.float32(1.0)
    aggregator.commit_global_model(task_id, 1, encode_params(forged), ids)
    # Act
    report = verify_task(admin, task_id)
    # Assert
    bad = report.verdicts[1]
    assert not report.ok and not bad.match
    assert bad.first_differing_tensor == "output.bias"
    assert bad.at_fault == f"commit by {aggregator.sender}"


def test_heart_spec_defaults_are_the_tuned_ones():
    spec = heart_task_spec(normalization_task=7)
    assert (spec.rounds, spec.learning_rate, spec.batch_size) == (10, 0.1, 32)
    assert (spec.normalization_task, spec.local_optimizer) == (7, "sgd")
    assert dataclasses.replace(spec, rounds=3).rounds == 3


def test_quorum_of_two_aggregators_finalizes_once_both_agree(consortium, sites_and_normalizer):
    # Arrange: k = 2, two independent aggregators over the same ledger.
    publisher, first, admin = consortium
    admin.grant_role(AGGREGATOR_ROLE, "0x" + "c" * 40)
    second = admin.as_sender("0x" + "c" * 40)
    sites, normalizer = sites_and_normalizer
    spec = heart_task_spec(normalization_task=0, rounds=1, aggregator_quorum=2)
    task_id = publisher.publish_task(spec, initial_payload(spec, key=jax.random.key(0)))
    _submit_round(admin, task_id, spec, sites, normalizer, jax.random.key(0))
    results = {}
    waiting = threading.Thread(
        target=lambda: results.setdefault("first", run_round(first, task_id, timeout=20, poll=0.01)))
    # Act
    waiting.start()
    while not admin.read_commits(task_id):
        waiting.join(0.01)
    assert len(admin.read_global_models(task_id)) == 1  # one commit is not final yet
    results["second"] = run_round(second, task_id, timeout=20, poll=0.01)
    waiting.join(20)
    # Assert
    assert results["first"].record.digest == results["second"].record.digest
    assert {c.aggregator for c in admin.read_commits(task_id)} == {first.sender, second.sender}
    assert len(admin.read_global_models(task_id)) == 2
    assert verify_task(admin, task_id).ok


class _ReadsCommits:
    """An aggregator's ledger that signals once it has read the task's commits."""

    def __init__(self, inner) -> None:
        self._inner, self.read = inner, threading.Event()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def read_commits(self, task_id):
        commits = self._inner.read_commits(task_id)
        self.read.set()
        return commits


def test_a_restarted_aggregator_does_not_commit_the_same_version_twice(consortium,
                                                                        sites_and_normalizer):
    # Arrange
    publisher, first, admin = consortium
    admin.grant_role(AGGREGATOR_ROLE, "0x" + "c" * 40)
    second = admin.as_sender("0x" + "c" * 40)
    sites, normalizer = sites_and_normalizer
    spec = heart_task_spec(normalization_task=0, rounds=1, aggregator_quorum=2)
    task_id = publisher.publish_task(spec, initial_payload(spec, key=jax.random.key(0)))
    _submit_round(admin, task_id, spec, sites, normalizer, jax.random.key(0))
    with pytest.raises(ChainTimeoutError, match="quorum"):
        run_round(first, task_id, timeout=0.05, poll=0.01)  # commits, then gives up waiting
    results, deciding = {}, _ReadsCommits(first)
    restarted = threading.Thread(target=lambda: results.setdefault(
        "first", run_round(deciding, task_id, timeout=20, poll=0.01)))
    # Act: the restarted aggregator only waits; the second aggregator finalizes (once the
    # restarted one has seen its own commit, else it would rightly move on to version 2).
    restarted.start()
    assert deciding.read.wait(20)
    results["second"] = run_round(second, task_id, timeout=5, poll=0.01)
    restarted.join(20)
    # Assert
    assert [c.aggregator for c in admin.read_commits(task_id)].count(first.sender) == 1
    assert results["first"].record.version == 1
    assert results["first"].record.digest == results["second"].record.digest
