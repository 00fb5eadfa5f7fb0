"""All stages: the demo's consortium, 4 hospitals each behind its own edge server and validator.

Devices (pure ``fednode.device`` training) talk only to their edge server over HTTP; edge servers
submit to their own validator; the aggregator and the auditor read the ledger. Nothing here
shortcuts the chain: every number the demo reports was read back from it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import jax
import numpy as np

from edge_server.config import EdgeConfig
from edge_server.device_client import DeviceIdentity, EdgeClient
from edge_server.service import EdgeServer, enroll_device
from fednode.chain.connect import open_ledger
from fednode.codec import decode_params
from fednode.device.data import (
    Normalizer,
    SiteData,
    compute_feature_stats,
    normalize,
    normalizer_from_stats,
    pool_test_sets,
)
from fednode.device.metrics import Evaluation, evaluate
from fednode.device.personalize import calibrate_site, personalize
from fednode.device.train import train_local
from fednode.device.transforms import apply_transforms
from fednode.privacy.accountant import declared_spend
from fednode.privacy.calibration import site_privacy_spec
from fednode.tasks import feature_stats_params, initial_payload, stats_from_params
from fednode.types import TaskSpec

__all__ = [
    "Hospital", "PreparedUpdate", "evaluate_sites", "hospitals_online", "train_single_site",
]


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


@contextlib.contextmanager
def hospitals_online(
    network_dir: Path, work_dir: Path, sites: Sequence[SiteData], *, confirmations: int
) -> Iterator[list[Hospital]]:
    """Starts one edge server per hospital (edge-i on validator i) and enrolls its device."""
    servers: list[EdgeServer] = []
    try:
        hospitals = []
        for index, site in enumerate(sites):
            edge_name = f"edge-{index + 1}"
            ledger = open_ledger(network_dir, edge_name, node=index, confirmations=confirmations)
            config = EdgeConfig(name=edge_name, db_path=str(work_dir / f"{edge_name}.sqlite"),
                                port=0, submit_poll_interval_s=0.2, confirmations=confirmations)
            server = EdgeServer(config, ledger)
            server.start()
            servers.append(server)
            identity = DeviceIdentity.generate(device_id=_device_id(site.name))
            enroll_device(server.store, identity.device_id, identity.public_key_hex)
            client = EdgeClient(server.url, identity)
            hospitals.append(Hospital(site, edge_name, client, edge_address=ledger.sender))
        yield hospitals
    finally:
        for server in servers:
            server.stop()


def _device_id(site_name: str) -> str:
    return "dev-" + site_name.lower().replace(" ", "-")


def evaluate_sites(params, hospitals: Sequence[Hospital]) -> dict[str, Evaluation]:
    """Per-site test metrics plus ``"pooled"`` over all test sets (each site normalized alike)."""
    results = {h.site.name: evaluate(params, *h.test_data()) for h in hospitals}
    xs, ys = zip(*(h.test_data() for h in hospitals), strict=True)
    results["pooled"] = evaluate(params, np.concatenate(xs), np.concatenate(ys))
    return results


def personalize_sites(params, hospitals: Sequence[Hospital], *, key: jax.Array) -> dict:
    """Each hospital's personalized metrics: the final global model with an intercept shift
    the site fits on its own train rows and adopts only if 5-fold CV on them favours it
    (``fednode.device.personalize``; the test rows are never read for the choice)."""
    results = {}
    for index, hospital in enumerate(hospitals):
        calibration = calibrate_site(params, *hospital.train_data(),
                                     key=jax.random.fold_in(key, index))
        evaluation = evaluate(personalize(params, calibration), *hospital.test_data())
        results[hospital.site.name] = {**asdict(evaluation), "adopted": calibration.adopted,
                                       "shift": calibration.shift}
    return results


def train_single_site(
    spec: TaskSpec, site: SiteData, sites: Sequence[SiteData], *, key: jax.Array
) -> dict[str, Evaluation]:
    """The single-site baseline: the same model trained on one site's data alone.

    The site normalizes with its own statistics (it has no one else's) and trains for as many
    epochs as the federation ran (rounds x local epochs), under DP with the same epsilon.
    Evaluated on its own and the pooled test set.
    """
    tabular = site.x_train.ndim == 2  # sensor sequences (wearables) are used as recorded
    normalizer = normalizer_from_stats(compute_feature_stats(site.x_train)) if tabular else None
    params = initial_params(spec, key=jax.random.key(spec.seed))
    # under DP the site alone gets the same budget over the same number of steps
    local_spec = replace(site_privacy_spec(spec, len(site.y_train)),
                         local_epochs=spec.rounds * spec.local_epochs)
    x_train = normalize(site.x_train, normalizer)
    delta = train_local(params, (x_train, site.y_train), key=key, spec=local_spec).delta
    trained = jax.tree_util.tree_map(np.add, params, delta)
    x_pool, y_pool = pool_test_sets(sites)
    return {
        "own": evaluate(trained, normalize(site.x_test, normalizer), site.y_test),
        "pooled": evaluate(trained, normalize(x_pool, normalizer), y_pool),
    }


def initial_params(spec: TaskSpec, *, key: jax.Array):
    """The task's version-0 parameters, decoded from the same bytes that go on chain."""
    return decode_params(initial_payload(spec, key=key))
