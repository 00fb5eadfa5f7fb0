"""Device: accuracy, ROC AUC (ties, single class) and evaluate."""

from __future__ import annotations

import itertools
import math

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fednode.device.metrics import Evaluation, accuracy, evaluate, log_loss, roc_auc
from fednode.device.model import init_params
from fednode.errors import FednodeValueError


def _pairwise_auc(labels: list[int], scores: list[float]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_accuracy_thresholds_logits_at_zero() -> None:
    assert accuracy([1, 0, 1, 0], [0.1, -0.1, 0.0, 0.0]) == 0.75  # logit 0 counts as negative


def test_auc_of_perfect_and_reversed_rankings() -> None:
    assert roc_auc([0, 0, 1, 1], [1.0, 2.0, 3.0, 4.0]) == 1.0
    assert roc_auc([0, 0, 1, 1], [4.0, 3.0, 2.0, 1.0]) == 0.0


def test_auc_counts_ties_as_one_half() -> None:
    assert roc_auc([0, 1, 1, 0], [0.3, 0.3, 0.9, 0.1]) == pytest.approx(0.875)


def test_auc_is_nan_with_one_class() -> None:
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))


@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(-3, 3)), min_size=2, max_size=40).filter(
        lambda rows: len({y for y, _ in rows}) == 2
    )
)
def test_auc_equals_pairwise_comparison(rows: list[tuple[int, int]]) -> None:
    # Arrange: small integer scores force many ties
    labels = [y for y, _ in rows]
    scores = [float(s) for _, s in rows]
    # Act / Assert
    assert roc_auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores))


def test_log_loss_is_stable_for_large_logits() -> None:
    # Act
    loss = log_loss([1, 0], [1000.0, -1000.0])
    wrong = log_loss([0], [1000.0])
    # Assert
    assert loss == 0.0 and wrong == pytest.approx(1000.0)


def test_evaluate_runs_the_model(key: jax.Array) -> None:
    # Arrange
    params = init_params(key, model="logreg", num_features=2)
    params["output"]["kernel"] = np.array([[1.0], [0.0]], np.float32)
    x = np.array([[2.0, 5.0], [-1.0, 5.0], [0.5, 0.0], [-3.0, 1.0]], np.float32)
    # Act
    result = evaluate(params, x, np.array([1, 0, 0, 0]))
    # Assert
    assert result == Evaluation(accuracy=0.75, auc=1.0, loss=result.loss, num_examples=4)
    assert 0.0 < result.loss < 1.0


@pytest.mark.parametrize(
    ("labels", "scores", "match"),
    [
        ([0, 1], [0.5], "equal, non-zero length"),
        ([], [], "equal, non-zero length"),
        ([0, 2], [0.1, 0.2], "labels must be 0 or 1"),
        ([0, 1], [0.1, float("nan")], "finite"),
    ],
)
def test_metrics_reject_bad_input(labels: list, scores: list, match: str) -> None:
    with pytest.raises(FednodeValueError, match=match):
        roc_auc(labels, scores)
