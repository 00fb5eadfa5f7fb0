"""Aggregator: an aggregator crash and a device dropout in the middle of a round.

These run on ``InMemoryLedger`` (the Ledger seam's fake, held to the same behaviour suite as the
geth-backed ledger): ``run_round`` only reaches the chain through that seam, and the chain-side
faults are covered on geth in ``test_faults_geth.py``.

* The aggregator dies while waiting for updates and again after building but before committing;
  a fresh one resumes from the ledger alone and commits the same digests as an uninterrupted run
  (with FedAdam, whose server moments must be replayed from the ledger).
* One of 4 hospitals drops out: a sync task times out with a clear ``ChainTimeoutError``; an
  async task (FedBuff, K = 3) keeps committing versions and converges.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from fednode.aggregator.round import run_round
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import decode_params, encode_params
from fednode.device import evaluate, pool_test_sets
from fednode.device.data import load_heart_disease, normalize, normalizer_from_stats
from fednode.device.normalization import combine_feature_stats, compute_feature_stats
from fednode.device.train import train_local
from fednode.errors import ChainTimeoutError
from fednode.tasks import heart_task_spec, initial_payload
from fednode.types import TaskState

EDGES = [f"0x{i:040x}" for i in range(1, 5)]
PUBLISHER, AGGREGATOR = "0x" + "a" * 40, "0x" + "b" * 40


class AggregatorCrash(Exception):
    """Stands in for the aggregator process dying at a given point."""


def _consortium():
    admin = InMemoryLedger()
    for index, edge in enumerate(EDGES):
        admin.register_edge(edge, f"0x{index + 100:040x}", f"edge-{index + 1}")
    admin.grant_role(PUBLISHER_ROLE, PUBLISHER)
    admin.grant_role(AGGREGATOR_ROLE, AGGREGATOR)
    return admin


@pytest.fixture(scope="module")
def sites():
    raw = load_heart_disease()
    norm = normalizer_from_stats(combine_feature_stats([compute_feature_stats(s.x_train)
                                                        for s in raw]))
    return [dataclasses.replace(s, x_train=normalize(s.x_train, norm),
                                x_test=normalize(s.x_test, norm)) for s in raw]


def _submit(ledger, task_id, spec, sites, edges, key):
    latest = ledger.read_global_models(task_id)[-1]
    params = decode_params(latest.payload)
    for edge, site, k in zip(edges, sites, jax.random.split(key, len(edges)), strict=False):
        update = train_local(params, site.train, key=k, spec=spec)
        ledger.as_sender(edge).submit_update(task_id, latest.version,
                                             encode_params(update.delta),
                                             num_examples=update.num_examples)


def _publish(ledger, spec):
    payload = initial_payload(spec, key=jax.random.key(0))
    return ledger.as_sender(PUBLISHER).publish_task(spec, payload)


def _adam_spec():
    return heart_task_spec(normalization_task=0, rounds=4, server_optimizer="adam",
                           server_learning_rate=0.1)


def _uninterrupted_digests(spec, sites) -> list[bytes]:
    ledger = _consortium()
    task_id = _publish(ledger, spec)
    for version in range(spec.rounds):
        _submit(ledger, task_id, spec, sites, EDGES, jax.random.key(version))
        run_round(ledger.as_sender(AGGREGATOR), task_id, timeout=1, poll=0.01)
    return [r.digest for r in ledger.read_global_models(task_id)]


class _CrashingLedger:
    """The aggregator's ledger view whose process 'dies' right before a commit lands."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def commit_global_model(self, *args, **kwargs):
        raise AggregatorCrash("killed between aggregation and commit")


def test_restarted_aggregator_resumes_from_the_ledger_with_identical_digests(sites):
    # Arrange
    spec = _adam_spec()
    expected = _uninterrupted_digests(spec, sites)
    ledger = _consortium()
    task_id = _publish(ledger, spec)
    # Act
    for version in range(spec.rounds):
        _submit(ledger, task_id, spec, sites, EDGES[:2], jax.random.key(version))
        with pytest.raises(ChainTimeoutError):  # dies while only 2 of 4 updates are in
            run_round(ledger.as_sender(AGGREGATOR), task_id, timeout=0.05, poll=0.01)
        _submit_rest(ledger, task_id, spec, sites, version)
        with pytest.raises(AggregatorCrash):
            run_round(_CrashingLedger(ledger.as_sender(AGGREGATOR)), task_id, timeout=1, poll=0.01)
        run_round(ledger.as_sender(AGGREGATOR), task_id, timeout=1, poll=0.01)  # restarted
    # Assert
    assert [r.digest for r in ledger.read_global_models(task_id)] == expected
    assert ledger.get_task(task_id).state == TaskState.FINISHED


def _submit_rest(ledger, task_id, spec, sites, version):
    """The last two hospitals' updates for ``version``, trained with the same keys as before."""
    latest = ledger.read_global_models(task_id)[-1]
    params = decode_params(latest.payload)
    keys = jax.random.split(jax.random.key(version), len(EDGES))
    for index in (2, 3):
        update = train_local(params, sites[index].train, key=keys[index], spec=spec)
        ledger.as_sender(EDGES[index]).submit_update(
            task_id, latest.version, encode_params(update.delta), num_examples=update.num_examples)


def test_sync_round_with_a_dropped_device_times_out_with_a_clear_status(sites):
    # Arrange
    spec = heart_task_spec(normalization_task=0, rounds=3)
    ledger = _consortium()
    task_id = _publish(ledger, spec)
    _submit(ledger, task_id, spec, sites, EDGES[:3], jax.random.key(0))  # Switzerland dropped
    # Act
    with pytest.raises(ChainTimeoutError) as timed_out:
        run_round(ledger.as_sender(AGGREGATOR), task_id, timeout=0.3, poll=0.05)
    # Assert
    assert str(timed_out.value) == (
        f"task {task_id} version 1: unconsumed updates of 3/4 distinct edges (valid ones "
        "needed) after 0s, cut-off not fixed"
    )
    assert ledger.get_task(task_id).latest_version == 0
    assert ledger.get_task(task_id).state == TaskState.OPEN


def test_async_task_converges_without_the_dropped_device(sites):
    # Arrange
    spec = heart_task_spec(normalization_task=0, rounds=10, min_updates=3, mode="async",
                           max_staleness=1)
    ledger = _consortium()
    task_id = _publish(ledger, spec)
    live = [EDGES[i] for i in (0, 1, 3)]
    live_sites = [sites[i] for i in (0, 1, 3)]  # Switzerland dropped out for good
    # Act
    for version in range(spec.rounds):
        _submit(ledger, task_id, spec, live_sites, live, jax.random.key(version))
        run_round(ledger.as_sender(AGGREGATOR), task_id, timeout=1, poll=0.01)
    # Assert
    final = decode_params(ledger.read_global_models(task_id)[-1].payload)
    pooled = evaluate(final, *pool_test_sets(sites))
    assert ledger.get_task(task_id).state == TaskState.FINISHED
    assert pooled.accuracy > 0.75
    assert np.isfinite(pooled.auc) and pooled.auc > 0.8
