"""Auditor: the loss-threshold membership-inference audit on synthetic losses (pure, fast)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fednode.auditor.membership import (
    dp_bound_violations,
    empirical_epsilon,
    loss_threshold_audit,
    sampling_slack,
)


def test_identical_loss_distributions_give_a_chance_level_attack():
    # Arrange
    rng = np.random.default_rng(0)
    members, others = rng.exponential(size=4000), rng.exponential(size=4000)
    # Act
    audit = loss_threshold_audit(members, others, fpr_levels=(0.01, 0.1))
    # Assert
    assert abs(audit.auc - 0.5) < 0.03
    assert abs(audit.tpr_at_fpr[0.1] - 0.1) < 0.03
    assert dp_bound_violations(audit, epsilon=0.1, delta=1e-5, confidence=0.99) == []


def test_separated_losses_are_caught_at_zero_false_positives():
    # Arrange
    members, others = np.linspace(0.0, 0.4, 50), np.linspace(0.5, 1.0, 50)
    # Act
    audit = loss_threshold_audit(members, others, fpr_levels=(0.0,))
    # Assert
    assert audit.tpr_at_fpr[0.0] == 1.0 and audit.auc == 1.0 and audit.advantage == 1.0
    assert dp_bound_violations(audit, epsilon=0.5, delta=1e-5, confidence=0.99)
    assert empirical_epsilon(audit, delta=1e-5) == math.inf


def test_roc_curve_runs_from_origin_to_one_one_monotonically():
    # Arrange
    rng = np.random.default_rng(1)
    # Act
    audit = loss_threshold_audit(rng.normal(0.0, 1.0, 300), rng.normal(0.5, 1.0, 200))
    # Assert
    assert (audit.fpr[0], audit.tpr[0]) == (0.0, 0.0)
    assert (audit.fpr[-1], audit.tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(audit.fpr) >= 0) and np.all(np.diff(audit.tpr) >= 0)
    assert (audit.num_members, audit.num_nonmembers) == (300, 200)
    assert 0.6 < audit.auc < 0.75


def test_a_mild_leak_is_within_a_loose_epsilon_and_outside_a_tight_one():
    # Arrange: members' losses shifted down by half a standard deviation
    rng = np.random.default_rng(2)
    audit = loss_threshold_audit(rng.normal(0.0, 1.0, 20000), rng.normal(0.5, 1.0, 20000))
    # Act
    found = empirical_epsilon(audit, delta=1e-5, confidence=0.99)
    # Assert
    assert dp_bound_violations(audit, epsilon=found + 0.05, delta=1e-5, confidence=0.99) == []
    assert dp_bound_violations(audit, epsilon=0.05, delta=1e-5, confidence=0.99)
    assert 0.1 < found < 3.0


def test_sampling_slack_shrinks_with_more_records():
    assert sampling_slack(10_000) < sampling_slack(100) < sampling_slack(10)


@pytest.mark.parametrize("members, others, levels", [([], [1.0], (0.1,)),
                                                     ([np.nan], [1.0], (0.1,)),
                                                     ([1.0], [1.0], (1.5,))])
def test_bad_input_is_refused(members, others, levels):
    with pytest.raises(ValueError):
        loss_threshold_audit(members, others, fpr_levels=levels)
