"""Learning: the wearable task (1D-CNN on BasicMotions) federated through the round loop.

Four class-skewed wearables train locally, submit deltas to an ``InMemoryLedger``,
``run_round`` commits each version, and the auditor recomputes every one from the ledger.
No chain nodes: a few seconds on two cores.
"""

from __future__ import annotations

import jax
import pytest

from fednode.aggregator.round import run_round
from fednode.auditor.replay import verify_task
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import decode_params, encode_params
from fednode.device import evaluate, pool_test_sets, train_local
from fednode.device.wearable import wearable_sites
from fednode.tasks import initial_payload, wearable_task_spec
from fednode.types import TaskState

EDGES = [f"0x{i:040x}" for i in range(1, 5)]
ROUNDS = 4


@pytest.fixture(scope="module")
def sites():
    return wearable_sites(num_wearables=len(EDGES))


@pytest.fixture
def consortium():
    admin = InMemoryLedger()
    for index, edge in enumerate(EDGES):
        admin.register_edge(edge, f"0x{index + 100:040x}", f"edge-{index + 1}")
    admin.grant_role(PUBLISHER_ROLE, "0x" + "a" * 40)
    admin.grant_role(AGGREGATOR_ROLE, "0x" + "b" * 40)
    return admin.as_sender("0x" + "a" * 40), admin.as_sender("0x" + "b" * 40), admin


def _submit_round(admin, task_id, spec, sites, key) -> None:
    latest = admin.read_global_models(task_id)[-1]
    params = decode_params(latest.payload)
    for edge, site, site_key in zip(EDGES, sites, jax.random.split(key, len(sites)), strict=True):
        update = train_local(params, site.train, key=site_key, spec=spec)
        admin.as_sender(edge).submit_update(task_id, latest.version, encode_params(update.delta),
                                            num_examples=update.num_examples)


def test_wearable_cnn_trains_federated_and_the_auditor_recomputes_it(consortium, sites):
    # Arrange
    publisher, aggregator, admin = consortium
    spec = wearable_task_spec(rounds=ROUNDS, min_updates=len(EDGES))
    task_id = publisher.publish_task(spec, initial_payload(spec, key=jax.random.key(0)))
    x_test, y_test = pool_test_sets(sites)
    before = evaluate(decode_params(admin.read_global_models(task_id)[0].payload), x_test, y_test)
    # Act
    for round_index in range(ROUNDS):
        _submit_round(admin, task_id, spec, sites, jax.random.key(round_index + 1))
        run_round(aggregator, task_id, timeout=1)
    final = decode_params(admin.read_global_models(task_id)[-1].payload)
    after = evaluate(final, x_test, y_test)
    report = verify_task(admin, task_id)
    # Assert
    assert admin.get_task(task_id).state == TaskState.FINISHED
    assert report.ok and [v.version for v in report.verdicts] == list(range(ROUNDS + 1))
    assert after.num_examples == 40
    assert after.accuracy >= 0.8 > before.accuracy
