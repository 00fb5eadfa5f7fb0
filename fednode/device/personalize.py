"""Device: per-site personalization of the final global model with local training rows only.

A hospital whose case mix differs from the consortium's (Switzerland: 98% positive) can adapt
the federated model without sending anything: *recalibration in the large* (Steyerberg,
"Clinical Prediction Models", ch. 20: updating the intercept) shifts the output bias so that the
mean predicted risk on the site's own training rows equals the site's own (Laplace-smoothed)
positive rate. The shift is one number, fitted by bisection in float64, deterministic.

Whether a site adopts it is decided on its *training* split only (``calibrate_site``): k-fold
cross-validation over the train rows, the shift fitted on k-1 folds and scored on the held-out
fold, adopted only if the cross-validated accuracy beats the unshifted model's. The test split
is never read. ``calibrate_site`` / ``personalize`` are the init / apply pair.
Binary models only (``logreg``, ``mlp``: logits ``(n,)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from fednode.device.model import apply_model
from fednode.errors import FednodeValueError

__all__ = [
    "SiteCalibration",
    "calibrate_site",
    "fit_intercept_shift",
    "personalize",
    "shift_intercept",
]

_SHIFT_BOUND = 30.0
_BISECTION_STEPS = 80


class SiteCalibration(NamedTuple):
    """A site's personalization: the fitted shift and the train-only evidence for adopting it.

    Attributes:
      shift: intercept shift fitted on all of the site's train rows.
      adopted: whether cross-validated accuracy favoured the shift (else ``personalize`` is a
        no-op).
      cv_accuracy_raw: k-fold accuracy of the unshifted model on the train rows.
      cv_accuracy_shifted: k-fold accuracy with the shift refitted on each fold's complement.
    """

    shift: float
    adopted: bool
    cv_accuracy_raw: float
    cv_accuracy_shifted: float


def fit_intercept_shift(logits: Any, labels: Any) -> float:
    """The shift ``s`` with ``mean(sigmoid(logits + s)) = (positives + 0.5) / (n + 1)``.

    The Laplace-smoothed target keeps ``s`` finite when every label is the same.

    Raises:
      FednodeValueError: on empty, mismatched, non-binary or non-finite inputs.

    Example:
      >>> round(fit_intercept_shift([0.0, 0.0, 0.0], [1, 1, 0]), 4)
      0.5108
    """
    z, y = _binary_inputs(logits, labels)
    target = (float(y.sum()) + 0.5) / (y.size + 1.0)
    low, high = -_SHIFT_BOUND, _SHIFT_BOUND
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2.0
        if float(np.mean(_sigmoid(z + middle))) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def shift_intercept(params: Mapping[str, Any], shift: float) -> dict[str, Any]:
    """A copy of ``params`` whose output bias is increased by ``shift`` (float32).

    Raises:
      FednodeValueError: if the model has no binary ``output.bias`` of shape ``(1,)``.

    Example:
      >>> p = {"output": {"kernel": np.zeros((2, 1), np.float32), "bias": np.zeros(1, np.float32)}}
      >>> shift_intercept(p, 0.5)["output"]["bias"].tolist()
      [0.5]
    """
    output = params.get("output")
    bias = None if not isinstance(output, Mapping) else output.get("bias")
    if bias is None or np.shape(bias) != (1,):
        raise FednodeValueError("intercept recalibration needs a binary model (output.bias (1,))")
    if not math.isfinite(shift):
        raise FednodeValueError(f"shift must be finite, got {shift}")
    new_bias = (np.asarray(bias, np.float64) + shift).astype(np.float32)
    return {**params, "output": {**output, "bias": new_bias}}


def calibrate_site(
    params: Mapping[str, Any], x_train: Any, y_train: Any, *, key: jax.Array, folds: int = 5
) -> SiteCalibration:
    """Fits the intercept shift on a site's train rows and decides, by k-fold CV, to adopt it.

    Args:
      params: the final global model (binary).
      x_train: the site's own training features (already normalized like the model's input).
      y_train: the site's own 0/1 training labels.
      key: PRNG key for the fold assignment.
      folds: number of cross-validation folds (2 .. number of rows).

    Returns:
      The shift fitted on all train rows and whether CV accuracy favoured it (strictly).

    Raises:
      FednodeValueError: on a non-binary model, bad labels or an impossible fold count.

    Example:
      >>> p = {"output": {"kernel": np.ones((1, 1), np.float32), "bias": np.zeros(1, np.float32)}}
      >>> x = np.array([[-1.0], [-0.5], [0.5], [1.0], [-0.2], [0.3]], np.float32)
      >>> cal = calibrate_site(p, x, np.ones(6), key=jax.random.key(0), folds=3)
      >>> cal.adopted, cal.cv_accuracy_raw, cal.cv_accuracy_shifted
      (True, 0.5, 1.0)
    """
    logits = np.asarray(apply_model(params, np.asarray(x_train, np.float32)), np.float64)
    z, y = _binary_inputs(logits, y_train)
    if not 2 <= folds <= y.size:
        raise FednodeValueError(f"folds must be in [2, {y.size}], got {folds}")
    fold_of = np.asarray(jax.random.permutation(key, y.size)) % folds
    raw_hits = shifted_hits = 0
    for fold in range(folds):
        held = fold_of == fold
        shift = fit_intercept_shift(z[~held], y[~held])
        raw_hits += int(np.sum((z[held] > 0) == (y[held] == 1)))
        shifted_hits += int(np.sum((z[held] + shift > 0) == (y[held] == 1)))
    raw, shifted = raw_hits / y.size, shifted_hits / y.size
    return SiteCalibration(fit_intercept_shift(z, y), shifted > raw, raw, shifted)


def personalize(params: Mapping[str, Any], calibration: SiteCalibration) -> dict[str, Any]:
    """The site's model: the global model with its shift applied if the site adopted it.

    Example:
      >>> p = {"output": {"kernel": np.zeros((1, 1), np.float32), "bias": np.zeros(1, np.float32)}}
      >>> personalize(p, SiteCalibration(2.0, False, 0.8, 0.7))["output"]["bias"].tolist()
      [0.0]
    """
    if not calibration.adopted:
        return dict(params)
    return shift_intercept(params, calibration.shift)


def _binary_inputs(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.float64)
    if z.ndim != 1 or z.shape != y.shape or z.size == 0:
        raise FednodeValueError(f"need (n,) logits and labels, got {z.shape} and {y.shape}")
    if not np.all(np.isfinite(z)):
        raise FednodeValueError("logits must be finite")
    if not np.all((y == 0) | (y == 1)):
        raise FednodeValueError("labels must be 0 or 1")
    return z, y


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))
