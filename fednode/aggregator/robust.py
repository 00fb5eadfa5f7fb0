"""Aggregator: Byzantine-robust rules (coordinate median, trimmed mean, Multi-Krum, norm clip).

Each is an ``Aggregator(init, apply)`` with the same contract and the same reproducibility rules
as FedAvg (``base.py``): sorting is exact, means of kept values are sequential float64 sums in
a fixed order, distances and norms are ``math.fsum`` of correctly rounded squares, and ties are
broken by ledger position. The median and trimmed mean ignore example counts on purpose (a
poisoned site could claim a huge count); Multi-Krum and norm clipping average the kept or
clipped updates with example-count weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from fednode.aggregator.base import (
    Aggregator,
    Flat,
    ParamTemplate,
    check_delta,
    check_weight,
    flat_sq_norm,
    param_template,
    scale_flat,
    to_float32,
    to_float64,
    weighted_sum,
)
from fednode.codec import unflatten_params
from fednode.errors import FednodeValueError

__all__ = [
    "RobustState",
    "coordinate_median",
    "krum_scores",
    "multi_krum",
    "norm_clip",
    "trimmed_mean",
]


class RobustState(NamedTuple):
    """A robust rule's state: rounds aggregated and the ledger positions kept last time."""

    num_rounds: int
    kept: tuple[int, ...] = ()


