"""Bench: the wearable task (1D-CNN on BasicMotions, 4 class-skewed wearables), 5 seeds.

Federated runs go through the device transforms, the canonical codec and
``build_global_model`` (``learning_common.federate``), like bench/learning.py. Baselines: each
wearable trained alone for as many epochs as the federation ran (rounds x local epochs), and a
centralized model on all 40 train recordings. Metric: accuracy on the 40 pooled test recordings.

    .venv/bin/python bench/wearable.py --json docs/benchmarks/wearable.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from fednode.codec import decode_params
from fednode.device import evaluate, pool_test_sets, train_local
from fednode.device.data import SiteData
from fednode.device.wearable import wearable_sites
from fednode.tasks import initial_payload, wearable_task_spec
from learning_common import federate

log = logging.getLogger("wearable")
SPEC = wearable_task_spec(rounds=10, min_updates=4)


def federated(sites, spec, seed: int) -> dict:
    curve: list[float] = []
    x, y = pool_test_sets(sites)
    params, facts = federate(sites, dataclasses.replace(spec, seed=seed), seed=seed,
                             on_round=lambda v, p: curve.append(evaluate(p, x, y).accuracy))
    reached = next((i + 1 for i, acc in enumerate(curve) if acc >= 0.9), float("inf"))
    sizes = {f"{k}_per_update": float(np.median(v)) for k, v in facts.items()}
    return {"pooled_accuracy": curve[-1], "rounds_to_0.9": reached, **sizes}


def alone(site: SiteData, sites, spec, seed: int) -> dict:
    """One wearable (or the pooled train set) trained alone for rounds x local epochs."""
    params = decode_params(initial_payload(spec, key=jax.random.key(seed)))
    long_spec = dataclasses.replace(spec, local_epochs=spec.rounds * spec.local_epochs)
    delta = train_local(params, site.train, key=jax.random.key(seed + 1), spec=long_spec).delta
    trained = jax.tree_util.tree_map(np.add, params, delta)
    return {"pooled_accuracy": evaluate(trained, *pool_test_sets(sites)).accuracy}


def pooled_site(sites) -> SiteData:
    return SiteData("all", np.concatenate([s.x_train for s in sites]),
                    np.concatenate([s.y_train for s in sites]), sites[0].x_test, sites[0].y_test)


def summarize(runs: list[dict]) -> dict:
    return {k: {"median": statistics.median(r[k] for r in runs), "min": min(r[k] for r in runs),
                "max": max(r[k] for r in runs)} for k in runs[0]}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sites = wearable_sites()
    runs = {
        "fedavg, 4 wearables": lambda s: federated(sites, SPEC, s),
        "fedavg + int8": lambda s: federated(
            sites, dataclasses.replace(SPEC, compression=("int8",)), s),
        "fedavg + top-k 25% + int8": lambda s: federated(
            sites, dataclasses.replace(SPEC, compression=("topk:0.25", "int8")), s),
        "fedavg + top-k 10% + int8": lambda s: federated(
            sites, dataclasses.replace(SPEC, compression=("topk:0.1", "int8")), s),
        "centralized (all 40 train rows)": lambda s: alone(pooled_site(sites), sites, SPEC, s),
        **{f"{site.name} alone": (lambda s, site=site: alone(site, sites, SPEC, s))
           for site in sites},
    }
    results = {}
    for name, run in runs.items():
        started = time.perf_counter()
        results[name] = summarize([run(seed) for seed in args.seeds])
        log.info("%-34s acc %s (%.0f s)", name, results[name]["pooled_accuracy"],
                 time.perf_counter() - started)
        if "calldata_bytes_per_update" in results[name]:
            log.info("  bytes per update: %s", {k: v["median"] for k, v in results[name].items()
                                                if k.endswith("_per_update")})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
