"""Device: evaluation metrics (accuracy, ROC AUC with ties, log loss) in pure numpy.

Scores are logits (or any monotone score); accuracy thresholds logits at 0, that is a
probability of 0.5. ROC AUC is the Mann-Whitney statistic with average ranks for ties, which
equals the trapezoidal area under the ROC curve; it is NaN when only one class is present
(Switzerland's test set is all positive).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fednode.device.model import apply_model
from fednode.errors import FednodeValueError

__all__ = ["Evaluation", "accuracy", "evaluate", "log_loss", "roc_auc"]


@dataclass(frozen=True)
class Evaluation:
    """Metrics of a model on one labelled set; ``auc`` is NaN for a single-class set."""

    accuracy: float
    auc: float
    loss: float
    num_examples: int


def accuracy(labels: Any, logits: Any) -> float:
    """Share of rows whose logit sign matches the 0/1 label (logit 0 counts as negative).

    Example:
      >>> accuracy([1, 0, 1, 0], [2.0, -1.0, -0.5, 0.0])
      0.75
    """
    y, scores = _check(labels, logits)
    return float(np.mean((scores > 0.0) == (y == 1.0)))


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve; tied scores count one half. NaN if one class is absent.

    Example:
      >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
      0.75
      >>> roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])
      0.5
    """
    y, values = _check(labels, scores)
    num_pos = int(np.count_nonzero(y == 1.0))
    num_neg = y.shape[0] - num_pos
    if num_pos == 0 or num_neg == 0:
        return float("nan")
    ranks = _average_ranks(values)
    rank_sum = float(np.sum(ranks[y == 1.0]))
    return (rank_sum - num_pos * (num_pos + 1) / 2.0) / (num_pos * num_neg)


def log_loss(labels: Any, logits: Any) -> float:
    """Mean binary cross-entropy of logits, computed stably in float64.

    Example:
      >>> round(log_loss([1, 0], [0.0, 0.0]), 4)
      0.6931
    """
    y, z = _check(labels, logits)
    losses = np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return float(np.mean(losses))


def evaluate(params: Any, x: Any, y: Any) -> Evaluation:
    """Runs the model on ``x`` and scores it against 0/1 labels ``y``.

    Example:
      >>> import jax
      >>> from fednode.device.model import init_params
      >>> p = init_params(jax.random.key(0), model="logreg", num_features=2)
      >>> evaluate(p, np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])).accuracy
      0.5
    """
    logits = np.asarray(apply_model(params, np.asarray(x, np.float32)))
    return Evaluation(
        accuracy=accuracy(y, logits),
        auc=roc_auc(y, logits),
        loss=log_loss(y, logits),
        num_examples=int(logits.shape[0]),
    )


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], sorted_values.shape[0]]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends, averaged
    ranks = np.empty(values.shape[0], np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _check(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, np.float64).reshape(-1)
    values = np.asarray(scores, np.float64).reshape(-1)
    if y.shape != values.shape or y.shape[0] == 0:
        raise FednodeValueError(
            f"labels and scores must have equal, non-zero length: {y.shape}, {values.shape}"
        )
    if not np.all((y == 0.0) | (y == 1.0)):
        raise FednodeValueError("labels must be 0 or 1")
    if not np.all(np.isfinite(values)):
        raise FednodeValueError("scores must be finite")
    return y, values
