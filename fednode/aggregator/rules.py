"""Aggregator: turns the round's decoded deltas into one global delta (pure, bit-reproducible).

Every rule is an ``Aggregator(init, apply)`` pair of pure functions: ``init() -> state`` and
``apply(deltas, weights, state) -> (delta, state)``, where ``deltas`` are decoded nested dicts of
float32 arrays in ledger order, ``weights`` their example counts, and states are frozen
``*State`` tuples. ``AGGREGATORS`` maps a task's ``aggregation`` name to the rule's factory
(averaging rules here, robust rules in ``robust.py``); ``rule_for_spec`` wraps the named rule
(parameters from ``spec.aggregation_params``) into the task's full pipeline: FedBuff
staleness scaling, the rule, then the server optimizer (``pipeline.py``, ``server_opt.py``).

Why FedAvg is reproducible bit for bit on any machine, from the ledger alone:

* The inputs are the canonical float32 payloads and integer example counts read from the
  ledger, visited in ledger order; nothing depends on dict order, threads or hardware.
* Weights are ``n_i / sum(n)``: one IEEE-754 double division of two exact integers, so every
  platform gets the same correctly rounded double.
* Accumulation is ``acc = acc + w_i * float64(delta_i)``, one numpy ufunc call per operation, in
  order. Elementwise IEEE multiply and add are correctly rounded whatever the SIMD width, and
  separate ufunc calls cannot be fused into FMAs or reassociated. Reductions are avoided on
  purpose (``np.sum`` over a stacked axis uses pairwise, blocked, build-dependent orders, and
  BLAS picks kernels per CPU).
* Subnormal float32 values are flushed to zero explicitly before and after the float64 work,
  so a process whose FPU runs in flush-to-zero / denormals-are-zero mode (some native libraries
  set it) computes the same bytes as one that does not.
* The result is rounded once to float32 (round-to-nearest-even). ``apply_global_delta`` adds in
  float64 and rounds once, which equals the correctly rounded float32 sum (53 >= 2 * 24 + 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from fednode.aggregator.base import (
    Aggregator,
    ParamTemplate,
    check_delta,
    check_weight,
    param_template,
    to_float32,
    to_float64,
    weighted_sum,
)
from fednode.aggregator.pipeline import RuleState, pipeline_rule
from fednode.aggregator.robust import coordinate_median, multi_krum, norm_clip, trimmed_mean
from fednode.aggregator.server_opt import server_optimizer_for_spec
from fednode.codec import flatten_params, unflatten_params
from fednode.errors import FednodeValueError
from fednode.types import TaskSpec

__all__ = [
    "AGGREGATORS",
    "EXAMPLE_POWERS",
    "Aggregator",
    "FedAvgState",
    "ParamTemplate",
    "RuleState",
    "SumState",
    "apply_global_delta",
    "check_delta",
    "check_weight",
    "example_fractions",
    "fedavg",
    "fedavg_delta",
    "make_aggregator",
    "param_template",
    "rule_for_spec",
    "sum_deltas",
    "sum_rule",
]

EXAMPLE_POWERS = (0.0, 0.25, 0.5, 1.0)
"""Allowed ``example_power`` values: each is computed with correctly rounded square roots."""


class FedAvgState(NamedTuple):
    """FedAvg's state: how many rounds it has aggregated."""

    num_rounds: int


def fedavg(*, example_power: float = 1.0) -> Aggregator:
    """Federated averaging weighted by example counts (McMahan et al., 2017).

    ``example_power`` < 1 is the bias correction: site ``i`` weighs ``n_i ** example_power``
    instead of ``n_i``, so small hospitals are not drowned by large ones (0 = every site
    equal). The worst site's metric improves at a small cost to the pooled one (see
    docs/benchmarks/learning.md).

    Example:
      >>> rule = fedavg()
      >>> deltas = [{"w": np.ones(2, np.float32)}, {"w": np.full(2, 4.0, np.float32)}]
      >>> delta, state = rule.apply(deltas, [1, 3], rule.init())
      >>> delta["w"].tolist(), state.num_rounds
      ([3.25, 3.25], 1)
    """
    _check_power(example_power)

    def init() -> FedAvgState:
        return FedAvgState(num_rounds=0)

    def apply(
        deltas: Sequence[Mapping[str, Any]], weights: Sequence[int], state: FedAvgState
    ) -> tuple[dict[str, Any], FedAvgState]:
        delta = fedavg_delta(deltas, weights, example_power=example_power)
        return delta, FedAvgState(num_rounds=state.num_rounds + 1)

    return Aggregator(init=init, apply=apply)


class SumState(NamedTuple):
    """The sum rule's state: how many rounds it has aggregated."""

    num_rounds: int


def sum_rule() -> Aggregator:
    """The unweighted sum of the deltas (used for federated feature statistics).

    Sites submit count, sums and sums of squares onto an all-zero model; the sum of their
    deltas is the consortium-wide total, accumulated in float64 in ledger order like FedAvg.

    Example:
      >>> rule = sum_rule()
      >>> deltas = [{"n": np.ones(1, np.float32)}, {"n": np.full(1, 2.0, np.float32)}]
      >>> rule.apply(deltas, [1, 1], rule.init())[0]["n"].tolist()
      [3.0]
    """

    def init() -> SumState:
        return SumState(num_rounds=0)

    def apply(
        deltas: Sequence[Mapping[str, Any]], weights: Sequence[int], state: SumState
    ) -> tuple[dict[str, Any], SumState]:
        del weights  # every site's statistics count fully
        return sum_deltas(deltas), SumState(num_rounds=state.num_rounds + 1)

    return Aggregator(init=init, apply=apply)


