"""All stages: the demo's consortium, 4 hospitals each behind its own edge server and validator.

Each hospital runs the per-site loop (``fednode.site.hospital.Hospital``: pure
``fednode.device`` training, talking only to its edge server over HTTP); edge servers
submit to their own validator; the aggregator and the auditor read the ledger. Nothing here
shortcuts the chain: every number the demo reports was read back from it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import jax
import numpy as np

from edge_server.config import EdgeConfig
from edge_server.service import EdgeServer, enroll_device
from fednode.chain.connect import open_ledger
from fednode.codec import decode_params
from fednode.device.data import (
    SiteData,
    compute_feature_stats,
    normalize,
    normalizer_from_stats,
    pool_test_sets,
)
from fednode.device.metrics import Evaluation, evaluate
from fednode.device.personalize import calibrate_site, personalize
from fednode.device.train import train_local
from fednode.privacy.calibration import site_privacy_spec
from fednode.site.device_client import DeviceIdentity, EdgeClient
from fednode.site.hospital import Hospital
from fednode.tasks import initial_payload
from fednode.types import TaskSpec

__all__ = ["evaluate_sites", "hospitals_online", "personalize_sites", "train_single_site"]


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
