"""Device: federated feature normalization; sites share only counts, sums and sums of squares.

Each site computes ``FeatureStats`` of its train features; ``combine_feature_stats`` adds them
(sequentially, in the given order); ``normalizer_from_stats`` turns the total into the pooled mean
and sample standard deviation, which every site applies with ``normalize``. No row leaves a site.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fednode.errors import FednodeValueError

__all__ = [
    "FeatureStats",
    "Normalizer",
    "combine_feature_stats",
    "compute_feature_stats",
    "normalize",
    "normalizer_from_stats",
]


@dataclass(frozen=True)
class FeatureStats:
    """What a site shares for federated normalization: row count, float64 sums, sums of squares."""

    count: int
    sum: np.ndarray
    sum_sq: np.ndarray


@dataclass(frozen=True)
class Normalizer:
    """Per-feature float32 ``mean`` and ``std`` used by :func:`normalize`."""

    mean: np.ndarray
    std: np.ndarray


def compute_feature_stats(x: np.ndarray) -> FeatureStats:
    """Computes a site's normalization statistics from its train features, in float64.

    Example:
      >>> compute_feature_stats(np.array([[1.0], [3.0]], np.float32)).sum.tolist()
      [4.0]
    """
    x64 = _as_matrix(x).astype(np.float64)
    sums, sums_sq = x64.sum(axis=0), (x64 * x64).sum(axis=0)
    return FeatureStats(count=int(x64.shape[0]), sum=sums, sum_sq=sums_sq)


def combine_feature_stats(stats: Sequence[FeatureStats]) -> FeatureStats:
    """Sums the statistics of several sites, sequentially in the given order.

    Raises:
      FednodeValueError: if ``stats`` is empty or the feature counts differ.

    Example:
      >>> one = compute_feature_stats(np.ones((2, 3), np.float32))
      >>> combine_feature_stats([one, one]).count
      4
    """
    if not stats:
        raise FednodeValueError("combine_feature_stats needs at least one FeatureStats")
    count, total, total_sq = 0, np.zeros_like(stats[0].sum), np.zeros_like(stats[0].sum_sq)
    for item in stats:
        if item.sum.shape != total.shape or item.sum_sq.shape != total.shape:
            raise FednodeValueError(f"feature counts differ: {item.sum.shape} vs {total.shape}")
        count, total, total_sq = count + item.count, total + item.sum, total_sq + item.sum_sq
    return FeatureStats(count=count, sum=total, sum_sq=total_sq)


def normalizer_from_stats(stats: FeatureStats, *, min_std: float = 1e-6) -> Normalizer:
    """Pooled mean and sample standard deviation (``ddof=1``) from combined statistics.

    Features whose standard deviation is below ``min_std`` get a std of 1 (left unscaled).

    Raises:
      FednodeValueError: if fewer than two rows are counted.

    Example:
      >>> norm = normalizer_from_stats(compute_feature_stats(np.array([[1.0], [3.0]])))
      >>> norm.mean.tolist(), round(float(norm.std[0]), 4)
      ([2.0], 1.4142)
    """
    if stats.count < 2:
        raise FednodeValueError(f"need at least 2 rows to normalize, got {stats.count}")
    mean = stats.sum / stats.count
    var = np.maximum(stats.sum_sq - stats.count * mean * mean, 0.0) / (stats.count - 1)
    std = np.sqrt(var)
    std = np.where(std < min_std, 1.0, std)
    return Normalizer(mean=mean.astype(np.float32), std=std.astype(np.float32))


def normalize(x: np.ndarray, normalizer: Normalizer | None) -> np.ndarray:
    """Standardizes features: ``(x - mean) / std`` in float32.

    ``normalizer=None`` means the task does not normalize (the wearable task's raw sensor
    sequences): ``x`` comes back as float32, any shape.

    Raises:
      FednodeValueError: if the feature count does not match the normalizer.

    Example:
      >>> norm = Normalizer(mean=np.array([2.0], np.float32), std=np.array([2.0], np.float32))
      >>> normalize(np.array([[4.0]], np.float32), norm).tolist()
      [[1.0]]
      >>> normalize(np.ones((1, 2, 3)), None).shape
      (1, 2, 3)
    """
    if normalizer is None:
        return np.asarray(x, np.float32)
    matrix = _as_matrix(x).astype(np.float32)
    if matrix.shape[1] != normalizer.mean.shape[0]:
        raise FednodeValueError(
            f"x has {matrix.shape[1]} features, normalizer has {normalizer.mean.shape[0]}"
        )
    return ((matrix - normalizer.mean) / normalizer.std).astype(np.float32)


def _as_matrix(x: np.ndarray) -> np.ndarray:
    matrix = np.asarray(x)
    if matrix.ndim != 2 or matrix.shape[0] < 1:
        raise FednodeValueError(f"expected a non-empty (rows, features) matrix, got {matrix.shape}")
    return matrix
