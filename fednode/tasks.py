"""Task publisher: the task specs the consortium ships, and their initial global models (pure).

Two task kinds run the cardiovascular-risk job:

* a **feature-stats task** (one round, rule ``sum``): every site submits only its feature count,
  sums and sums of squares; the committed version 1 is their total, so every site can normalize
  with the consortium-wide mean and standard deviation without sharing a record;
* the **heart task** (logistic regression or MLP, rule ``fedavg``), whose spec names the
  feature-stats task it normalizes with (``normalization_task``).

The **wearable task** (``wearable_task_spec``) classifies smart-watch activity recordings
(BasicMotions, ``fednode.device.wearable``) with a small 1D-CNN (``model="cnn1d"``, 4 classes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from fednode.codec import encode_params
from fednode.device.data import HEART_FEATURES, FeatureStats
from fednode.device.model import init_params, model_options
from fednode.device.wearable import WEARABLE_CHANNELS, WEARABLE_CLASSES, WEARABLE_STEPS
from fednode.errors import TaskSpecError
from fednode.types import TaskSpec

__all__ = [
    "HEART_DP_SGD",
    "HEART_METRIC_FLOOR",
    "HEART_SCHEMA",
    "WEARABLE_SCHEMA",
    "feature_stats_params",
    "feature_stats_spec",
    "heart_task_spec",
    "initial_payload",
    "stats_from_params",
    "wearable_task_spec",
    "with_private_training",
    "with_site_weighting",
]

HEART_SCHEMA = "uci-heart-disease/flamby-v1:" + ",".join(HEART_FEATURES)
"""Data schema id: the FLamby Fed-Heart-Disease features, in order."""
WEARABLE_SCHEMA = (
    f"uea-basicmotions/v1:{','.join(WEARABLE_CHANNELS)}x{WEARABLE_STEPS}->"
    + ",".join(WEARABLE_CLASSES)
)
"""Data schema id: BasicMotions channels x steps, and the class names in index order."""


HEART_METRIC_FLOOR = 0.7
"""Per-site accuracy floor of the heart task's acceptance gate: above FLamby's FedAvg 0.685;
FedAvg's worst hospital reaches 0.740 to 0.769 over seeds 0-4 (docs/benchmarks/learning.md)."""


def heart_task_spec(
    *, normalization_task: int, rounds: int = 10, min_updates: int = 4, model: str = "logreg",
    hidden_sizes: tuple[int, ...] = (), seed: int = 0, deadline: int = 0, **overrides: Any,
) -> TaskSpec:
    """The cardiovascular-risk training task (defaults tuned in bench/sim_heart.py).

    Example:
      >>> heart_task_spec(normalization_task=1).normalization_task
      1
    """
    spec = TaskSpec(
        name="cardio-risk", data_schema=HEART_SCHEMA, num_features=len(HEART_FEATURES),
        model=model, hidden_sizes=tuple(hidden_sizes), rounds=rounds, min_updates=min_updates,
        local_epochs=5, batch_size=32, learning_rate=0.1, max_update_norm=50.0,
        deadline=deadline, seed=seed, metric_floor=HEART_METRIC_FLOOR,
        normalization_task=int(normalization_task), local_optimizer="sgd",
    )
    return dataclasses.replace(spec, **overrides) if overrides else spec


HEART_DP_SGD = {"batch_size": 128, "local_epochs": 2, "learning_rate": 0.3, "clip_norm": 1.0}
"""Local training of the heart task under DP-SGD at epsilon 1: chosen on held-out *train* rows
by ``bench/dp_select.py`` (docs/benchmarks/learning.md, "dp"); fewer, larger steps need less
noise per step for the same epsilon."""


def with_private_training(
    spec: TaskSpec, *, epsilon: float, accountant: str = "rdp", delta: float = 1e-5,
    local: dict[str, Any] | None = None,
) -> TaskSpec:
    """The task trained with DP-SGD, every site calibrating its noise to ``epsilon``.

    Per-example clipping inside local training (``dp_unit="example"``), noise solved per site
    for its own sampling rate (``noise_calibration="per_site"``), ``epsilon`` as the on-chain
    budget per site, so the contract refuses any update that would push a site past it.

    Args:
      spec: the task without DP.
      epsilon: the per-site budget over the whole task (> 0).
      accountant: ``"rdp"`` or ``"pld"``, used by the sites and declared in the spec.
      delta: target delta.
      local: local-training overrides; defaults to :data:`HEART_DP_SGD`.

    Example:
      >>> spec = with_private_training(heart_task_spec(normalization_task=1), epsilon=1.0)
      >>> spec.epsilon_budget, spec.batch_size, spec.noise_calibration
      (1.0, 128, 'per_site')
    """
    settings = dict(HEART_DP_SGD if local is None else local)
    return dataclasses.replace(spec, **settings, epsilon_budget=float(epsilon), delta=delta,
                               accountant=accountant, noise_multiplier=0.0, dp_unit="example",
                               noise_calibration="per_site")


