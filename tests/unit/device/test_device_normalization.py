"""Device: federated feature normalization from counts, sums and sums of squares."""

from __future__ import annotations

import numpy as np
import pytest

from fednode.device.normalization import (
    FeatureStats,
    Normalizer,
    combine_feature_stats,
    compute_feature_stats,
    normalize,
    normalizer_from_stats,
)
from fednode.errors import FednodeValueError


def _parts() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(50.0, 10.0, size=(n, 3)).astype(np.float32) for n in (40, 7, 25)]


def test_combined_stats_equal_pooled_mean_and_std() -> None:
    # Arrange
    parts = _parts()
    pooled = np.concatenate(parts).astype(np.float64)
    # Act
    norm = normalizer_from_stats(combine_feature_stats([compute_feature_stats(p) for p in parts]))
    # Assert
    assert np.allclose(norm.mean, pooled.mean(axis=0), rtol=1e-6)
    assert np.allclose(norm.std, pooled.std(axis=0, ddof=1), rtol=1e-5)
    assert norm.mean.dtype == norm.std.dtype == np.float32


def test_normalized_pooled_data_has_zero_mean_unit_std() -> None:
    # Arrange
    parts = _parts()
    norm = normalizer_from_stats(combine_feature_stats([compute_feature_stats(p) for p in parts]))
    # Act
    z = np.concatenate([normalize(p, norm) for p in parts])
    # Assert
    assert z.dtype == np.float32
    assert np.allclose(z.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(z.std(axis=0, ddof=1), 1.0, atol=1e-5)


def test_constant_feature_is_left_unscaled() -> None:
    # Act
    norm = normalizer_from_stats(compute_feature_stats(np.full((4, 1), 7.0, np.float32)))
    # Assert
    assert norm.std.tolist() == [1.0]
    assert normalize(np.array([[7.0]], np.float32), norm).tolist() == [[0.0]]


def test_stats_hold_counts_and_float64_sums() -> None:
    # Act
    stats = compute_feature_stats(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    # Assert
    assert stats == FeatureStats(count=2, sum=stats.sum, sum_sq=stats.sum_sq)
    assert stats.sum.tolist() == [4.0, 6.0] and stats.sum_sq.tolist() == [10.0, 20.0]
    assert stats.sum.dtype == np.float64


def test_combine_rejects_empty_and_mismatched_stats() -> None:
    # Arrange
    two = compute_feature_stats(np.ones((2, 2), np.float32))
    three = compute_feature_stats(np.ones((2, 3), np.float32))
    # Act / Assert
    with pytest.raises(FednodeValueError):
        combine_feature_stats([])
    with pytest.raises(FednodeValueError, match="feature counts differ"):
        combine_feature_stats([two, three])


def test_normalizer_needs_two_rows() -> None:
    with pytest.raises(FednodeValueError, match="at least 2 rows"):
        normalizer_from_stats(compute_feature_stats(np.ones((1, 2), np.float32)))


def test_normalize_rejects_wrong_feature_count() -> None:
    # Arrange
    norm = Normalizer(mean=np.zeros(3, np.float32), std=np.ones(3, np.float32))
    # Act / Assert
    with pytest.raises(FednodeValueError, match="features"):
        normalize(np.ones((2, 2), np.float32), norm)
    with pytest.raises(FednodeValueError, match="matrix"):
        normalize(np.ones(3, np.float32), norm)
