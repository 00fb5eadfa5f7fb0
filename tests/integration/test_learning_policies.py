"""Learning: robust rules, int8 compression and server optimizers on the real heart task.

Runs the device transforms and ``build_global_model`` (the aggregator's and the auditor's
function) for a few versions; looser thresholds than docs/benchmarks/learning.md (1 seed).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from learning_common import federate, scores, sign_flip, with_options  # noqa: E402
from sim_heart import normalize_sites  # noqa: E402

from fednode.device import load_heart_disease  # noqa: E402
from fednode.tasks import heart_task_spec  # noqa: E402

BASE = heart_task_spec(normalization_task=1, rounds=5, min_updates=4)


@pytest.fixture(scope="module")
def sites():
    return normalize_sites(load_heart_disease())


@pytest.fixture(scope="module")
def clean_accuracy(sites):
    return scores(federate(sites, BASE, seed=0)[0], sites)["pooled_accuracy"]


def test_median_survives_a_poisoned_hospital_that_breaks_fedavg(sites, clean_accuracy) -> None:
    # Arrange: VA Long Beach sends its delta times -10
    attack = sign_flip({3}, -10.0)
    # Act
    naive = scores(federate(sites, BASE, seed=0, attack=attack)[0], sites)
    robust_spec = dataclasses.replace(BASE, aggregation="median")
    robust = scores(federate(sites, robust_spec, seed=0, attack=attack)[0], sites)
    # Assert
    assert naive["pooled_accuracy"] < 0.5
    assert robust["pooled_accuracy"] >= clean_accuracy - 0.08


def test_krum_survives_the_same_attack(sites, clean_accuracy) -> None:
    spec = with_options(dataclasses.replace(BASE, aggregation="krum"),
                      aggregation_params={"num_byzantine": 1})
    robust = scores(federate(sites, spec, seed=0, attack=sign_flip({3}, -10.0))[0], sites)
    assert robust["pooled_accuracy"] >= clean_accuracy - 0.08


def test_int8_updates_cost_at_most_two_points(sites, clean_accuracy) -> None:
    spec = dataclasses.replace(BASE, compression=("int8",))
    params, facts = federate(sites, spec, seed=0)
    assert scores(params, sites)["pooled_accuracy"] >= clean_accuracy - 0.02


def test_fedadagrad_learns_the_task(sites) -> None:
    spec = dataclasses.replace(BASE, server_optimizer="adagrad", server_learning_rate=0.3)
    assert scores(federate(sites, spec, seed=0)[0], sites)["pooled_accuracy"] >= 0.72
