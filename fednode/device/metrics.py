"""Device: evaluation metrics (accuracy, ROC AUC with ties, log loss) in pure numpy.

Scores are logits (or any monotone score); accuracy thresholds logits at 0, that is a
probability of 0.5. ROC AUC is the Mann-Whitney statistic with average ranks for ties, which
equals the trapezoidal area under the ROC curve; it is NaN when only one class is present
(Switzerland's test set is all positive). A multiclass model (``(n, classes)`` logits, class
index labels) is scored by argmax accuracy and softmax cross-entropy; its ``auc`` is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fednode.device.model import apply_model
from fednode.errors import FednodeValueError

__all__ = [
    "Evaluation", "accuracy", "evaluate", "log_loss", "multiclass_accuracy",
    "roc_auc", "softmax_log_loss",
]


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


def multiclass_accuracy(labels: Any, logits: Any) -> float:
    """Share of rows whose argmax logit is the class-index label (ties go to the lower class).

    Example:
      >>> multiclass_accuracy([0, 2], [[1.0, 0.0, 0.5], [0.0, 3.0, 1.0]])
      0.5
    """
    y, z = _check_multiclass(labels, logits)
    return float(np.mean(np.argmax(z, axis=1) == y))


def softmax_log_loss(labels: Any, logits: Any) -> float:
    """Mean softmax cross-entropy of ``(n, classes)`` logits against class indices, in float64.

    Example:
      >>> round(softmax_log_loss([1], [[0.0, 0.0, 0.0, 0.0]]), 4)
      1.3863
    """
    y, z = _check_multiclass(labels, logits)
    shifted = z - np.max(z, axis=1, keepdims=True)
    log_norm = np.log(np.sum(np.exp(shifted), axis=1))
    return float(np.mean(log_norm - shifted[np.arange(y.shape[0]), y]))


def evaluate(params: Any, x: Any, y: Any) -> Evaluation:
    """Runs the model on ``x`` and scores it against 0/1 labels ``y`` (class indices if the
    model is multiclass; then ``auc`` is NaN).

    Example:
      >>> import jax
      >>> from fednode.device.model import init_params
      >>> p = init_params(jax.random.key(0), model="logreg", num_features=2)
      >>> evaluate(p, np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])).accuracy
      0.5
    """
    logits = np.asarray(apply_model(params, np.asarray(x, np.float32)))
    if logits.ndim == 2:
        return Evaluation(
            accuracy=multiclass_accuracy(y, logits),
            auc=float("nan"),
            loss=softmax_log_loss(y, logits),
            num_examples=int(logits.shape[0]),
        )
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


def _check_multiclass(labels: Any, logits: Any) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, np.float64)
    y_float = np.asarray(labels, np.float64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y_float.shape[0] or z.shape[0] == 0:
        raise FednodeValueError(
            f"need (n, classes) logits and n labels: {z.shape}, {y_float.shape}"
        )
    if not np.all((y_float == np.round(y_float)) & (y_float >= 0) & (y_float < z.shape[1])):
        raise FednodeValueError(f"labels must be class indices in [0, {z.shape[1]})")
    if not np.all(np.isfinite(z)):
        raise FednodeValueError("scores must be finite")
    return y_float.astype(np.int64), z
