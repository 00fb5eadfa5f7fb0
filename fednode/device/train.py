"""Device: local training on a site's data, returning a delta (local minus global parameters).

Follows fedjax's client API: ``client_init`` (start from the global model), ``client_step`` (one
minibatch), ``client_final`` (the delta). ``train_local`` runs ``spec.local_epochs`` epochs of
the same step inside one jit-compiled ``lax.scan``, so a round costs one call and the program
compiles once per (hyperparameters, data shape), not once per round.

Loss (``fednode.device.loss``): masked mean cross-entropy plus the FedProx proximal term when
``spec.proximal_mu > 0``. The local optimizer is read from ``spec.local_optimizer``
(``"sgd"``, ``"momentum"`` or ``"adam"``; default ``DEFAULT_LOCAL_OPTIMIZER``) with
``spec.learning_rate``. Everything is deterministic given ``key`` (batch order, and DP-SGD noise
when enabled, are the only randomness).

Example-level differential privacy (DP-SGD) runs when ``spec.dp_unit == "example"``
and ``spec.clip_norm > 0``, as ``fednode.privacy.round_mechanism`` accounts for it: each of the
``local_epochs * ceil(n / batch_size)`` steps includes every row independently with probability
``q = min(1, batch_size / n)`` (Poisson sampling: the batch size varies), clips each included
example's gradient, adds Gaussian noise to the clipped sum and divides by the expected batch
size ``q * n``. Shapes stay static for jit: the included rows are moved to the front of a
permutation of all rows and processed in fixed-width chunks with a 0/1 mask, in a
``lax.while_loop`` that runs as many chunks as the realized batch needs (one, unless the batch
is unusually large), so no included row is ever dropped. The scan counts every noised step;
``LocalUpdate.dp_steps`` carries that count for the device's declaration
(``fednode.privacy.declared_spend``). ``client_step`` takes a caller's batch, which is not a
Poisson sample, so it refuses a DP-SGD task.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fednode.device.data import epoch_batches
from fednode.device.loss import add_proximal, clipped_gradient_sum, local_loss, noised_mean
from fednode.errors import FednodeValueError
from fednode.types import DEFAULT_LOCAL_OPTIMIZER, LOCAL_OPTIMIZERS, TaskSpec

__all__ = [
    "DEFAULT_LOCAL_OPTIMIZER",
    "LOCAL_OPTIMIZERS",
    "ClientState",
    "LocalUpdate",
    "client_final",
    "client_init",
    "client_step",
    "local_loss",
    "train_local",
]

_MOMENTUM = 0.9
_NOISE_STREAM = 0x5EED  # folds the DP-SGD noise stream out of the batch-order key
_SAMPLE_STREAM = 0x5A3B  # folds the DP-SGD Poisson sampling stream out of the same key
_CAPACITY_SIGMAS = 4.0  # chunk width: expected batch + 4 standard deviations (+1)


Batch = tuple[jax.Array, jax.Array, jax.Array]
"""``(x, y, mask)``: float32 features, float32 labels (0/1, or class indices for a multiclass
model), and 1 for real rows (0 for padding)."""


class ClientState(NamedTuple):
    """Frozen state of one client's local training: current and global params, optimizer state."""

    params: Any
    global_params: Any
    opt_state: optax.OptState
    num_steps: jax.Array


class LocalUpdate(NamedTuple):
    """What local training hands to the edge: a float32 numpy ``delta``, its weight, and the
    number of Gaussian mechanisms behind it: the DP-SGD steps the training loop counted, or 1
    for an update-level DP task (its transforms noise the delta once), else 0."""

    delta: dict[str, Any]
    num_examples: int
    dp_steps: int = 0


@dataclass(frozen=True)
class _Config:
    """The hyperparameters a compiled program depends on (hashable, so programs are cached)."""

    optimizer: str
    learning_rate: float
    proximal_mu: float
    batch_size: int
    local_epochs: int
    dp_clip: float = 0.0
    dp_noise: float = 0.0