def sum_deltas(deltas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``sum_i delta_i`` sequentially in float64 (ledger order), rounded once to float32.

    Example:
      >>> sum_deltas([{"w": np.ones(2, np.float32)}] * 3)["w"].tolist()
      [3.0, 3.0]
    """
    if not deltas:
        raise FednodeValueError("need >= 1 delta to sum")
    expected = param_template(deltas[0])
    flats = [check_delta(delta, expected) for delta in deltas]
    return unflatten_params(weighted_sum(flats, [1.0] * len(flats), expected))


AGGREGATORS: Mapping[str, Callable[..., Aggregator]] = {
    "fedavg": fedavg,
    "krum": multi_krum,
    "median": coordinate_median,
    "norm_clip": norm_clip,
    "sum": sum_rule,
    "trimmed_mean": trimmed_mean,
}
"""Rule name (``TaskSpec.aggregation``) -> factory taking the rule's keyword parameters."""


def make_aggregator(name: str, **params: Any) -> Aggregator:
    """Builds a rule by name.

    Raises:
      FednodeValueError: on an unknown rule name or bad parameters.

    Example:
      >>> isinstance(make_aggregator("fedavg"), Aggregator)
      True
    """
    if name not in AGGREGATORS:
        raise FednodeValueError(f"unknown aggregation rule {name!r}; known: {sorted(AGGREGATORS)}")
    try:
        return AGGREGATORS[name](**params)
    except TypeError as exc:
        raise FednodeValueError(f"bad parameters for rule {name!r}: {exc}") from exc


def rule_for_spec(spec: TaskSpec) -> Aggregator:
    """The task's full aggregation pipeline: staleness scaling, its rule, its server optimizer.

    The rule is ``spec.aggregation`` with ``spec.aggregation_params``; the server
    optimizer is ``spec.server_optimizer`` at ``spec.server_learning_rate``; async tasks
    (``spec.mode == "async"``) scale stale updates (``pipeline.staleness_factor``).

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2)
      >>> rule_for_spec(spec).init()
      RuleState(version=0, rule=FedAvgState(num_rounds=0), server=None)
    """
    rule = make_aggregator(spec.aggregation, **dict(spec.aggregation_params))
    staleness = spec.staleness_weighting if spec.mode == "async" else ""
    return pipeline_rule(rule, server_optimizer_for_spec(spec), staleness=staleness)


def example_fractions(weights: Sequence[int], *, example_power: float = 1.0) -> list[float]:
    """Each site's share ``w_i / sum(w)`` with ``w_i = n_i ** example_power`` (deterministic).

    Example:
      >>> example_fractions([1, 3])
      [0.25, 0.75]
      >>> example_fractions([1, 3], example_power=0.0)
      [0.5, 0.5]
    """
    _check_power(example_power)
    counts = [check_weight(weight) for weight in weights]
    if example_power == 1.0:
        total = sum(counts)
        return [count / total for count in counts]  # exact ints, one correctly rounded division
    powered = [_power(count, example_power) for count in counts]
    total_f = math.fsum(powered)
    return [value / total_f for value in powered]


def fedavg_delta(
    deltas: Sequence[Mapping[str, Any]],
    weights: Sequence[int],
    *,
    template: ParamTemplate | None = None,
    example_power: float = 1.0,
) -> dict[str, Any]:
    """The weighted mean ``sum_i (n_i / N) * delta_i``, sequentially in float64, as float32.

    Args:
      deltas: decoded deltas (nested dicts of float32 arrays), in ledger order.
      weights: their example counts ``n_i`` (ints >= 1).
      template: expected names and shapes; defaults to the first delta's.
      example_power: weigh sites by ``n_i ** example_power`` (one of ``EXAMPLE_POWERS``).

    Returns:
      A nested dict of float32 numpy arrays.

    Raises:
      FednodeValueError: if there are no deltas, or not one weight per delta.
      UpdateRejectedError: if a delta's structure, shape, dtype or values, or a weight, is bad.

    Example:
      >>> deltas = [{"w": np.array([1.0], np.float32)}, {"w": np.array([4.0], np.float32)}]
      >>> fedavg_delta(deltas, [2, 1])["w"].tolist()
      [2.0]
    """
    if not deltas or len(deltas) != len(weights):
        raise FednodeValueError(
            f"need >= 1 delta and one weight per delta, got {len(deltas)} and {len(weights)}"
        )
    expected = template if template is not None else param_template(deltas[0])
    flats = [check_delta(delta, expected) for delta in deltas]
    fractions = example_fractions(weights, example_power=example_power)
    return unflatten_params(weighted_sum(flats, fractions, expected))


def apply_global_delta(
    global_params: Mapping[str, Any], delta: Mapping[str, Any]
) -> dict[str, Any]:
    """The next global model ``global + delta`` as float32, rounded once (deterministic).

    Raises:
      UpdateRejectedError: if the delta does not match the global model's names, shapes, dtype.

    Example:
      >>> g = {"w": np.array([1.0, 2.0], np.float32)}
      >>> apply_global_delta(g, {"w": np.array([0.5, -2.0], np.float32)})["w"].tolist()
      [1.5, 0.0]
    """
    template = param_template(global_params)
    flat_global = flatten_params(global_params)
    flat_delta = check_delta(delta, template)
    new = {
        name: to_float32(np.add(to_float64(flat_global[name]), to_float64(flat_delta[name])))
        for name, _ in template
    }
    return unflatten_params(new)


def _check_power(example_power: float) -> None:
    if example_power not in EXAMPLE_POWERS:
        raise FednodeValueError(f"example_power must be one of {EXAMPLE_POWERS}")


def _power(count: int, example_power: float) -> float:
    if example_power == 0.0:
        return 1.0
    root = math.sqrt(count)
    return root if example_power == 0.5 else math.sqrt(root)
