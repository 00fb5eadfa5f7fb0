"""Device: per-site intercept recalibration of the global model, chosen on train rows only."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fednode.device import apply_model, init_params
from fednode.device.personalize import (
    SiteCalibration,
    calibrate_site,
    fit_intercept_shift,
    personalize,
    shift_intercept,
)
from fednode.errors import FednodeValueError


def _logreg(weight: float = 1.0, bias: float = 0.0) -> dict:
    return {"output": {"kernel": np.full((1, 1), weight, np.float32),
                       "bias": np.full(1, bias, np.float32)}}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@settings(max_examples=50, deadline=None)
@given(logits=st.lists(st.floats(-8, 8), min_size=1, max_size=40), data=st.data())
def test_shift_matches_the_smoothed_local_positive_rate(logits, data) -> None:
    # Arrange
    labels = data.draw(st.lists(st.integers(0, 1), min_size=len(logits), max_size=len(logits)))
    # Act
    shift = fit_intercept_shift(logits, labels)
    # Assert
    target = (sum(labels) + 0.5) / (len(labels) + 1)
    assert np.mean(_sigmoid(np.asarray(logits) + shift)) == pytest.approx(target, abs=1e-9)


def test_all_positive_site_gets_a_finite_shift_that_predicts_positive() -> None:
    z = np.linspace(-2.0, 1.0, 50)
    shift = fit_intercept_shift(z, np.ones(50))
    assert np.isfinite(shift) and np.all(z + shift > 0)


def test_shift_intercept_moves_every_logit_by_the_shift_and_copies(key) -> None:
    # Arrange
    params = init_params(key, model="mlp", num_features=3, hidden_sizes=(4,))
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    # Act
    shifted = shift_intercept(params, 1.25)
    # Assert
    delta = np.asarray(apply_model(shifted, x)) - np.asarray(apply_model(params, x))
    assert np.allclose(delta, 1.25, atol=1e-6)
    assert float(np.asarray(params["output"]["bias"])[0]) == 0.0  # the input is not mutated


def test_a_site_that_matches_the_model_keeps_it_and_a_shifted_site_adopts() -> None:
    # Arrange: features whose sign is the label; a second site with 95% positives
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 1)).astype(np.float32)
    balanced = (x[:, 0] > 0).astype(np.float32)
    skewed = (rng.random(200) < 0.95).astype(np.float32)
    params = _logreg(weight=5.0)
    # Act
    keep = calibrate_site(params, x, balanced, key=jax.random.key(0))
    adopt = calibrate_site(params, x, skewed, key=jax.random.key(0))
    # Assert
    assert not keep.adopted and keep.cv_accuracy_raw == 1.0
    assert adopt.adopted and adopt.cv_accuracy_shifted > adopt.cv_accuracy_raw
    assert personalize(params, keep)["output"]["bias"].tolist() == [0.0]
    assert personalize(params, adopt)["output"]["bias"][0] == pytest.approx(adopt.shift, abs=1e-6)


def test_calibration_is_deterministic_for_a_key() -> None:
    x = np.random.default_rng(2).normal(size=(30, 1)).astype(np.float32)
    y = (np.arange(30) % 3 != 0).astype(np.float32)
    first = calibrate_site(_logreg(), x, y, key=jax.random.key(3), folds=3)
    assert first == calibrate_site(_logreg(), x, y, key=jax.random.key(3), folds=3)


@pytest.mark.parametrize(
    ("logits", "labels", "match"),
    [([], [], "need"), ([0.0, 1.0], [1], "need"), ([0.0], [2], "0 or 1"),
     ([np.nan], [1], "finite")],
)
def test_bad_inputs_are_refused(logits, labels, match) -> None:
    with pytest.raises(FednodeValueError, match=match):
        fit_intercept_shift(logits, labels)


def test_multiclass_models_and_bad_folds_are_refused(key) -> None:
    cnn = init_params(key, model="cnn1d", num_features=2, hidden_sizes=(3,), num_classes=4)
    with pytest.raises(FednodeValueError, match="binary"):
        shift_intercept(cnn, 1.0)
    with pytest.raises(FednodeValueError, match="finite"):
        shift_intercept(_logreg(), float("inf"))
    with pytest.raises(FednodeValueError, match="folds"):
        calibrate_site(_logreg(), np.zeros((3, 1), np.float32), np.ones(3), key=key, folds=4)


def test_a_not_adopted_calibration_returns_the_global_model() -> None:
    params = _logreg(bias=0.5)
    out = personalize(params, SiteCalibration(3.0, False, 0.9, 0.8))
    assert out["output"]["bias"].tolist() == [0.5]
