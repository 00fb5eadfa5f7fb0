"""Aggregator: one task's full aggregation pipeline, staleness scaling -> rule -> server optimizer.

``pipeline_rule`` wraps any ``Aggregator`` into the rule ``build_global_model`` runs. Its state,
``RuleState``, counts the versions built so far, so the staleness of an update is
``state.version - update.base_version``; it is rebuilt from the ledger alone by
``replay_rule_state``. Asynchronous tasks (FedBuff, Nguyen et al., 2022) scale each delta by
``staleness_factor`` before the rule sees it; a server optimizer then turns the rule's delta
into the step the global model takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import optax

from fednode.aggregator.base import Aggregator, param_template, scale_flat, to_float32, to_float64
from fednode.codec import flatten_params, unflatten_params
from fednode.errors import FednodeValueError, UpdateRejectedError
from fednode.types import STALENESS_WEIGHTINGS

__all__ = ["STALENESS_WEIGHTINGS", "RuleState", "pipeline_rule", "staleness_factor"]



class RuleState(NamedTuple):
    """State of a pipeline: versions built, the inner rule's state, the server optimizer's."""

    version: int
    rule: Any
    server: Any = None


def staleness_factor(staleness: int, *, weighting: str = "sqrt") -> float:
    """How much an update ``staleness`` versions old counts: ``1 / sqrt(1 + s)`` or 1.

    ``math.sqrt`` is correctly rounded, so every machine gets the same double.

    Example:
      >>> staleness_factor(0), staleness_factor(3)
      (1.0, 0.5)
    """
    if staleness < 0:
        raise UpdateRejectedError("future_base", f"staleness {staleness} < 0")
    if weighting not in STALENESS_WEIGHTINGS:
        raise FednodeValueError(f"staleness weighting must be one of {STALENESS_WEIGHTINGS}")
    return 1.0 if weighting == "constant" else 1.0 / math.sqrt(1.0 + staleness)


def pipeline_rule(
    rule: Aggregator, optimizer: optax.GradientTransformation | None, *, staleness: str = ""
) -> Aggregator:
    """Wraps ``rule`` with staleness scaling (``staleness`` non-empty) and a server optimizer.

    ``apply(deltas, weights, state, *, base_versions=None)``: ``base_versions`` are the
    updates' base versions (only used when ``staleness`` is set; ``None`` = all fresh).

    Example:
      >>> from fednode.aggregator.rules import fedavg
      >>> rule = pipeline_rule(fedavg(), None, staleness="sqrt")
      >>> ds = [{"w": np.ones(1, np.float32)}, {"w": np.ones(1, np.float32)}]
      >>> delta, state = rule.apply(ds, [1, 1], rule.init()._replace(version=3),
      ...                           base_versions=[3, 0])
      >>> delta["w"].tolist(), state.version
      ([0.75], 4)
    """

    def init() -> RuleState:
        return RuleState(version=0, rule=rule.init(), server=None)

    def apply(
        deltas: Sequence[Mapping[str, Any]], weights: Sequence[int], state: RuleState, *,
        base_versions: Sequence[int] | None = None,
    ) -> tuple[dict[str, Any], RuleState]:
        if staleness and base_versions is not None:
            deltas = _scale_stale(deltas, base_versions, state.version, staleness)
        delta, rule_state = rule.apply(deltas, weights, state.rule)
        server = state.server
        if optimizer is not None:
            delta, server = _server_step(optimizer, delta, server)
        return delta, RuleState(state.version + 1, rule_state, server)

    return Aggregator(init=init, apply=apply)


def _scale_stale(
    deltas: Sequence[Mapping[str, Any]], base_versions: Sequence[int], version: int, weighting: str
) -> list[Mapping[str, Any]]:
    if len(base_versions) != len(deltas):
        raise FednodeValueError("need one base version per delta")
    scaled: list[Mapping[str, Any]] = []
    for delta, base in zip(deltas, base_versions, strict=True):
        factor = staleness_factor(version - int(base), weighting=weighting)
        if factor == 1.0:
            scaled.append(delta)
        else:
            param_template(delta)  # refuse non-float32 before scaling
            scaled.append(unflatten_params(scale_flat(flatten_params(delta), factor)))
    return scaled


def _server_step(
    optimizer: optax.GradientTransformation, delta: Mapping[str, Any], server: Any
) -> tuple[dict[str, Any], Any]:
    grads = {name: np.negative(to_float64(a)) for name, a in flatten_params(delta).items()}
    if server is None:
        server = optimizer.init(grads)
    updates, server = optimizer.update(grads, server)
    return unflatten_params({name: to_float32(u) for name, u in updates.items()}), server
