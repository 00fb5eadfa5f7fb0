"""Aggregator: server optimizers (FedAvgM, FedAdam, FedYogi, FedAdagrad) over the global delta.

Adaptive federated optimization (Reddi et al., 2021): the aggregated delta ``Δ`` is treated as a
negative pseudo-gradient ``g = -Δ`` and fed to an optimizer on the server; the global model
moves by the optimizer's update. Each optimizer is an ``optax.GradientTransformation`` with the
same update rule as its optax namesake (``optax.sgd``/``adam``/``yogi``/``adagrad``, checked
against optax in the tests), but computed in float64 numpy with one ufunc per elementwise
operation: optax's own jitted XLA kernels may fuse multiply-adds and pick per-CPU vector code,
and the ledger needs the same bits on every auditor's machine. Bias-correction powers
``b ** t`` are carried in the state as running products, so no ``pow`` (whose last bit differs
between libms) is ever called. States are frozen ``NamedTuple``s of flattened float64 arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import optax

from fednode.aggregator.base import Flat
from fednode.errors import FednodeValueError
from fednode.types import TaskSpec

__all__ = [
    "SERVER_OPTIMIZERS",
    "ServerOptState",
    "server_adagrad",
    "server_adam",
    "server_optimizer_for_spec",
    "server_sgd",
    "server_yogi",
]


class ServerOptState(NamedTuple):
    """Moments of a server optimizer (float64, flattened names); unused fields are ``None``."""

    count: int
    mu: Flat | None = None
    nu: Flat | None = None
    b1_power: float = 1.0
    b2_power: float = 1.0


def server_sgd(learning_rate: float, *, momentum: float = 0.0) -> optax.GradientTransformation:
    """Server SGD, with heavy-ball ``momentum`` (FedAvgM; Hsu et al., 2019) when > 0.

    Example:
      >>> opt = server_sgd(1.0)
      >>> g = {"w": np.array([-2.0])}
      >>> opt.update(g, opt.init(g))[0]["w"].tolist()
      [2.0]
    """

    def init(grads: Flat) -> ServerOptState:
        return ServerOptState(count=0, mu=_zeros(grads) if momentum else None)

    def update(grads: Flat, state: ServerOptState, params: Any = None):
        del params
        if not momentum:
            return _map(lambda g: g * -learning_rate, grads), ServerOptState(state.count + 1)
        mu = {k: np.add(np.multiply(state.mu[k], momentum), grads[k]) for k in grads}
        return _map(lambda m: m * -learning_rate, mu), ServerOptState(state.count + 1, mu)

    return optax.GradientTransformation(init, update)


def server_adam(
    learning_rate: float, *, b1: float = 0.9, b2: float = 0.99, eps: float = 1e-3
) -> optax.GradientTransformation:
    """FedAdam: ``optax.adam`` (bias-corrected moments), ``eps`` is Reddi et al.'s ``tau``.

    Example:
      >>> opt = server_adam(0.1)
      >>> g = {"w": np.array([-2.0])}
      >>> round(float(opt.update(g, opt.init(g))[0]["w"][0]), 4)
      0.1
    """

    def second(g: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.add(np.multiply(v, b2), np.multiply(np.multiply(g, g), 1.0 - b2))

    return _adaptive(learning_rate, b1, b2, eps, second, initial=0.0)


def server_yogi(
    learning_rate: float, *, b1: float = 0.9, b2: float = 0.99, eps: float = 1e-3,
    initial_accumulator_value: float = 1e-6,
) -> optax.GradientTransformation:
    """FedYogi: ``optax.yogi``; the second moment moves by ``sign(v - g^2) g^2`` steps.

    Example:
      >>> opt = server_yogi(0.1)
      >>> g = {"w": np.array([-2.0])}
      >>> round(float(opt.update(g, opt.init(g))[0]["w"][0]), 3)
      0.1
    """

    def second(g: np.ndarray, v: np.ndarray) -> np.ndarray:
        g2 = np.multiply(g, g)
        return np.subtract(v, np.multiply(np.multiply(np.sign(np.subtract(v, g2)), g2), 1.0 - b2))

    return _adaptive(learning_rate, b1, b2, eps, second, initial=initial_accumulator_value)


def server_adagrad(
    learning_rate: float, *, initial_accumulator_value: float = 0.1, eps: float = 1e-7
) -> optax.GradientTransformation:
    """FedAdagrad: ``optax.adagrad``, ``g / sqrt(sum of g^2 + eps)``.

    Example:
      >>> opt = server_adagrad(0.1)
      >>> g = {"w": np.array([-2.0])}
      >>> round(float(opt.update(g, opt.init(g))[0]["w"][0]), 4)
      0.0988
    """

    def init(grads: Flat) -> ServerOptState:
        return ServerOptState(count=0, nu=_map(lambda g: np.full_like(g, initial_accumulator_value), grads))

    def update(grads: Flat, state: ServerOptState, params: Any = None):
        del params
        nu = {k: np.add(np.multiply(grads[k], grads[k]), state.nu[k]) for k in grads}
        step = {
            k: np.where(nu[k] > 0, np.divide(grads[k], np.sqrt(np.add(nu[k], eps))), 0.0)
            for k in grads
        }
        return _map(lambda s: s * -learning_rate, step), ServerOptState(state.count + 1, nu=nu)

    return optax.GradientTransformation(init, update)


SERVER_OPTIMIZERS = {
    "adagrad": server_adagrad, "adam": server_adam, "sgd": server_sgd, "yogi": server_yogi,
}  # fmt: skip
"""``TaskSpec.server_optimizer`` name -> factory (``"none"``: the global moves by the delta)."""


def server_optimizer_for_spec(spec: TaskSpec) -> optax.GradientTransformation | None:
    """The task's server optimizer, or ``None`` for ``server_optimizer == "none"``.

    Parameters besides the learning rate come from ``spec.server_optimizer_params``.

    Raises:
      FednodeValueError: on an unknown optimizer or bad parameters.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, server_optimizer="adam")
      >>> server_optimizer_for_spec(spec) is not None
      True
    """
    name = spec.server_optimizer
    if name == "none":
        return None
    if name not in SERVER_OPTIMIZERS:
        raise FednodeValueError(f"server_optimizer must be 'none' or one of {sorted(SERVER_OPTIMIZERS)}")
    params = dict(spec.server_optimizer_params)
    try:
        return SERVER_OPTIMIZERS[name](float(spec.server_learning_rate), **params)
    except TypeError as exc:
        raise FednodeValueError(f"bad server_optimizer_params for {name!r}: {exc}") from exc


def _adaptive(learning_rate, b1, b2, eps, second, *, initial: float) -> optax.GradientTransformation:
    """Adam-family update: bias-corrected ``mu / (sqrt(nu) + eps)``, scaled by ``-lr``."""

    def init(grads: Flat) -> ServerOptState:
        full = _map(lambda g: np.full_like(g, initial), grads)
        return ServerOptState(count=0, mu=full, nu=dict(full))

    def update(grads: Flat, state: ServerOptState, params: Any = None):
        del params
        mu = {k: np.add(np.multiply(state.mu[k], b1), np.multiply(grads[k], 1.0 - b1)) for k in grads}
        nu = {k: second(grads[k], state.nu[k]) for k in grads}
        b1_power, b2_power = state.b1_power * b1, state.b2_power * b2
        steps = {
            k: np.divide(
                np.divide(mu[k], 1.0 - b1_power),
                np.add(np.sqrt(np.divide(nu[k], 1.0 - b2_power)), eps),
            )
            for k in grads
        }
        new_state = ServerOptState(state.count + 1, mu, nu, b1_power, b2_power)
        return _map(lambda s: s * -learning_rate, steps), new_state

    return optax.GradientTransformation(init, update)


def _map(fn, flat: Flat) -> Flat:
    return {name: np.asarray(fn(np.asarray(value, np.float64)), np.float64) for name, value in flat.items()}


def _zeros(flat: Flat) -> Flat:
    return {name: np.zeros(np.shape(value), np.float64) for name, value in flat.items()}