def client_init(global_params: Any, *, spec: TaskSpec) -> ClientState:
    """Starts local training from the global model.

    Example:
      >>> from fednode.device.model import init_params
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2)
      >>> state = client_init(init_params(jax.random.key(0), model="logreg", num_features=2),
      ...                     spec=spec)
      >>> int(state.num_steps)
      0
    """
    params = _to_float32(global_params)
    opt_state = _optimizer(_config(spec)).init(params)
    return ClientState(params, params, opt_state, jnp.zeros((), jnp.int32))


def client_step(state: ClientState, batch: tuple[Any, ...], *, spec: TaskSpec) -> ClientState:
    """Takes one optimizer step on a minibatch ``(x, y)`` or ``(x, y, mask)`` (jit-compiled).

    Raises:
      FednodeValueError: for a DP-SGD task (its batches must be Poisson samples that
        ``train_local`` draws itself).

    Example:
      >>> from fednode.device.model import init_params
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2)
      >>> p = init_params(jax.random.key(0), model="logreg", num_features=2)
      >>> state = client_step(client_init(p, spec=spec), (np.ones((3, 2)), np.ones(3)), spec=spec)
      >>> int(state.num_steps)
      1
    """
    config = _config(spec)
    if config.dp_clip > 0:
        raise FednodeValueError("a DP-SGD task samples its own Poisson batches: use train_local")
    return _compiled_step(config)(state, _as_batch(batch))


def client_final(state: ClientState) -> dict[str, Any]:
    """The delta ``local - global`` as a nested dict of float32 numpy arrays.

    Example:
      >>> from fednode.device.model import init_params
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2)
      >>> p = init_params(jax.random.key(0), model="logreg", num_features=2)
      >>> float(client_final(client_init(p, spec=spec))["output"]["bias"][0])
      0.0
    """
    return _numpy_delta(state.params, state.global_params)


def train_local(
    global_params: Any, data: tuple[Any, Any], *, key: jax.Array, spec: TaskSpec
) -> LocalUpdate:
    """Trains ``spec.local_epochs`` epochs on one site's ``(x_train, y_train)``; returns the delta.

    Args:
      global_params: the current global model (nested dict of arrays).
      data: ``(x, y)``: float features ``(n, spec.num_features)`` and 0/1 labels ``(n,)``; for
        ``cnn1d``, sequences ``(n, spec.num_features, steps)`` and class indices ``(n,)``.
      key: PRNG key for the batch order of every epoch.
      spec: the task; uses local_epochs, batch_size, learning_rate, proximal_mu and
        ``spec.local_optimizer``.

    Returns:
      ``LocalUpdate(delta, num_examples=n, dp_steps)``.

    Raises:
      FednodeValueError: if the data do not match the spec.

    Example:
      >>> from fednode.device.model import init_params
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, local_epochs=2)
      >>> p = init_params(jax.random.key(0), model="logreg", num_features=2)
      >>> update = train_local(p, (np.ones((5, 2)), np.ones(5)), key=jax.random.key(1), spec=spec)
      >>> update.num_examples, update.delta["output"]["kernel"].dtype
      (5, dtype('float32'))
    """
    x, y = _check_data(data, spec)
    params = _to_float32(global_params)
    config = _config(spec)
    local, steps, _ = _compiled_run(config)(params, x, y, key)
    if config.dp_clip > 0:
        dp_steps = int(steps)
    else:
        update_level = spec.dp_unit == "update"
        dp_steps = 1 if update_level and spec.noise_multiplier > 0 else 0
    return LocalUpdate(_numpy_delta(local, params), int(y.shape[0]), dp_steps)


def _config(spec: TaskSpec) -> _Config:
    spec.require_fixed_noise()
    optimizer = spec.local_optimizer  # one of LOCAL_OPTIMIZERS: TaskSpec checks it
    example_dp = spec.dp_unit == "example" and spec.clip_norm > 0
    return _Config(
        optimizer=optimizer,
        learning_rate=float(spec.learning_rate),
        proximal_mu=float(spec.proximal_mu),
        batch_size=int(spec.batch_size),
        local_epochs=int(spec.local_epochs),
        dp_clip=float(spec.clip_norm) if example_dp else 0.0,
        dp_noise=float(spec.noise_multiplier) if example_dp else 0.0,
    )


