"""Bench: end-to-end round time of 4 hospitals on 4 geth Clique validators, and how much of it
is spent waiting for blocks.

Each round: every hospital pulls the global model from the chain, trains locally (JAX), and its
edge account submits the delta through its own validator (the 4 submissions in parallel); then
the aggregator reads the updates, aggregates and commits the next version. Every wait for a
receipt (and its confirmations) is timed by wrapping ``TransactionSender.wait_for_receipt``;
the "block wait" fraction is the time in those waits on the round's critical path (the
slowest hospital's submit wait plus the aggregator's commit wait) over the round's wall time.

    .venv/bin/python bench/round_time.py --rounds 5 --confirmations 1 --json /tmp/round.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax

from fednode.aggregator.round import run_round
from fednode.chain.connect import open_ledger
from fednode.cli.chain_cmd import deploy_network
from fednode.codec import decode_params, encode_params
from fednode.device.data import load_heart_disease, normalize, normalizer_from_stats
from fednode.device.normalization import combine_feature_stats, compute_feature_stats
from fednode.device.train import train_local
from fednode.network import network_down, network_up
from fednode.tasks import heart_task_spec, initial_payload


class WaitClock:
    """Accumulates seconds spent in ``wait_for_receipt`` per thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}

    def wrap(self, ledger, label: str) -> None:
        inner = ledger.transactions.wait_for_receipt

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                with self._lock:
                    spent = time.perf_counter() - started
                    self.seconds[label] = self.seconds.get(label, 0.0) + spent

        ledger.transactions.wait_for_receipt = timed

    def take(self) -> dict[str, float]:
        with self._lock:
            taken, self.seconds = self.seconds, {}
        return taken


def _sites():
    raw = load_heart_disease()
    norm = normalizer_from_stats(combine_feature_stats([compute_feature_stats(s.x_train)
                                                        for s in raw]))
    return [dataclasses.replace(s, x_train=normalize(s.x_train, norm)) for s in raw]


def _hospital_round(edge, site, task_id, spec, key) -> dict[str, float]:
    started = time.perf_counter()
    latest = edge.read_global_models(task_id)[-1]
    pulled = time.perf_counter()
    update = train_local(decode_params(latest.payload), site.train, key=key, spec=spec)
    trained = time.perf_counter()
    edge.submit_update(task_id, latest.version, encode_params(update.delta),
                       num_examples=update.num_examples)
    return {"pull": pulled - started, "train": trained - pulled,
            "submit": time.perf_counter() - trained}


def run(rounds: int, confirmations: int) -> dict:
    sites = _sites()
    clock = WaitClock()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "net"
        network_up(directory, validators=4, timeout=180.0, tie_to_caller=True)
        try:
            deploy_network(directory)
            spec = heart_task_spec(normalization_task=0, rounds=rounds)
            publisher = open_ledger(directory, "publisher", confirmations=confirmations)
            task_id = publisher.publish_task(spec, initial_payload(spec, key=jax.random.key(0)))
            edges = [open_ledger(directory, f"edge-{i + 1}", node=i, confirmations=confirmations)
                     for i in range(4)]
            aggregator = open_ledger(directory, "aggregator", confirmations=confirmations)
            for i, edge in enumerate(edges):
                clock.wrap(edge, f"edge-{i + 1}")
            clock.wrap(aggregator, "aggregator")
            return _rounds(edges, aggregator, sites, task_id, spec, clock)
        finally:
            network_down(directory)


def _rounds(edges, aggregator, sites, task_id, spec, clock) -> dict:
    rows = []
    key = jax.random.key(1)
    with ThreadPoolExecutor(len(edges)) as pool:
        for _ in range(spec.rounds):
            key, *keys = jax.random.split(key, len(edges) + 1)
            started = time.perf_counter()
            phases = list(pool.map(_hospital_round, edges, sites, [task_id] * 4, [spec] * 4, keys))
            submitted = time.perf_counter()
            run_round(aggregator, task_id, timeout=300, poll=0.1)
            finished = time.perf_counter()
            wall = finished - started
            waits = clock.take()
            critical = max(waits.get(f"edge-{i + 1}", 0.0) for i in range(4)) + waits.get(
                "aggregator", 0.0)
            rows.append({"wall_s": wall, "devices_and_submit_s": submitted - started,
                         "aggregate_and_commit_s": finished - submitted,
                         "train_s": max(p["train"] for p in phases),
                         "block_wait_s": critical, "block_wait_fraction": critical / wall})
    median = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
    return {"rounds": len(rows), "median": median, "per_round": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--confirmations", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = {"confirmations": args.confirmations, **run(args.rounds, args.confirmations)}
    print(json.dumps(result["median"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
