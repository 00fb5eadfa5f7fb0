"""Aggregator: turns the round's decoded deltas into one global delta (pure, bit-reproducible).

Every rule is an ``Aggregator(init, apply)`` pair of pure functions: ``init() -> state`` and
``apply(deltas, weights, state) -> (delta, state)``, where ``deltas`` are decoded nested dicts of
float32 arrays in ledger order, ``weights`` their example counts, and states are frozen
``*State`` tuples. ``AGGREGATORS`` maps a task's ``aggregation`` name to the rule's factory;
new rules (median, trimmed mean, Krum, server optimizers) are registered there with the same
signature, and ``rule_for_spec`` picks one for a task (parameters from
``spec.extra["aggregation_params"]``).

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

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from fednode.codec import flatten_params, unflatten_params
from fednode.errors import CodecError, FednodeValueError, UpdateRejectedError
from fednode.types import TaskSpec

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "FedAvgState",
    "ParamTemplate",
    "SumState",
    "apply_global_delta",
    "check_delta",
    "check_weight",
    "fedavg",
    "fedavg_delta",
    "make_aggregator",
    "param_template",
    "rule_for_spec",
    "sum_deltas",
    "sum_rule",
]

ParamTemplate = tuple[tuple[str, tuple[int, ...]], ...]
"""Sorted dotted names and shapes of a float32 parameter set."""

_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


class Aggregator(NamedTuple):
    """A stateful aggregation rule as a pair of pure functions."""

    init: Callable[[], Any]
    apply: Callable[[Sequence[Mapping[str, Any]], Sequence[int], Any], tuple[dict[str, Any], Any]]


class FedAvgState(NamedTuple):
    """FedAvg's state: how many rounds it has aggregated."""

    num_rounds: int


def fedavg() -> Aggregator:
    """Federated averaging weighted by example counts (McMahan et al., 2017).

    Example:
      >>> rule = fedavg()
      >>> deltas = [{"w": np.ones(2, np.float32)}, {"w": np.full(2, 4.0, np.float32)}]
      >>> delta, state = rule.apply(deltas, [1, 3], rule.init())
      >>> delta["w"].tolist(), state.num_rounds
      ([3.25, 3.25], 1)
    """

    def init() -> FedAvgState:
        return FedAvgState(num_rounds=0)

    def apply(
        deltas: Sequence[Mapping[str, Any]], weights: Sequence[int], state: FedAvgState
    ) -> tuple[dict[str, Any], FedAvgState]:
        return fedavg_delta(deltas, weights), FedAvgState(num_rounds=state.num_rounds + 1)

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
    total: dict[str, np.ndarray] = {}
    for name, shape in expected:
        acc = np.zeros(shape, np.float64)
        for flat in flats:
            acc = np.add(acc, _to_float64(flat[name]))
        total[name] = _to_float32(acc)
    return unflatten_params(total)


AGGREGATORS: Mapping[str, Callable[..., Aggregator]] = {"fedavg": fedavg, "sum": sum_rule}
"""Rule name (``TaskSpec.aggregation``) -> factory taking the rule's keyword parameters."""


def make_aggregator(name: str, **params: Any) -> Aggregator:
    """Builds a rule by name.

    Raises:
      FednodeValueError: on an unknown rule name.

    Example:
      >>> isinstance(make_aggregator("fedavg"), Aggregator)
      True
    """
    if name not in AGGREGATORS:
        raise FednodeValueError(f"unknown aggregation rule {name!r}; known: {sorted(AGGREGATORS)}")
    return AGGREGATORS[name](**params)


def rule_for_spec(spec: TaskSpec) -> Aggregator:
    """The rule a task names, with ``spec.extra["aggregation_params"]`` as its parameters.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2)
      >>> rule_for_spec(spec).init()
      FedAvgState(num_rounds=0)
    """
    params = spec.extra.get("aggregation_params", {})
    if not isinstance(params, Mapping):
        raise FednodeValueError(f"aggregation_params must be a mapping, got {params!r}")
    return make_aggregator(spec.aggregation, **params)


