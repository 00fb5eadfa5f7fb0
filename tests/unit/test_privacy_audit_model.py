"""Auditor: membership inference against a model trained on UCI heart rows, with and without DP.

Members are a random half of the pooled training rows of the 4 hospitals, non-members the other
half (same population). An over-parameterized MLP (64 hidden units, 200 Adam epochs) trained
without DP leaks; the same model trained with example-level DP-SGD at epsilon 1 (delta 1e-5,
RDP accountant) stays inside ``TPR <= e^eps * FPR + delta`` at every threshold (99% DKW slack).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from fednode.auditor.membership import (
    dp_bound_violations,
    empirical_epsilon,
    example_losses,
    loss_threshold_audit,
)
from fednode.device.data import load_heart_disease, normalize, normalizer_from_stats
from fednode.device.model import init_params
from fednode.device.normalization import compute_feature_stats
from fednode.device.train import train_local
from fednode.privacy import dp_steps_per_round, epsilon_spent, noise_for_epsilon
from fednode.tasks import heart_task_spec

pytestmark = pytest.mark.slow

DELTA = 1e-5


@pytest.fixture(scope="module")
def split():
    sites = load_heart_disease()
    x = np.concatenate([s.x_train for s in sites])
    y = np.concatenate([s.y_train for s in sites])
    x = normalize(x, normalizer_from_stats(compute_feature_stats(x)))
    order = np.random.default_rng(0).permutation(len(y))
    members, others = order[: len(y) // 2], order[len(y) // 2:]
    return (x[members], y[members]), (x[others], y[others])


def _spec(epsilon: float | None, num_members: int):
    spec = heart_task_spec(normalization_task=0, model="mlp", hidden_sizes=(64,),
                           local_epochs=200, learning_rate=0.01)
    spec = dataclasses.replace(spec, local_optimizer="adam")
    if epsilon is None:
        return spec
    spec = dataclasses.replace(spec, clip_norm=1.0, dp_unit="example")
    q, steps = dp_steps_per_round(spec, num_members)
    return dataclasses.replace(spec, noise_multiplier=noise_for_epsilon(epsilon, q, steps,
                                                                        delta=DELTA))


def _audit(split, epsilon):
    (xm, ym), (xn, yn) = split
    spec = _spec(epsilon, len(ym))
    params = init_params(jax.random.key(0), model="mlp", num_features=10, hidden_sizes=(64,))
    delta = train_local(params, (xm, ym), key=jax.random.key(1), spec=spec).delta
    trained = jax.tree_util.tree_map(np.add, params, delta)
    return spec, loss_threshold_audit(example_losses(trained, xm, ym),
                                      example_losses(trained, xn, yn))


def test_dp_sgd_model_obeys_the_epsilon_bound_and_leaks_less(split):
    # Arrange / Act
    _, plain = _audit(split, None)
    spec, private = _audit(split, 1.0)
    q, steps = dp_steps_per_round(spec, private.num_members)
    spent = epsilon_spent(spec.noise_multiplier, q, steps, delta=DELTA)
    # Assert
    assert spent <= 1.0 + 1e-3
    assert dp_bound_violations(private, epsilon=spent, delta=DELTA, confidence=0.99) == []
    assert empirical_epsilon(private, delta=DELTA, confidence=0.99) <= spent
    assert plain.auc > 0.6 and plain.advantage > 0.25  # the plain model does leak
    assert private.auc < plain.auc - 0.08 and private.advantage < plain.advantage / 2
    assert private.tpr_at_fpr[0.01] <= np.exp(spent) * 0.01 + DELTA + 0.1
