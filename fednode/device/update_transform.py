"""Device: the update-transform protocol (``UpdateTransform(init, update)``) and ``chain``.

An update transform is an optax-style pair: ``init(delta) -> state`` and
``update(delta, state, *, key) -> (delta, state)``, pure, with an explicit PRNG ``key``
(``None`` is fine for transforms without randomness). ``chain`` composes them in order, like
``optax.chain``. The transforms themselves are in ``fednode.device.transforms`` (privacy, the
task's chain) and ``fednode.device.compression_transforms`` (top-k, int8, packing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

__all__ = ["ChainState", "EmptyState", "UpdateTransform", "chain"]


class EmptyState(NamedTuple):
    """State of a stateless transform."""


class ChainState(NamedTuple):
    """The states of a chain's transforms, in order."""

    inner: tuple[Any, ...]


class UpdateTransform(NamedTuple):
    """An update transform: ``init(delta) -> state``, ``update(delta, state, *, key)``."""

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


def chain(*transforms: UpdateTransform) -> UpdateTransform:
    """Applies transforms in order; each gets its own key split from ``key``.

    Example:
      >>> from fednode.device.transforms import clip_update_norm, quantize_int8
      >>> import numpy as np
      >>> t = chain(clip_update_norm(1.0), quantize_int8())
      >>> d = {"w": np.array([3.0, 4.0], np.float32)}
      >>> t.update(d, t.init(d), key=jax.random.key(0))[0]["w"]["q"].tolist()
      [95, 127]
    """

    def init(delta) -> ChainState:
        return ChainState(tuple(t.init(delta) for t in transforms))

    def update(delta, state: ChainState, *, key=None):
        count = len(transforms)
        keys = [None] * count if key is None else list(jax.random.split(key, count))
        states = []
        for transform, inner, sub_key in zip(transforms, state.inner, keys, strict=True):
            delta, inner = transform.update(delta, inner, key=sub_key)
            states.append(inner)
        return delta, ChainState(tuple(states))

    return UpdateTransform(init, update)
