"""Device: the local training loss and its example-level private (DP-SGD) gradient.

Loss: mean binary cross-entropy over the real rows of a batch (``logreg``, ``mlp``: ``(n,)``
logits, 0/1 labels) or mean softmax cross-entropy (``cnn1d``: ``(n, classes)`` logits, labels
are class indices carried as float32), plus the FedProx proximal term
``mu / 2 * ||w - w_global||^2`` when ``proximal_mu > 0``.

Example-level differential privacy (DP-SGD, Abadi et al., 2016): every example's gradient is
clipped to ``clip_norm`` (``clipped_gradient_sum`` sums them over the real rows), the clipped
sum gets ``N(0, (noise_multiplier * clip_norm)^2)`` noise and is divided by the *expected*
batch size, not the realized one (``noised_mean``; under Poisson sampling the realized size
depends on the data, the expected one does not); the FedProx term is added after (it reads no
data). ``fednode.privacy.round_mechanism`` accounts for it. ``fednode.device.train`` uses them.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from fednode.device.model import apply_model

__all__ = ["add_proximal", "clipped_gradient_sum", "local_loss", "noised_mean", "private_grads"]


def local_loss(
    params: Any, global_params: Any, batch: tuple[jax.Array, ...], *, proximal_mu: float
) -> jax.Array:
    """Masked mean cross-entropy (binary or softmax, by the logits' rank) plus the FedProx term.

    Args:
      params: current local parameters.
      global_params: the global model the round started from (the proximal anchor).
      batch: ``(x, y, mask)`` with float32 ``y`` in {0, 1} (class indices for a multiclass
        model) and float32 ``mask`` (1 = real row).
      proximal_mu: FedProx ``mu``; 0 disables the term.

    Example:
      >>> from fednode.device.model import init_params
      >>> p = init_params(jax.random.key(0), model="logreg", num_features=2)
      >>> batch = (jnp.zeros((4, 2)), jnp.ones(4), jnp.ones(4))
      >>> round(float(local_loss(p, p, batch, proximal_mu=0.1)), 4)
      0.6931
    """
    x, y, mask = batch
    logits = apply_model(params, x)
    if logits.ndim == 2:  # multiclass: the model kind decides, through its output rank
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y.astype(jnp.int32))
    else:
        losses = optax.sigmoid_binary_cross_entropy(logits, y)
    data_loss = jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    if proximal_mu <= 0.0:
        return data_loss
    gaps = jax.tree_util.tree_map(lambda w, g: jnp.sum(jnp.square(w - g)), params, global_params)
    return data_loss + 0.5 * proximal_mu * sum(jax.tree_util.tree_leaves(gaps))


def private_grads(
    params: Any,
    global_params: Any,
    batch: tuple[jax.Array, jax.Array, jax.Array],
    *,
    key: jax.Array,
    clip_norm: float,
    noise_multiplier: float,
    proximal_mu: float,
    expected_batch_size: float | None = None,
) -> Any:
    """DP-SGD gradient of one batch: per-example clipping, Gaussian noise, mean, FedProx term.

    Args:
      params: current local parameters.
      global_params: the proximal anchor.
      batch: ``(x, y, mask)`` as for :func:`local_loss`; padding rows (mask 0) add nothing.
      key: PRNG key of this step's noise.
      clip_norm: per-example L2 bound.
      noise_multiplier: noise stddev in units of ``clip_norm``.
      proximal_mu: FedProx ``mu``, added after the noise; 0 disables it.
      expected_batch_size: the divisor; ``q * n`` under Poisson sampling. None: the batch's
        width (a fixed-size batch).

    Returns:
      A gradient pytree shaped like ``params``.

    Example:
      >>> from fednode.device.model import init_params
      >>> p = init_params(jax.random.key(0), model="logreg", num_features=2)
      >>> batch = (jnp.ones((4, 2)), jnp.ones(4), jnp.ones(4))
      >>> g = private_grads(p, p, batch, key=jax.random.key(1), clip_norm=0.1,
      ...                   noise_multiplier=0.0, proximal_mu=0.0)
      >>> round(float(jnp.linalg.norm(g["output"]["kernel"])), 4) <= 0.1
      True
    """
    total = clipped_gradient_sum(params, batch, clip_norm=clip_norm)
    size = batch[0].shape[0] if expected_batch_size is None else expected_batch_size
    grads = noised_mean(total, key=key, clip_norm=clip_norm, noise_multiplier=noise_multiplier,
                        expected_batch_size=size)
    return add_proximal(grads, params, global_params, proximal_mu=proximal_mu)


def clipped_gradient_sum(
    params: Any, batch: tuple[jax.Array, jax.Array, jax.Array], *, clip_norm: float
) -> Any:
    """Sum over the real rows (mask 1) of each example's loss gradient clipped to ``clip_norm``.

    Example:
      >>> from fednode.device.model import init_params
      >>> p = init_params(jax.random.key(0), model="logreg", num_features=2)
      >>> batch = (jnp.full((3, 2), 50.0), jnp.zeros(3), jnp.array([1.0, 1.0, 0.0]))
      >>> s = clipped_gradient_sum(p, batch, clip_norm=0.5)
      >>> round(float(jnp.sqrt(sum(jnp.sum(v ** 2) for v in jax.tree_util.tree_leaves(s)))), 3)
      1.0
    """
    x, y, mask = batch

    def example_grad(xi: jax.Array, yi: jax.Array) -> Any:
        one = (xi[None], yi[None], jnp.ones((1,), jnp.float32))
        return jax.grad(local_loss)(params, params, one, proximal_mu=0.0)

    per_example = jax.vmap(example_grad)(x, y)
    leaves = jax.tree_util.tree_leaves(per_example)
    sq_norms = sum(jnp.sum(jnp.square(leaf.reshape(leaf.shape[0], -1)), axis=1) for leaf in leaves)
    factors = mask * jnp.minimum(1.0, clip_norm / (jnp.sqrt(sq_norms) + 1e-12))
    return jax.tree_util.tree_map(lambda leaf: jnp.tensordot(factors, leaf, axes=1), per_example)


def noised_mean(
    clipped_sum: Any, *, key: jax.Array, clip_norm: float, noise_multiplier: float,
    expected_batch_size: float | jax.Array,
) -> Any:
    """``(clipped_sum + N(0, (noise_multiplier * clip_norm)^2 I)) / expected_batch_size``.

    Example:
      >>> g = noised_mean({"w": jnp.ones(2)}, key=jax.random.key(0), clip_norm=1.0,
      ...                 noise_multiplier=0.0, expected_batch_size=4.0)
      >>> g["w"].tolist()
      [0.25, 0.25]
    """
    leaves, treedef = jax.tree_util.tree_flatten(clipped_sum)
    leaf_keys = jax.random.split(key, len(leaves))
    noisy = [
        (leaf + noise_multiplier * clip_norm * jax.random.normal(k, leaf.shape, jnp.float32))
        / jnp.float32(expected_batch_size)
        for leaf, k in zip(leaves, leaf_keys, strict=True)
    ]
    return jax.tree_util.tree_unflatten(treedef, noisy)


def add_proximal(grads: Any, params: Any, global_params: Any, *, proximal_mu: float) -> Any:
    """``grads + proximal_mu * (params - global_params)`` (the FedProx gradient; reads no data).

    Example:
      >>> add_proximal({"w": jnp.zeros(1)}, {"w": jnp.ones(1)}, {"w": jnp.zeros(1)},
      ...              proximal_mu=0.5)["w"].tolist()
      [0.5]
    """
    if proximal_mu <= 0.0:
        return grads
    return jax.tree_util.tree_map(
        lambda g, w, w0: g + proximal_mu * (w - w0), grads, params, global_params
    )
