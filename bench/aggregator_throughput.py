"""Bench: aggregator throughput, updates read and aggregated per second, against plain numpy.

For a model of P float32 parameters it times three paths on the same deltas:

* ``numpy``: the in-memory baseline, a weighted mean of arrays already in memory;
* ``build``: ``build_global_model`` on ledger updates (digest check, canonical decode, the
  reproducible FedAvg, encode and digest of the result), what the aggregator and auditor run;
* ``ledger``: ``read_updates`` from a ledger plus ``build``: ``InMemoryLedger`` always, and a real
  4-validator geth network with ``--geth`` (1k parameters only: 1M float32 = 4 MB, far above the
  contract's 124 KiB payload limit, so 1M-parameter updates cannot go through a chain at all and
  only the in-memory build path is measured for them).

    .venv/bin/python bench/aggregator_throughput.py --json /tmp/agg.json
    .venv/bin/python bench/aggregator_throughput.py --geth --updates 16
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from fednode.aggregator.build import build_global_model
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import digest_bytes, encode_params
from fednode.tasks import initial_payload
from fednode.types import LedgerUpdate, TaskSpec

PAYLOAD_LIMIT = 124 * 1024


def _spec(num_params: int, updates: int) -> TaskSpec:
    return TaskSpec(name="throughput", data_schema="s", num_features=num_params - 1,
                    min_updates=updates, rounds=1, max_update_norm=1e9)


def _deltas(num_params: int, updates: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"output": {"bias": rng.normal(size=(1,)).astype(np.float32),
                        "kernel": rng.normal(size=(num_params - 1, 1)).astype(np.float32)}}
            for _ in range(updates)]


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _numpy_baseline(deltas, weights) -> None:
    total = float(sum(weights))
    for name in ("bias", "kernel"):
        stacked = np.stack([d["output"][name] for d in deltas])
        np.tensordot(np.asarray(weights, np.float64) / total, stacked, axes=1)


def _memory_ledger(spec, payload, encoded):
    admin = InMemoryLedger()
    edges = [f"0x{i + 1:040x}" for i in range(len(encoded))]
    for i, edge in enumerate(edges):
        admin.register_edge(edge, f"0x{i + 1000:040x}", f"edge-{i}")
    admin.grant_role(PUBLISHER_ROLE, admin.sender)
    admin.grant_role(AGGREGATOR_ROLE, admin.sender)
    task_id = admin.publish_task(spec, payload)
    for edge, raw in zip(edges, encoded, strict=True):
        admin.as_sender(edge).submit_update(task_id, 0, raw, num_examples=10)
    return admin, task_id


def measure(num_params: int, updates: int, repeats: int, geth: bool) -> dict:
    spec = _spec(num_params, updates)
    payload = initial_payload(spec, key=jax.random.key(0))
    deltas = _deltas(num_params, updates)
    encoded = [encode_params(d) for d in deltas]
    weights = [10] * updates
    fake = [LedgerUpdate(i + 1, 1, 0, f"0x{i + 1:040x}", digest_bytes(raw), 10, 0, raw, 1, b"")
            for i, raw in enumerate(encoded)]
    row = {"params": num_params, "updates": updates, "payload_bytes": len(encoded[0]),
           "fits_on_chain": len(encoded[0]) <= PAYLOAD_LIMIT}
    seconds = {"numpy": _best(lambda: _numpy_baseline(deltas, weights), repeats),
               "build": _best(lambda: build_global_model(spec, payload, fake), repeats)}
    if row["fits_on_chain"]:
        ledger, task_id = _memory_ledger(spec, payload, encoded)
        seconds["memory_ledger"] = _best(lambda: build_global_model(
            spec, payload, ledger.read_updates(task_id)), repeats)
        if geth:
            seconds["geth_ledger"] = _geth(spec, payload, encoded, repeats)
    row["updates_per_s"] = {k: round(updates / v, 1) for k, v in seconds.items()}
    row["x_slower_than_numpy"] = {k: round(v / seconds["numpy"], 1) for k, v in seconds.items()}
    return row


def _geth(spec, payload, encoded, repeats) -> float:
    from fednode.chain.connect import open_ledger
    from fednode.cli.chain_cmd import deploy_network
    from fednode.network import network_down, network_up

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "net"
        network_up(directory, validators=4, timeout=180.0, tie_to_caller=True)
        try:
            deploy_network(directory)
            task_id = open_ledger(directory, "publisher").publish_task(spec, payload)
            edges = [open_ledger(directory, f"edge-{i % 4 + 1}", node=i % 4) for i in range(4)]
            version = 0
            for i, raw in enumerate(encoded):  # one submission per edge and base version
                edges[i % 4].submit_update(task_id, version, raw, num_examples=10)
            reader = open_ledger(directory, "auditor", node=1)
            return _best(lambda: build_global_model(spec, payload, reader.read_updates(task_id)),
                         repeats)
        finally:
            network_down(directory)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--geth", action="store_true", help="also read 1k-param updates from geth")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = [measure(1_000, args.updates, args.repeats, False),
            measure(1_000_000, args.updates, max(1, args.repeats // 2), False)]
    if args.geth:
        rows[0] = measure(1_000, 4, args.repeats, True)  # 4 edges: one update each per base
    for row in rows:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
