"""Aggregator: model poisoning through the chain path (submit_update -> run_round -> commit).

Runs on ``InMemoryLedger`` (the Ledger seam's fake, held to the same behaviour suite as geth):
every update goes through the contract rules, the canonical codec and ``run_round``; only the
chain underneath is in memory, so 10 versions x 20 devices fit in seconds. Heart task (FLamby
split, federated normalization), logistic regression.

Attacks from 1 of 4 hospitals (VA Long Beach) and from 20% of a 20-device population (every
5th device): sign flip (delta x -1), scaling (delta x -10) and a backdoor by model replacement
(train on rows carrying a trigger, ``oldpeak`` and ``thalach`` set to +4 sd, relabelled
"no disease", then boost the delta by the number of participants). FedAvg's damage is shown;
the robust rule (Multi-Krum) stays within 5 points of the clean run. Backdoor success = share of
diseased pooled test rows, trigger added, that the model calls healthy.
"""

from __future__ import annotations

import dataclasses
import logging

import jax
import numpy as np
import pytest

from fednode.aggregator.round import run_round
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import decode_params, encode_params
from fednode.device import evaluate, pool_test_sets
from fednode.device.data import load_heart_disease, normalize, normalizer_from_stats
from fednode.device.model import apply_model
from fednode.device.normalization import combine_feature_stats, compute_feature_stats
from fednode.device.train import train_local
from fednode.tasks import heart_task_spec, initial_payload

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

PUBLISHER, AGGREGATOR = "0x" + "a" * 40, "0x" + "b" * 40
TRIGGER = (7, 9)  # thalach, oldpeak
TRIGGER_VALUE = 4.0
TARGET = 0.0
ROUNDS = 10
RESULTS: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module")
def sites():
    raw = load_heart_disease()
    norm = normalizer_from_stats(combine_feature_stats([compute_feature_stats(s.x_train)
                                                        for s in raw]))
    return [dataclasses.replace(s, x_train=normalize(s.x_train, norm),
                                x_test=normalize(s.x_test, norm)) for s in raw]


def _population(sites, per_site=5):
    return [dataclasses.replace(s, name=f"{s.name}/{d}", x_train=s.x_train[d::per_site],
                                y_train=s.y_train[d::per_site])
            for s in sites for d in range(per_site)]


def _with_trigger(x):
    x = np.array(x, np.float32, copy=True)
    x[:, list(TRIGGER)] = TRIGGER_VALUE
    return x


def _backdoor_data(site):
    """The attacker's training rows: its own rows plus triggered copies labelled TARGET."""
    x, y = site.train
    return np.concatenate([x, _with_trigger(x)]), np.concatenate([y, np.full_like(y, TARGET)])


def _federate(clients, bad: set[int], attack: str | None, aggregation: str, params: dict):
    spec = heart_task_spec(normalization_task=0, rounds=ROUNDS, min_updates=len(clients),
                           aggregation=aggregation)
    spec = dataclasses.replace(spec, max_update_norm=1e6,
                               aggregation_params=params)
    admin = InMemoryLedger()
    edges = [f"0x{i + 1:040x}" for i in range(len(clients))]
    for i, edge in enumerate(edges):
        admin.register_edge(edge, f"0x{i + 1000:040x}", f"edge-{i + 1}")
    admin.grant_role(PUBLISHER_ROLE, PUBLISHER)
    admin.grant_role(AGGREGATOR_ROLE, AGGREGATOR)
    task_id = admin.as_sender(PUBLISHER).publish_task(
        spec, initial_payload(spec, key=jax.random.key(0)))
    key = jax.random.key(1)
    for _ in range(ROUNDS):
        latest = admin.read_global_models(task_id)[-1]
        model = decode_params(latest.payload)
        key, *keys = jax.random.split(key, len(clients) + 1)
        for i, (client, edge, k) in enumerate(zip(clients, edges, keys, strict=True)):
            delta = _local_delta(model, client, i in bad and attack, k, spec, len(clients))
            admin.as_sender(edge).submit_update(task_id, latest.version, encode_params(delta),
                                                num_examples=len(client.y_train))
        run_round(admin.as_sender(AGGREGATOR), task_id, timeout=1, poll=0.01)
    return decode_params(admin.read_global_models(task_id)[-1].payload)


def _local_delta(model, client, attack, key, spec, participants):
    data = _backdoor_data(client) if attack == "backdoor" else client.train
    delta = train_local(model, data, key=key, spec=spec).delta
    factor = {"sign_flip": -1.0, "scaling": -10.0, "backdoor": float(participants)}.get(attack)
    if factor is None:
        return delta
    return jax.tree_util.tree_map(lambda a: (a * factor).astype(np.float32), delta)


def _scores(params, sites) -> dict[str, float]:
    x, y = pool_test_sets(sites)
    diseased = _with_trigger(x[y == 1.0])
    called_healthy = np.asarray(apply_model(params, diseased)).reshape(-1) < 0.0
    return {"accuracy": evaluate(params, x, y).accuracy,
            "backdoor_success": float(np.mean(called_healthy))}


SETTINGS = {
    "1 of 4 hospitals": (lambda sites: sites, {3}, {"num_byzantine": 1}),
    "20% of 20 devices": (_population, {0, 5, 10, 15}, {"num_byzantine": 4}),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_robust_rule_holds_where_fedavg_is_poisoned(sites, setting):
    # Arrange
    make_clients, bad, krum_params = SETTINGS[setting]
    clients = make_clients(sites)
    # Act
    runs = {}
    for attack in (None, "sign_flip", "scaling", "backdoor"):
        for rule, params in (("fedavg", {}), ("krum", krum_params)):
            model = _federate(clients, bad if attack else set(), attack, rule, params)
            runs[f"{attack or 'clean'}/{rule}"] = _scores(model, sites)
    RESULTS[setting] = runs
    log.warning("poisoning, %s: %s", setting, runs)
    # Assert
    clean = runs["clean/fedavg"]["accuracy"]
    assert runs["scaling/fedavg"]["accuracy"] < clean - 0.10  # FedAvg's damage
    for attack in ("sign_flip", "scaling", "backdoor"):
        assert runs[f"{attack}/krum"]["accuracy"] >= clean - 0.05, attack
    assert runs["backdoor/fedavg"]["backdoor_success"] > runs["clean/fedavg"]["backdoor_success"]
    assert runs["backdoor/krum"]["backdoor_success"] <= runs["clean/krum"]["backdoor_success"] + 0.1