def fedavg_delta(
    deltas: Sequence[Mapping[str, Any]],
    weights: Sequence[int],
    *,
    template: ParamTemplate | None = None,
) -> dict[str, Any]:
    """The weighted mean ``sum_i (n_i / N) * delta_i``, sequentially in float64, as float32.

    Args:
      deltas: decoded deltas (nested dicts of float32 arrays), in ledger order.
      weights: their example counts ``n_i`` (ints >= 1).
      template: expected names and shapes; defaults to the first delta's.

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
    counts = [check_weight(weight) for weight in weights]
    total = sum(counts)
    fractions = [count / total for count in counts]  # exact ints, one correctly rounded division
    mean: dict[str, np.ndarray] = {}
    for name, shape in expected:
        acc = np.zeros(shape, np.float64)
        for flat, fraction in zip(flats, fractions, strict=True):
            acc = np.add(acc, np.multiply(_to_float64(flat[name]), fraction))
        mean[name] = _to_float32(acc)
    return unflatten_params(mean)


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
        name: _to_float32(np.add(_to_float64(flat_global[name]), _to_float64(flat_delta[name])))
        for name, _ in template
    }
    return unflatten_params(new)


def param_template(params: Mapping[str, Any]) -> ParamTemplate:
    """Sorted names and shapes of a float32 parameter set.

    Raises:
      UpdateRejectedError: if a leaf is not float32 or a name is malformed.

    Example:
      >>> param_template({"b": np.zeros((2, 3), np.float32), "a": np.zeros(1, np.float32)})
      (('a', (1,)), ('b', (2, 3)))
    """
    flat = _flatten(params)
    for name, array in flat.items():
        if array.dtype != np.float32:
            raise UpdateRejectedError("dtype_mismatch", f"{name} is {array.dtype}, not float32")
    return tuple((name, tuple(array.shape)) for name, array in flat.items())


def check_delta(delta: Mapping[str, Any], template: ParamTemplate) -> dict[str, np.ndarray]:
    """Validates one delta against a template; returns its flattened arrays.

    Raises:
      UpdateRejectedError: with reason ``malformed``, ``structure_mismatch``,
        ``dtype_mismatch``, ``shape_mismatch`` or ``non_finite``.

    Example:
      >>> check_delta({"w": np.zeros(2, np.float32)}, (("w", (2,)),))["w"].shape
      (2,)
    """
    flat = _flatten(delta)
    names = tuple(name for name, _ in template)
    if tuple(flat) != names:
        raise UpdateRejectedError("structure_mismatch", f"names {list(flat)} != {list(names)}")
    for name, shape in template:
        array = flat[name]
        if array.dtype != np.float32:
            raise UpdateRejectedError("dtype_mismatch", f"{name} is {array.dtype}, not float32")
        if array.shape != shape:
            raise UpdateRejectedError("shape_mismatch", f"{name} is {array.shape}, not {shape}")
        if not np.all(np.isfinite(array)):
            raise UpdateRejectedError("non_finite", f"{name} holds NaN or infinity")
    return flat


def check_weight(weight: Any) -> int:
    """Validates an example count: an int (not a bool) >= 1.

    Raises:
      UpdateRejectedError: with reason ``bad_weight``.

    Example:
      >>> check_weight(3)
      3
    """
    if isinstance(weight, bool) or not isinstance(weight, int | np.integer) or weight < 1:
        raise UpdateRejectedError("bad_weight", f"num_examples must be an int >= 1, got {weight!r}")
    return int(weight)


def _flatten(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    try:
        return flatten_params(params)
    except CodecError as exc:
        raise UpdateRejectedError("malformed", str(exc)) from exc


def _to_float64(array: np.ndarray) -> np.ndarray:
    """Widens float32 to float64, subnormal inputs flushed to zero (independent of DAZ mode)."""
    wide = np.asarray(array, np.float32).astype(np.float64)
    return np.where(np.abs(wide) < _FLOAT32_TINY, 0.0, wide)


def _to_float32(array: np.ndarray) -> np.ndarray:
    """Rounds float64 to float32 once, results below the float32 normal range flushed to zero."""
    flushed = np.where(np.abs(array) < _FLOAT32_TINY, 0.0, array)
    return np.ascontiguousarray(flushed.astype(np.float32))