def _optimizer(config: _Config) -> optax.GradientTransformation:
    if config.optimizer == "adam":
        return optax.adam(config.learning_rate)
    if config.optimizer == "momentum":
        return optax.sgd(config.learning_rate, momentum=_MOMENTUM)
    return optax.sgd(config.learning_rate)


def _update(config: _Config, state: ClientState, batch: Batch) -> ClientState:
    grads = jax.grad(local_loss)(
        state.params, state.global_params, batch, proximal_mu=config.proximal_mu
    )
    return _apply(config, state, grads)


def _apply(config: _Config, state: ClientState, grads: Any) -> ClientState:
    # optax's Adam bias correction raises a float to an int32 step count, which strict dtype
    # promotion refuses; the optimizer (third-party code) is traced under standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = _optimizer(config).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return ClientState(params, state.global_params, opt_state, state.num_steps + 1)


@functools.lru_cache(maxsize=32)
def _compiled_step(config: _Config) -> Callable[[ClientState, Batch], ClientState]:
    return jax.jit(functools.partial(_update, config))


@functools.lru_cache(maxsize=32)
def _compiled_run(
    config: _Config,
) -> Callable[[Any, jax.Array, jax.Array, jax.Array], tuple[Any, jax.Array, jax.Array]]:
    """``(params, x, y, key) -> (local params, steps taken, realized batch size per step)``."""
    return jax.jit(functools.partial(_run_poisson if config.dp_clip > 0 else _run_epochs, config))


def _run_epochs(
    config: _Config, params: Any, x: jax.Array, y: jax.Array, key: jax.Array
) -> tuple[Any, jax.Array, jax.Array]:
    """All local epochs as one ``lax.scan`` over epochs of a ``lax.scan`` over shuffled batches."""
    state = ClientState(params, params, _optimizer(config).init(params), jnp.zeros((), jnp.int32))

    def one_epoch(state: ClientState, epoch_key: jax.Array) -> tuple[ClientState, jax.Array]:
        batches = epoch_batches(x.shape[0], key=epoch_key, batch_size=config.batch_size)
        return jax.lax.scan(one_batch, state, (batches.indices, batches.mask))

    def one_batch(
        state: ClientState, slot: tuple[jax.Array, jax.Array]
    ) -> tuple[ClientState, jax.Array]:
        indices, mask = slot
        size = jnp.sum(mask, dtype=jnp.int32)
        return _update(config, state, (x[indices], y[indices], mask)), size

    epoch_keys = jax.random.split(key, config.local_epochs)
    state, sizes = jax.lax.scan(one_epoch, state, epoch_keys)
    return state.params, state.num_steps, sizes.reshape(-1)


