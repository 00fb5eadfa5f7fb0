"""Bench: FedBuff vs synchronous FedAvg on 4 real geth validators with one straggling hospital.

The wall-clock twin of ``async_stragglers.py``: the same 4 hospitals of the demo, each behind its
own edge server and validator (``fednode.cli.demo_flow``), train the heart task concurrently,
one thread per hospital. A hospital pulls the newest global model it has not trained on, trains,
then waits its device time before it posts (VA Long Beach, the straggler, 12 s; the others
0.5 s), and waits for its update to be committed on chain. The aggregator loop (``run_round``)
commits each version as soon as the task's rule lets it: sync waits for all 4 updates on the
newest version; async (FedBuff, K = 3, max staleness 4, staleness weight 1/sqrt(1+s)) builds a
version from any 3 updates on recent enough bases, so the straggler's update lands later,
stale and down-weighted, and never holds the others up. Everything goes through the chain
(payload calldata, staleness window and one-update-per-base enforced by the contracts).
Reports wall seconds from publication to the first version with pooled accuracy >= target.

    .venv/bin/python bench/async_stragglers_geth.py --seeds 0 1 2 3 4 \\
        --json docs/benchmarks/async_stragglers_geth.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import jax
from sim_heart import normalize_sites

from fednode.aggregator.round import run_round
from fednode.chain.connect import open_ledger
from fednode.cli.chain_cmd import deploy_network
from fednode.cli.demo_flow import evaluate_sites, hospitals_online
from fednode.codec import decode_params
from fednode.device import load_heart_disease
from fednode.errors import ChainTimeoutError
from fednode.network.manager import network_down, network_up
from fednode.site.device_client import EdgeError
from fednode.site.hospital import Hospital
from fednode.tasks import heart_task_spec, initial_payload

log = logging.getLogger("async-geth")
STRAGGLER = "VA Long Beach"
DEVICE_SECONDS = {STRAGGLER: 12.0}
DEFAULT_DEVICE_SECONDS = 0.5
BASE = heart_task_spec(normalization_task=1, rounds=12, min_updates=4)
MODES = {
    "sync fedavg (waits for all 4)": BASE,
    "async fedbuff K=3, max staleness 4": dataclasses.replace(
        BASE, mode="async", min_updates=3, max_staleness=4, rounds=24),
}


def device_loop(hospital: Hospital, task_id: int, spec, *, key, stop: threading.Event) -> None:
    """Train on each new version once: pull, train, device time, post, wait for the chain."""
    trained_on = -1
    delay = DEVICE_SECONDS.get(hospital.site.name, DEFAULT_DEVICE_SECONDS)
    while not stop.is_set():
        try:
            if hospital.client.fetch_task(task_id).latest_version <= trained_on:
                stop.wait(0.2)  # nothing newer to learn from yet
                continue
            key, sub = jax.random.split(key)
            prepared = hospital.prepare_update(task_id, spec, key=sub)
            trained_on = prepared.base_version
            if stop.wait(delay):
                return
            _, ref = hospital.post_prepared(task_id, prepared)
            hospital.client.wait_submitted(ref, timeout=120)
        except EdgeError as error:  # a stale base refused by the chain, a task not yet seen
            log.info("  %s: %s", hospital.site.name, error)
            stop.wait(0.5)


def run_mode(spec, hospitals, publisher, aggregator, *, seed: int, target: float,
             horizon: float) -> dict:
    """One task in one mode; returns the curve [(seconds, version, pooled acc)]."""
    spec = dataclasses.replace(spec, seed=seed)
    task_id = publisher.publish_task(spec, initial_payload(spec, key=jax.random.key(seed)))
    stop = threading.Event()
    threads = [threading.Thread(target=device_loop, daemon=True, args=(h, task_id, spec),
                                kwargs={"key": jax.random.key(100 * seed + i), "stop": stop})
               for i, h in enumerate(hospitals)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    curve, reached = [], float("inf")
    try:
        while (time.monotonic() - started < horizon
               and aggregator.latest_version(task_id) < spec.rounds):
            try:
                record = run_round(aggregator, task_id, timeout=5.0, poll=0.2).record
            except ChainTimeoutError:
                continue
            elapsed = time.monotonic() - started
            accuracy = evaluate_sites(decode_params(record.payload), hospitals)["pooled"].accuracy
            curve.append((round(elapsed, 2), record.version, accuracy))
            log.info("  v%d at %.1f s: pooled acc %.3f", record.version, elapsed, accuracy)
            if accuracy >= target:
                reached = elapsed
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=150)
    return {"task_id": task_id, "time_to_target_s": reached, "curve": curve,
            "versions": curve[-1][1] if curve else 0,
            "aggregated": aggregated_staleness(aggregator, task_id, hospitals)}


def aggregated_staleness(ledger, task_id: int, hospitals) -> dict[int, list]:
    """Read back from the chain: per version, ``[site, staleness]`` of every update it holds."""
    site_of = {h.edge_address: h.site.name for h in hospitals}
    updates = {u.update_id: u for u in ledger.read_updates(task_id)}
    return {record.version: [[site_of.get(updates[i].edge, updates[i].edge),
                              record.version - 1 - updates[i].base_version]
                             for i in record.update_ids]
            for record in ledger.read_global_models(task_id)[1:]}


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("fednode").setLevel(logging.WARNING)
    logging.getLogger("edge_server").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--target", type=float, default=0.78)
    parser.add_argument("--horizon", type=float, default=240.0, help="wall seconds per run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sites = normalize_sites(load_heart_disease())
    work = Path(tempfile.mkdtemp(prefix="fednode-async-geth-"))
    network_dir = work / "network"
    network_up(network_dir, validators=4, tie_to_caller=True)
    results: dict = {"target": args.target, "seeds": args.seeds,
                     "device_seconds": {**{s.name: DEFAULT_DEVICE_SECONDS for s in sites},
                                        **DEVICE_SECONDS}}
    try:
        deploy_network(network_dir)
        publisher = open_ledger(network_dir, "publisher")
        aggregator = open_ledger(network_dir, "aggregator")
        with hospitals_online(network_dir, work, sites, confirmations=1) as hospitals:
            for name, spec in MODES.items():
                runs = []
                for seed in args.seeds:
                    log.info("== %s, seed %d", name, seed)
                    runs.append(run_mode(spec, hospitals, publisher, aggregator, seed=seed,
                                         target=args.target, horizon=args.horizon))
                times = [r["time_to_target_s"] for r in runs]
                results[name] = {"time_to_target_median_s": statistics.median(times),
                                 "time_to_target_s": times, "runs": runs}
                log.info("%s: time to acc >= %.2f median %.1f s %s", name, args.target,
                         statistics.median(times), [round(t, 1) for t in times])
    finally:
        network_down(network_dir)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
