"""Shared test setup: strict JAX dtype and rank promotion, and a ``key`` fixture (as in equinox).

Strict promotion makes implicit casts (float32 + int32, float32 + float64) and implicit rank
broadcasting ((n, k) + (k,)) errors, so the pure core must spell out every dtype and shape.
"""

from __future__ import annotations

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key() -> jax.Array:
    """A fresh typed PRNG key, the same in every test."""
    return jax.random.key(0)