def _run_poisson(
    config: _Config, params: Any, x: jax.Array, y: jax.Array, key: jax.Array
) -> tuple[Any, jax.Array, jax.Array]:
    """DP-SGD: ``local_epochs * ceil(n / batch_size)`` Poisson-sampled, clipped, noised steps."""
    n = x.shape[0]
    rate = min(1.0, config.batch_size / n)
    width = _chunk_width(n, rate)
    chunks = -(-n // width)
    sample_key = jax.random.fold_in(key, _SAMPLE_STREAM)
    noise_key = jax.random.fold_in(key, _NOISE_STREAM)
    state = ClientState(params, params, _optimizer(config).init(params), jnp.zeros((), jnp.int32))

    def one_step(state: ClientState, _: None) -> tuple[ClientState, jax.Array]:
        include = jax.random.bernoulli(jax.random.fold_in(sample_key, state.num_steps), rate, (n,))
        size = jnp.sum(include, dtype=jnp.int32)
        order = jnp.argsort(jnp.logical_not(include), stable=True)  # included rows first
        order = jnp.pad(order, (0, chunks * width - n))  # the padding is always masked out

        def more(carry: tuple[jax.Array, Any]) -> jax.Array:
            return carry[0] * width < size

        def chunk(carry: tuple[jax.Array, Any]) -> tuple[jax.Array, Any]:
            index, total = carry
            rows = jax.lax.dynamic_slice(order, (index * width,), (width,))
            mask = (index * width + jnp.arange(width) < size).astype(jnp.float32)
            part = clipped_gradient_sum(state.params, (x[rows], y[rows], mask),
                                        clip_norm=config.dp_clip)
            return index + 1, jax.tree_util.tree_map(jnp.add, total, part)

        zero = jax.tree_util.tree_map(jnp.zeros_like, state.params)
        total = jax.lax.while_loop(more, chunk, (jnp.zeros((), jnp.int32), zero))[1]
        grads = noised_mean(total, key=jax.random.fold_in(noise_key, state.num_steps),
                            clip_norm=config.dp_clip, noise_multiplier=config.dp_noise,
                            expected_batch_size=rate * n)
        grads = add_proximal(grads, state.params, state.global_params,
                             proximal_mu=config.proximal_mu)
        return _apply(config, state, grads), size

    steps = config.local_epochs * -(-n // config.batch_size)
    state, sizes = jax.lax.scan(one_step, state, None, length=steps)
    return state.params, state.num_steps, sizes


def _chunk_width(num_examples: int, rate: float) -> int:
    """Rows per chunk of a Poisson batch: its mean plus ``_CAPACITY_SIGMAS`` deviations."""
    mean = rate * num_examples
    spread = _CAPACITY_SIGMAS * math.sqrt(mean * (1.0 - rate))
    return min(num_examples, math.ceil(mean + spread) + 1)


def _check_data(data: tuple[Any, Any], spec: TaskSpec) -> tuple[jax.Array, jax.Array]:
    x, y = np.asarray(data[0], np.float32), np.asarray(data[1], np.float32)
    if spec.model == "cnn1d":
        _check_sequences(x, y, spec)
    else:
        if x.ndim != 2 or x.shape[1] != spec.num_features or x.shape[0] < 1:
            raise FednodeValueError(f"x must be (n >= 1, {spec.num_features}), got {x.shape}")
        if not np.all((y == 0.0) | (y == 1.0)):
            raise FednodeValueError("labels must be 0 or 1")
    if y.shape != (x.shape[0],):
        raise FednodeValueError(f"y must have shape ({x.shape[0]},), got {y.shape}")
    return jnp.asarray(x), jnp.asarray(y)


def _check_sequences(x: np.ndarray, y: np.ndarray, spec: TaskSpec) -> None:
    """``cnn1d`` data: ``(n, channels, steps)`` sequences and integer class indices."""
    steps = spec.sequence_length or None
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] != spec.num_features or (
        steps is not None and x.shape[2] != int(steps)
    ):
        raise FednodeValueError(
            f"x must be (n >= 1, {spec.num_features}, {steps or 'steps'}), got {x.shape}"
        )
    num_classes = spec.num_classes
    if not np.all((y == np.round(y)) & (y >= 0) & (y < num_classes)):
        raise FednodeValueError(f"labels must be class indices in [0, {num_classes})")


def _as_batch(batch: tuple[Any, ...]) -> Batch:
    if len(batch) not in (2, 3):
        raise FednodeValueError(f"a batch is (x, y) or (x, y, mask), got {len(batch)} items")
    x, y = jnp.asarray(batch[0], jnp.float32), jnp.asarray(batch[1], jnp.float32)
    mask = jnp.asarray(batch[2], jnp.float32) if len(batch) == 3 else jnp.ones_like(y)
    return x, y, mask


def _to_float32(params: Mapping[str, Any]) -> Any:
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, jnp.float32), dict(params))


def _numpy_delta(local: Any, global_params: Any) -> dict[str, Any]:
    return jax.tree_util.tree_map(
        lambda new, old: np.subtract(np.asarray(new), np.asarray(old), dtype=np.float32),
        local,
        global_params,
    )
