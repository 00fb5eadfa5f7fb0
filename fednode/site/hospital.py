"""Site: the per-site loop of a hospital (or any data holder) taking part in a task.

A site holds its private data and one device identity enrolled at its edge server. Each round
it pulls the global model, trains on its own rows (pure ``fednode.device``), applies the task's
transforms (clipping, DP noise, compression) and posts the signed delta; at the end it
evaluates final versions on its own test split and posts the signed evaluation. Nothing but
the delta, its example count, its declared privacy spend and the evaluation leaves the site.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from fednode.device.data import (
    Normalizer,
    SiteData,
    compute_feature_stats,
    normalize,
    normalizer_from_stats,
)
from fednode.device.metrics import evaluate
from fednode.device.train import train_local
from fednode.device.transforms import apply_transforms
from fednode.privacy.accountant import declared_spend
from fednode.privacy.calibration import site_privacy_spec
from fednode.site.device_client import EdgeClient
from fednode.tasks import feature_stats_params, stats_from_params
from fednode.types import TaskSpec

__all__ = ["Hospital", "PreparedUpdate"]


@dataclass(frozen=True)
class PreparedUpdate:
    """A trained, transformed delta on ``base_version``, not yet posted (its privacy cost is
    counted only once its edge accepts it)."""

    base_version: int
    delta: dict[str, Any]
    num_examples: int
    epsilon_micro: int
    dp_steps: int


@dataclass
class Hospital:
    """One hospital: its private data, its device identity and the client to its edge server."""

    site: SiteData
    edge_name: str
    client: EdgeClient
    edge_address: str = ""
    normalizer: Normalizer | None = None
    transform_state: Any = None
    dp_steps: int = 0

    def post_feature_stats(self, task_id: int) -> str:
        """Sends only count / sums / sums of squares of the local training features."""
        version, _ = self.client.fetch_global(task_id)
        stats = feature_stats_params(compute_feature_stats(self.site.x_train))
        return self.client.post_update(task_id, version, stats, num_examples=len(self.site.y_train))

    def adopt_normalizer(self, stats_task_id: int) -> None:
        """Pulls the consortium-wide statistics (version 1 of the stats task) from the edge."""
        _, total = self.client.fetch_global(stats_task_id, version=1)
        self.normalizer = normalizer_from_stats(stats_from_params(total))

    def train_round(self, task_id: int, spec: TaskSpec, *, key: jax.Array) -> tuple[int, str]:
        """Pulls the global model, trains locally, posts the delta; returns (base, update ref)."""
        return self.post_prepared(task_id, self.prepare_update(task_id, spec, key=key))

    def prepare_update(self, task_id: int, spec: TaskSpec, *, key: jax.Array) -> PreparedUpdate:
        """Pulls the latest global model and trains on it (nothing is sent yet)."""
        train_key, transform_key = jax.random.split(key)
        spec = self.privacy_spec(spec)
        version, params = self.client.fetch_global(task_id)
        update = train_local(params, self.train_data(), key=train_key, spec=spec)
        delta, self.transform_state = apply_transforms(
            update.delta, spec, key=transform_key, state=self.transform_state)
        spend = declared_spend(spec, update.num_examples, steps_before=self.dp_steps,
                               steps_now=update.dp_steps)
        return PreparedUpdate(version, delta, update.num_examples, spend, update.dp_steps)

    def privacy_spec(self, spec: TaskSpec) -> TaskSpec:
        """The task as this site trains it: its own DP noise where the task calibrates per site."""
        return site_privacy_spec(spec, len(self.site.y_train))

    def post_prepared(self, task_id: int, prepared: PreparedUpdate) -> tuple[int, str]:
        """Posts a prepared delta to the edge; returns (base version, update ref).

        The declared spend is the increment over the DP steps of the updates already accepted,
        so the on-chain sum of an edge's declarations is the composed epsilon of what it
        published (rounded up), as the auditor recomputes it (``check_privacy_declarations``).
        """
        ref = self.client.post_update(task_id, prepared.base_version, prepared.delta,
                                      num_examples=prepared.num_examples,
                                      epsilon_micro=prepared.epsilon_micro)
        self.dp_steps += prepared.dp_steps  # only an update the edge accepted counts
        return prepared.base_version, ref

    def evaluate_version(self, task_id: int, version: int) -> str:
        """Evaluates final global ``version`` on the local test split; posts it signed.

        Accuracy is the metric and AUC the second one (None where the test set has one class).
        Returns the edge's evaluation reference; the edge submits it with its own account.
        """
        _, params = self.client.fetch_global(task_id, version=version)
        result = evaluate(params, *self.test_data())
        auc = None if math.isnan(result.auc) else result.auc
        return self.client.post_evaluation(task_id, version, metric=result.accuracy,
                                           num_examples=result.num_examples, secondary=auc)

    def train_data(self) -> tuple[np.ndarray, np.ndarray]:
        return normalize(self.site.x_train, self.normalizer), self.site.y_train

    def test_data(self) -> tuple[np.ndarray, np.ndarray]:
        return normalize(self.site.x_test, self.normalizer), self.site.y_test
