"""Device: the demo's per-site personalization step (local intercept calibration, train rows only)."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np

from fednode.cli.demo_flow import personalize_sites


def _hospital(name: str, x_train, y_train, x_test, y_test):
    site = SimpleNamespace(name=name)
    return SimpleNamespace(site=site, train_data=lambda: (x_train, y_train),
                           test_data=lambda: (x_test, y_test))


def test_an_all_positive_site_adopts_the_shift_and_a_balanced_one_keeps_the_model():
    # Arrange: a 1-feature model that says "negative" below 0; site A is all positive
    params = {"output": {"kernel": np.ones((1, 1), np.float32), "bias": np.zeros(1, np.float32)}}
    x = np.linspace(-1, 1, 20, dtype=np.float32)[:, None]
    positive = _hospital("A", x, np.ones(20), x, np.ones(20))
    balanced = _hospital("B", x, (x[:, 0] > 0).astype(np.float32), x,
                         (x[:, 0] > 0).astype(np.float32))
    # Act
    results = personalize_sites(params, [positive, balanced], key=jax.random.key(0))
    # Assert
    assert results["A"]["adopted"] and results["A"]["accuracy"] == 1.0
    assert not results["B"]["adopted"] and results["B"]["accuracy"] == 1.0
