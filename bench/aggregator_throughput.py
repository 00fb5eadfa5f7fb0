"""Bench: aggregator throughput, updates read and aggregated per second, against plain numpy.

For a model of P float32 parameters it times three paths on the same deltas:

* ``numpy``: the in-memory baseline, a weighted mean of arrays already in memory;
* ``build``: ``build_global_model`` on ledger updates (digest check, canonical decode, the
  reproducible FedAvg, encode and digest of the result), what the aggregator and auditor run;
* ``ledger``: ``read_updates`` from a ledger plus ``build``: ``InMemoryLedger`` always, and a real
  4-validator geth network with ``--geth`` (1k parameters only: 1M float32 = 4 MB, far above the
  contract's 124 KiB payload limit, so 1M-parameter updates cannot go through a chain at all and
  only the in-memory build path is measured for them). On geth each update of a size comes from
  its own account (``bench-lane-NNN``, EDGE_ROLE granted by the admin), all on base version 0;
  then a task with ``--geth-versions`` committed versions times ``read_global_models`` +
  ``read_commits`` cold (a new ledger) and warm (the same ledger again).

    .venv/bin/python bench/aggregator_throughput.py --json /tmp/agg.json
    .venv/bin/python bench/aggregator_throughput.py --geth --geth-updates 4 25 100
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


def measure(num_params: int, updates: int, repeats: int) -> dict:
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
    row["updates_per_s"] = {k: round(updates / v, 1) for k, v in seconds.items()}
    row["x_slower_than_numpy"] = {k: round(v / seconds["numpy"], 1) for k, v in seconds.items()}
    return row


# ---- geth: 4 Clique validators, one submitting account per update ----------------------------
def _lane(index: int) -> str:
    return f"bench-lane-{index + 1:03d}"


def _grant_lanes(directory: Path, count: int) -> None:
    """EDGE_ROLE for ``count`` submitting accounts (the contract takes one update per account
    and base version), signed with consecutive admin nonces, 16 in flight at most."""
    from fednode.chain.connect import open_ledger
    from fednode.chain.constants import EDGE_ROLE
    from fednode.network import load_network

    admin = open_ledger(directory, "admin")
    info = load_network(directory)
    lanes = [info.accounts[_lane(i)].address for i in range(count)]
    sender, consortium = admin.transactions, admin.consortium
    nonce = sender.pending_nonce()
    for start in range(0, count, 16):
        signed = [sender.sign(consortium.address,
                              bytes.fromhex(consortium.encode_abi("grantRole",
                                                                  [EDGE_ROLE, lane])[2:]),
                              nonce=nonce + start + offset)
                  for offset, lane in enumerate(lanes[start:start + 16])]
        for tx in signed:
            sender.send_raw(tx.raw)
        for tx in signed:
            sender.wait_for_receipt(tx.tx_hash, resend=tx.raw)


def _submit_all(lanes, task_id: int, base: int, encoded: list[bytes]) -> None:
    """Each lane signs and sends one update on ``base``; then every receipt is awaited."""
    sent = []
    for lane, raw in zip(lanes, encoded, strict=False):
        signed = lane.sign_submit_update(task_id, base, raw, num_examples=10,
                                         nonce=lane.transactions.pending_nonce())
        lane.send_raw(signed.raw)
        sent.append((lane, signed))
    for lane, signed in sent:
        lane.transactions.wait_for_receipt(signed.tx_hash, resend=signed.raw)


def measure_geth(sizes: list[int], versions: int, repeats: int) -> list[dict]:
    """``read_updates`` (+ build) of each size on base version 0 of its own task, then
    ``read_global_models`` + ``read_commits`` of a task with ``versions`` committed versions:
    cold (a new ledger object) and warm (the same one again, as the aggregator's rounds are)."""
    from fednode.chain.connect import open_ledger
    from fednode.cli.chain_cmd import deploy_network
    from fednode.network import network_down, network_up
    from fednode.network.keys import default_account_names

    most = max(sizes)
    names = [*default_account_names(4), *(_lane(i) for i in range(most))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "net"
        network_up(directory, validators=4, accounts=names, timeout=180.0, tie_to_caller=True)
        try:
            deploy_network(directory, keep_bootstrap=True)
            _grant_lanes(directory, most)
            open_ledger(directory, "admin").end_bootstrap()
            # through the publisher's node: a lane's gas estimate must already see the task
            lanes = [open_ledger(directory, _lane(i)) for i in range(most)]
            publisher = open_ledger(directory, "publisher")
            for size in sizes:
                rows.append(_updates_row(directory, lanes[:size], publisher, repeats))
            rows.append(_versions_row(directory, lanes, publisher, versions, repeats))
        finally:
            network_down(directory)
    return rows


def _wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the reading node did not catch up")
        time.sleep(0.2)


def _updates_row(directory: Path, lanes, publisher, repeats: int) -> dict:
    from fednode.chain.connect import open_ledger

    size = len(lanes)
    spec = _spec(1_000, size)
    payload = initial_payload(spec, key=jax.random.key(0))
    task_id = publisher.publish_task(spec, payload)
    _submit_all(lanes, task_id, 0, [encode_params(d) for d in _deltas(1_000, size)])
    # a new ledger object per repeat: nothing remembered, as for a round's new updates
    readers = [open_ledger(directory, "auditor", node=1) for _ in range(2 * repeats)]
    _wait_until(lambda: len(readers[0].read_updates(task_id)) == size)  # node 1 caught up
    read_s = _best(lambda: readers.pop().read_updates(task_id), repeats)
    both_s = _best(lambda: build_global_model(spec, payload, readers.pop().read_updates(task_id)),
                   repeats)
    return {"geth": "read_updates", "params": 1_000, "updates": size,
            "read_s": round(read_s, 4), "read_and_build_s": round(both_s, 4),
            "updates_per_s": round(size / both_s, 1)}


def _versions_row(directory: Path, lanes, publisher, versions: int, repeats: int) -> dict:
    from fednode.chain.connect import open_ledger

    spec = TaskSpec(name="versions", data_schema="s", num_features=999, min_updates=1,
                    rounds=versions, max_update_norm=1e9)
    payload = initial_payload(spec, key=jax.random.key(0))
    task_id = publisher.publish_task(spec, payload)
    aggregator = open_ledger(directory, "aggregator")
    encoded = [encode_params(d) for d in _deltas(1_000, versions + 1)]
    for version in range(1, versions + 1):
        update_id = lanes[0].submit_update(task_id, version - 1, encoded[version], num_examples=10)
        aggregator.commit_global_model(task_id, version, encoded[0], [update_id])
    time.sleep(3)  # the last version more than 2 blocks deep (Clique period 1 s)

    def both(ledger) -> None:
        ledger.read_global_models(task_id)
        ledger.read_commits(task_id)

    readers = [open_ledger(directory, "auditor", node=1) for _ in range(repeats)]
    _wait_until(lambda: readers[0].latest_version(task_id) == versions)
    cold_s = _best(lambda: both(readers.pop()), repeats)
    warm = open_ledger(directory, "auditor", node=1)
    both(warm)
    warm_s = _best(lambda: both(warm), repeats)
    return {"geth": "read_global_models+read_commits", "versions": versions,
            "cold_s": round(cold_s, 4), "warm_s": round(warm_s, 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--geth", action="store_true", help="also read 1k-param updates from geth")
    parser.add_argument("--geth-updates", type=int, nargs="+", default=[4, 25, 100])
    parser.add_argument("--geth-versions", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = [measure(1_000, args.updates, args.repeats),
            measure(1_000_000, args.updates, max(1, args.repeats // 2))]
    if args.geth:
        rows += measure_geth(args.geth_updates, args.geth_versions, args.repeats)
    for row in rows:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
