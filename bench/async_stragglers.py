"""Bench: FedBuff (async, K updates, staleness-weighted) vs synchronous FedAvg with stragglers.

12 devices (each hospital's train rows split over 3 devices) train on the heart task; device
``i`` needs ``delay_i`` simulated seconds per local training (lognormal around 1 s, and two
stragglers 8x slower). Both modes run on ``InMemoryLedger`` with the real ``run_round`` and
``build_global_model``: devices submit through the ledger (the contract's staleness window and
one-submission-per-base rule apply), the aggregator commits versions. Sync: a version waits for
all 12. Async (``mode="async"``, K=4, max_staleness 4): a version is built as soon as 4 fresh
enough updates are on the ledger; a device whose base went stale retrains on the newest model.
Reports simulated time to reach the target pooled accuracy, median over seeds.

    .venv/bin/python bench/async_stragglers.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import logging
import statistics
import sys
from pathlib import Path

import jax
import numpy as np

from fednode.aggregator.round import aggregated_update_ids, run_round, select_round_updates
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import decode_params, encode_params
from fednode.device import evaluate, load_heart_disease, pool_test_sets, train_local
from fednode.errors import ContractRevertError
from fednode.tasks import heart_task_spec, initial_payload
from sim_heart import normalize_sites

log = logging.getLogger("async")
DEVICES_PER_SITE = 3
STRAGGLERS = (0, 7)
STRAGGLER_SLOWDOWN = 8.0


def _devices(sites):
    out = []
    for site in sites:
        for d in range(DEVICES_PER_SITE):
            rows = np.arange(d, len(site.y_train), DEVICES_PER_SITE)
            out.append((site.x_train[rows], site.y_train[rows]))
    return out


def _ledger(num_devices):
    admin = InMemoryLedger()
    edges = [f"0x{i + 1:040x}" for i in range(num_devices)]
    for index, edge in enumerate(edges):
        admin.register_edge(edge, f"0x{index + 1000:040x}", f"device-{index}")
    admin.grant_role(PUBLISHER_ROLE, admin.sender)
    admin.grant_role(AGGREGATOR_ROLE, admin.sender)
    return admin, edges


def simulate(spec, devices, delays, test, *, seed, horizon):
    """Event simulation; returns [(sim time, version, pooled accuracy)]."""
    ledger, edges = _ledger(len(devices))
    task_id = ledger.publish_task(spec, initial_payload(spec, key=jax.random.key(seed)))
    key = jax.random.key(seed + 1)
    events = [(delays[i], i, 0) for i in range(len(devices))]  # (finish time, device, base)
    heapq.heapify(events)
    curve = [(0.0, 0, evaluate(decode_params(initial_payload(spec, key=jax.random.key(seed))), *test).accuracy)]
    waiting: list[int] = []
    while events:
        now, device, base = heapq.heappop(events)
        if now > horizon:
            break
        records = ledger.read_global_models(task_id)
        params = decode_params(records[base].payload)
        key, sub = jax.random.split(key)
        update = train_local(params, devices[device], key=sub, spec=spec)
        try:
            ledger.as_sender(edges[device]).submit_update(
                task_id, base, encode_params(update.delta), num_examples=update.num_examples)
        except ContractRevertError:
            pass  # stale base (or already submitted on it): retrain on the newest model
        task = ledger.get_task(task_id)
        pending = select_round_updates(task, ledger.read_updates(task_id),
                                       aggregated=aggregated_update_ids(records))
        if len(pending) >= spec.min_updates:
            record = run_round(ledger, task_id, timeout=0.0).record
            acc = evaluate(decode_params(record.payload), *test).accuracy
            curve.append((now, record.version, acc))
            if ledger.get_task(task_id).state.name == "FINISHED":
                break
        latest = ledger.latest_version(task_id)
        if spec.mode == "sync":
            waiting.append(device)
            if len(waiting) == len(devices) or latest > base:
                for d in waiting:
                    heapq.heappush(events, (now + delays[d], d, latest))
                waiting = []
        else:
            heapq.heappush(events, (now + delays[device], device, latest))
    return curve


def time_to(curve, target):
    for now, _, acc in curve:
        if acc >= target:
            return now
    return float("inf")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("fednode").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--target", type=float, default=0.78)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sites = normalize_sites(load_heart_disease())
    devices, test = _devices(sites), pool_test_sets(sites)
    base = heart_task_spec(normalization_task=1, min_updates=len(devices), rounds=12)
    modes = {
        "sync fedavg (waits for all 12)": base,
        "async fedbuff K=4, 1/sqrt(1+s)": dataclasses.replace(
            base, mode="async", min_updates=4, max_staleness=4, rounds=60),
    }
    results = {}
    for name, spec in modes.items():
        times, finals = [], []
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            delays = rng.lognormal(0.0, 0.3, len(devices))
            delays[list(STRAGGLERS)] *= STRAGGLER_SLOWDOWN
            curve = simulate(spec, devices, delays, test, seed=seed, horizon=120.0)
            times.append(float(time_to(curve, args.target)))
            finals.append(float(curve[-1][2]))
        results[name] = {"time_to_target_median": statistics.median(times), "time_to_target": times,
                         "final_accuracy_median": statistics.median(finals)}
        log.info("%-40s time to acc>=%.2f: median %.1f s %s | final acc %.3f", name, args.target,
                 statistics.median(times), [round(t, 1) for t in times], statistics.median(finals))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