def with_site_weighting(spec: TaskSpec, *, example_power: float) -> TaskSpec:
    """The task's FedAvg weighting ``n_i ** example_power`` (1 = by examples; 0 = every site
    the same, the bias correction that serves the worst hospital; docs/benchmarks/learning.md).

    Example:
      >>> spec = with_site_weighting(heart_task_spec(normalization_task=1), example_power=0.0)
      >>> spec.aggregation_params
      (('example_power', 0.0),)
    """
    params = {**dict(spec.aggregation_params), "example_power": float(example_power)}
    return dataclasses.replace(spec, aggregation_params=tuple(sorted(params.items())))


def wearable_task_spec(
    *, rounds: int = 10, min_updates: int = 4, conv_sizes: tuple[int, ...] = (16, 16),
    kernel_size: int = 5, seed: int = 0, deadline: int = 0, **overrides: Any,
) -> TaskSpec:
    """The wearable activity task: a 1D-CNN over 6 x 100 smart-watch sequences, 4 classes.

    Defaults measured in bench/wearable.py (FedAvg over 4 class-skewed wearables).

    Example:
      >>> spec = wearable_task_spec()
      >>> spec.model, spec.num_features, spec.num_classes
      ('cnn1d', 6, 4)
    """
    spec = TaskSpec(
        name="wearable-activity", data_schema=WEARABLE_SCHEMA,
        num_features=len(WEARABLE_CHANNELS), model="cnn1d", hidden_sizes=tuple(conv_sizes),
        rounds=rounds, min_updates=min_updates, local_epochs=5, batch_size=8,
        learning_rate=0.01, max_update_norm=100.0, deadline=deadline, seed=seed,
        num_classes=len(WEARABLE_CLASSES), sequence_length=WEARABLE_STEPS,
        kernel_size=int(kernel_size), local_optimizer="adam",
    )
    return dataclasses.replace(spec, **overrides) if overrides else spec


def feature_stats_spec(*, min_updates: int = 4, deadline: int = 0) -> TaskSpec:
    """The one-round task in which sites share counts, sums and sums of squares.

    Example:
      >>> feature_stats_spec().aggregation
      'sum'
    """
    return TaskSpec(
        name="cardio-feature-stats", data_schema=HEART_SCHEMA, num_features=len(HEART_FEATURES),
        model="feature_stats", rounds=1, min_updates=min_updates, aggregation="sum",
        max_update_norm=1e12, deadline=deadline,
    )


def feature_stats_params(stats: FeatureStats) -> dict[str, np.ndarray]:
    """A site's statistics as a parameter set (the payload of its feature-stats update).

    Example:
      >>> from fednode.device.data import compute_feature_stats
      >>> p = feature_stats_params(compute_feature_stats(np.ones((3, 2), np.float32)))
      >>> p["count"].tolist(), p["sum"].tolist()
      ([3.0], [3.0, 3.0])
    """
    return {
        "count": np.asarray([stats.count], np.float32),
        "sum": np.asarray(stats.sum, np.float32),
        "sum_sq": np.asarray(stats.sum_sq, np.float32),
    }


def stats_from_params(params: dict[str, Any]) -> FeatureStats:
    """Reads the committed total back into ``FeatureStats``.

    Example:
      >>> s = stats_from_params({"count": np.array([2.0]), "sum": np.ones(1), "sum_sq": np.ones(1)})
      >>> s.count
      2
    """
    return FeatureStats(
        count=int(np.asarray(params["count"])[0]),
        sum=np.asarray(params["sum"], np.float64),
        sum_sq=np.asarray(params["sum_sq"], np.float64),
    )


def initial_payload(spec: TaskSpec, *, key: jax.Array) -> bytes:
    """Canonical bytes of a task's initial global model (version 0).

    Example:
      >>> len(initial_payload(feature_stats_spec(), key=jax.random.key(0))) > 0
      True
    """
    if spec.model == "feature_stats":
        zeros = np.zeros(spec.num_features, np.float32)
        return encode_params({"count": np.zeros(1, np.float32), "sum": zeros, "sum_sq": zeros})
    if spec.model in ("logreg", "mlp", "cnn1d"):
        params = init_params(key, **model_options(spec))
        return encode_params(jax.tree_util.tree_map(np.asarray, params))
    raise TaskSpecError(f"no initial model for model kind {spec.model!r}")