def coordinate_median(**params: Any) -> Aggregator:
    """Coordinate-wise median (Yin et al., 2018); the mean of the two middle values if even.

    Example:
      >>> rule = coordinate_median()
      >>> ds = [{"w": np.array([v], np.float32)} for v in (1.0, 2.0, 100.0)]
      >>> rule.apply(ds, [1, 1, 1], rule.init())[0]["w"].tolist()
      [2.0]
    """
    _no_params("median", params)
    return _sorted_rule(lambda n: (n - 1) // 2)


def trimmed_mean(*, beta: float = 0.25) -> Aggregator:
    """Coordinate-wise trimmed mean: drop ``max(1, floor(beta * n))`` values at each end.

    With fewer than 3 updates nothing can be trimmed and it is the plain mean.

    Example:
      >>> rule = trimmed_mean()
      >>> ds = [{"w": np.array([v], np.float32)} for v in (-50.0, 1.0, 3.0, 90.0)]
      >>> rule.apply(ds, [1] * 4, rule.init())[0]["w"].tolist()
      [2.0]
    """
    if not 0.0 <= beta < 0.5:
        raise FednodeValueError(f"trimmed_mean beta must be in [0, 0.5), got {beta}")
    return _sorted_rule(lambda n: 0 if n < 3 else min(max(1, int(beta * n)), (n - 1) // 2))


def multi_krum(*, num_byzantine: int = 1, num_selected: int = 0) -> Aggregator:
    """Multi-Krum (Blanchard et al., 2017): average the updates closest to their neighbours.

    Each update's score is the sum of squared distances to its ``n - f - 2`` nearest others
    (at least 1); the ``num_selected`` lowest scores (default ``n - f``) are averaged with
    example-count weights. ``num_selected=1`` is plain Krum.

    Example:
      >>> rule = multi_krum(num_byzantine=1)
      >>> ds = [{"w": np.array([v], np.float32)} for v in (1.0, 1.2, 0.8, -40.0)]
      >>> delta, state = rule.apply(ds, [1] * 4, rule.init())
      >>> state.kept, round(float(delta["w"][0]), 4)
      ((0, 1, 2), 1.0)
    """
    if num_byzantine < 0 or num_selected < 0:
        raise FednodeValueError("num_byzantine and num_selected must be >= 0")

    def init() -> RobustState:
        return RobustState(num_rounds=0)

    def apply(deltas, weights, state: RobustState) -> tuple[dict[str, Any], RobustState]:
        flats, template = _checked(deltas, weights)
        scores = krum_scores(flats, num_byzantine=num_byzantine)
        keep_count = num_selected or max(1, len(flats) - num_byzantine)
        ranked = sorted(range(len(flats)), key=lambda i: (scores[i], i))
        kept = tuple(sorted(ranked[: min(keep_count, len(flats))]))
        mean = _weighted_mean([flats[i] for i in kept], [weights[i] for i in kept], template)
        return unflatten_params(mean), RobustState(state.num_rounds + 1, kept)

    return Aggregator(init=init, apply=apply)


def krum_scores(flats: Sequence[Flat], *, num_byzantine: int) -> list[float]:
    """Krum score of each update (sum of squared distances to its nearest neighbours).

    Example:
      >>> fl = [{"w": np.array([v], np.float32)} for v in (0.0, 1.0, 5.0)]
      >>> krum_scores(fl, num_byzantine=0)
      [1.0, 1.0, 16.0]
    """
    n = len(flats)
    neighbours = max(1, n - num_byzantine - 2)
    distances = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            gap = {k: np.subtract(to_float64(flats[i][k]), to_float64(flats[j][k])) for k in flats[i]}
            distances[i][j] = distances[j][i] = flat_sq_norm(gap)
    scores = []
    for i in range(n):
        others = sorted(distances[i][j] for j in range(n) if j != i)
        scores.append(math.fsum(others[:neighbours]))
    return scores


def norm_clip(*, max_norm: float = 0.0) -> Aggregator:
    """Clip each update to an L2 norm bound, then FedAvg (Sun et al., 2019).

    ``max_norm`` 0 (the default) clips to the median of this round's update norms, so scaled
    updates lose their leverage without a hand-tuned bound.

    Example:
      >>> rule = norm_clip()
      >>> ds = [{"w": np.array([v], np.float32)} for v in (1.0, 2.0, 300.0)]
      >>> rule.apply(ds, [1, 1, 1], rule.init())[0]["w"].tolist()
      [1.6666666269302368]
    """
    if max_norm < 0:
        raise FednodeValueError(f"norm_clip max_norm must be >= 0, got {max_norm}")

    def init() -> RobustState:
        return RobustState(num_rounds=0)

    def apply(deltas, weights, state: RobustState) -> tuple[dict[str, Any], RobustState]:
        flats, template = _checked(deltas, weights)
        norms = [math.sqrt(flat_sq_norm(flat)) for flat in flats]
        bound = max_norm or _median(norms)
        clipped = [
            scale_flat(flat, bound / norm) if norm > bound else flat
            for flat, norm in zip(flats, norms, strict=True)
        ]
        mean = _weighted_mean(clipped, weights, template)
        kept = tuple(i for i, norm in enumerate(norms) if norm <= bound)
        return unflatten_params(mean), RobustState(state.num_rounds + 1, kept)

    return Aggregator(init=init, apply=apply)


def _sorted_rule(trim_count) -> Aggregator:
    """A coordinate-wise rule on sorted values: mean of the middle ``n - 2 * trim_count(n)``."""

    def init() -> RobustState:
        return RobustState(num_rounds=0)

    def apply(deltas, weights, state: RobustState) -> tuple[dict[str, Any], RobustState]:
        flats, template = _checked(deltas, weights)
        n = len(flats)
        trim = trim_count(n)
        keep_rows = range(trim, n - trim)
        out: Flat = {}
        for name, _ in template:
            ordered = np.sort(np.stack([to_float64(flat[name]) for flat in flats]), axis=0)
            acc = np.zeros_like(ordered[0])
            for row in keep_rows:
                acc = np.add(acc, ordered[row])
            out[name] = to_float32(np.divide(acc, float(len(keep_rows))))
        return unflatten_params(out), RobustState(state.num_rounds + 1, tuple(range(n)))

    return Aggregator(init=init, apply=apply)


def _checked(
    deltas: Sequence[Mapping[str, Any]], weights: Sequence[int]
) -> tuple[list[Flat], ParamTemplate]:
    if not deltas or len(deltas) != len(weights):
        raise FednodeValueError(
            f"need >= 1 delta and one weight per delta, got {len(deltas)} and {len(weights)}"
        )
    template = param_template(deltas[0])
    for weight in weights:
        check_weight(weight)
    return [check_delta(delta, template) for delta in deltas], template


def _weighted_mean(flats: Sequence[Flat], weights: Sequence[int], template: ParamTemplate) -> Flat:
    counts = [int(w) for w in weights]
    total = sum(counts)
    return weighted_sum(flats, [count / total for count in counts], template)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def _no_params(name: str, params: Mapping[str, Any]) -> None:
    if params:
        raise FednodeValueError(f"rule {name!r} takes no parameters, got {sorted(params)}")
