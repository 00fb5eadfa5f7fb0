"""Bench: device -> edge -> chain load on the 4-validator geth network, with edge cohorts.

Starts 4 geth Clique validators in a temporary folder (loopback only), deploys the contracts,
starts 4 edge servers (edge-i on validator i, durable outbox, ``--confirmations`` deep), and
publishes enough tasks for the run. ``--devices`` threads (each its own enrolled Ed25519
identity, device ``i`` behind edge ``i % 4``) post one signed delta every ``--interval``
seconds for ``--seconds``; update ``k`` of every device goes to task ``k`` (base version 0).

The contract takes one submission per edge per (task, base version), so each task runs in
plain cohort mode with cohort size = devices per edge: every edge folds its devices' deltas of
one task into ONE on-chain update (their weighted mean). Hence two rates:

- device updates/s: deltas the edges acknowledged (stored durably, 202) per second;
- chain updates/s: cohort updates committed on chain per second (each carries a whole cohort).

Latency is per device update, from the device's send to its cohort update being included
(depth 1, from the including block's timestamp, 1 s resolution) and to the edge seeing it
committed ``--confirmations`` deep (the edge's outbox clock). The network is always torn down.

    .venv/bin/python bench/edge_load.py --devices 8 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_server.config import EdgeConfig
from edge_server.service import EdgeServer, enroll_device
from edge_server.store import UpdateStatus
from fednode.chain.connect import open_ledger, rpc_url
from fednode.chain.connection import connect_web3
from fednode.chain.constants import MAX_PAYLOAD_SIZE
from fednode.cli.chain_cmd import deploy_network
from fednode.codec import encode_params
from fednode.errors import EdgeError
from fednode.network import network_down, network_up
from fednode.site.device_client import DeviceIdentity, EdgeClient
from fednode.types import TaskSpec

log = logging.getLogger("edge_load")
EDGES = 4
GAS_PER_BYTE = 16


def _params(num_features: int, fill: float) -> dict[str, Any]:
    return {"dense": {"bias": np.full((1,), fill, np.float32),
                      "kernel": np.full((num_features, 1), fill, np.float32)}}  # fmt: skip


def _publish_tasks(network: Path, count: int, cohort: int, num_features: int) -> list[int]:
    publisher = open_ledger(network, "publisher")
    spec = TaskSpec(
        name="load", data_schema="uci-heart-v1", num_features=num_features, rounds=1,
        min_updates=10_000, max_update_norm=100.0, edge_cohort={"size": cohort},
    )  # fmt: skip
    payload = encode_params(_params(num_features, 0.0))
    return [publisher.publish_task(replace(spec, name=f"load-{i}"), payload) for i in range(count)]


def _device_loop(client: EdgeClient, tasks: list[int], args: argparse.Namespace, start: float,
                 sent: list[dict[str, Any]], num_features: int) -> None:  # fmt: skip
    for k, task_id in enumerate(tasks):
        due = start + k * args.interval
        if due - start >= args.seconds:
            return
        time.sleep(max(0.0, due - time.time()))
        t_send = time.time()
        try:
            ref = client.post_update(task_id, 0, _params(num_features, 0.01), num_examples=10)
            sent.append({"task": task_id, "ref": ref, "t_send": t_send, "t_ack": time.time()})
        except EdgeError as exc:
            sent.append({"task": task_id, "ref": None, "t_send": t_send, "error": str(exc)})


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _run(args: argparse.Namespace, network: Path) -> dict[str, Any]:
    info = network_up(network, validators=EDGES, timeout=120.0, tie_to_caller=True)
    deploy_network(network)
    per_edge = math.ceil(args.devices / EDGES)
    task_count = math.ceil(args.seconds / args.interval)
    t0 = time.time()
    tasks = _publish_tasks(network, task_count, per_edge, args.num_features)
    log.info("published %d tasks in %.1f s", task_count, time.time() - t0)
    servers: list[EdgeServer] = []
    clients: list[tuple[int, EdgeClient]] = []
    try:
        for i in range(EDGES):
            ledger = open_ledger(network, f"edge-{i + 1}", node=i, confirmations=args.confirmations)
            config = EdgeConfig(
                name=f"edge-{i + 1}", db_path=str(network / f"edge-{i + 1}.sqlite"), port=0,
                confirmations=args.confirmations, submit_poll_interval_s=0.1,
                device_rate_per_s=0, peer_rate_per_s=0,  # all devices share 127.0.0.1
            )  # fmt: skip
            servers.append(EdgeServer(config, ledger))
            servers[-1].start()
        for d in range(args.devices):
            identity = DeviceIdentity.generate(device_id=f"device-{d}")
            server = servers[d % EDGES]
            enroll_device(server.store, identity.device_id, identity.public_key_hex)
            clients.append((d % EDGES, EdgeClient(server.url, identity)))
        sent: list[list[dict[str, Any]]] = [[] for _ in clients]
        start = time.time() + 1.0
        threads = [
            threading.Thread(target=_device_loop, args=(c, tasks, args, start, sent[d],
                                                        args.num_features))  # fmt: skip
            for d, (_, c) in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.seconds + 60)
        window_end = time.time()
        _drain(servers, deadline=time.time() + args.drain_seconds)
        return _report(args, info, servers, clients, sent, start, window_end, per_edge)
    finally:
        for server in servers:
            server.stop()
        for _, client in clients:
            client.close()


def _drain(servers: list[EdgeServer], *, deadline: float) -> None:
    """Waits (bounded) until no edge holds an accepted or in-flight cohort update."""
    while time.time() < deadline:
        counts = [s.store.count_by_status() for s in servers]
        if all(c["accepted"] + c["signed"] + c["sent"] == 0 for c in counts):
            return
        time.sleep(0.5)
    log.warning("drain deadline passed with updates still pending")


def _report(args: argparse.Namespace, info: Any, servers: list[EdgeServer], clients: list[Any],
            sent: list[list[dict[str, Any]]], start: float, window_end: float,
            per_edge: int) -> dict[str, Any]:  # fmt: skip
    w3 = connect_web3(rpc_url(info, 0))
    rows = {}
    for e, server in enumerate(servers):
        for row in server.store.list_updates(status=UpdateStatus.COMMITTED):
            rows[(e, row.task_id)] = row
    block_time: dict[int, int] = {}
    incl, committed, gas, payload = [], [], [], []
    device_ok = 0
    for (e, _), records in zip(clients, sent, strict=True):
        for record in records:
            row = rows.get((e, record["task"])) if record.get("ref") else None
            if row is None or row.block_number is None:
                continue
            device_ok += 1
            if row.block_number not in block_time:
                block_time[row.block_number] = int(w3.eth.get_block(row.block_number)["timestamp"])
            incl.append(block_time[row.block_number] - record["t_send"])
            committed.append(row.updated_at - record["t_send"])
    for row in rows.values():
        gas.append(int(w3.eth.get_transaction_receipt(row.tx_hash)["gasUsed"]))
        payload.append(len(row.payload))
    acked = sum(1 for records in sent for r in records if r.get("ref"))
    refused = sum(1 for records in sent for r in records if not r.get("ref"))
    window = window_end - start
    gas_limit = int(w3.eth.get_block("latest")["gasLimit"])
    period = int(info.period)
    mean_gas = statistics.mean(gas) if gas else float("nan")
    return {
        "devices": args.devices, "edges": EDGES, "cohort_size": per_edge,
        "seconds": round(window, 1), "interval_s": args.interval,
        "confirmations": args.confirmations,
        "device_updates_acked": acked, "device_updates_refused": refused,
        "device_updates_acked_per_s": round(acked / window, 2),
        "device_updates_on_chain": device_ok,
        "chain_updates_committed": len(rows),
        "chain_updates_per_s": round(len(rows) / window, 2),
        "latency_depth1_p50_s": _percentile(incl, 0.5),
        "latency_depth1_p95_s": _percentile(incl, 0.95),
        "latency_commit_p50_s": _percentile(committed, 0.5),
        "latency_commit_p95_s": _percentile(committed, 0.95),
        "payload_bytes_per_update": statistics.mean(payload) if payload else None,
        "gas_per_update": round(mean_gas) if gas else None,
        "block_gas_limit": gas_limit, "period_s": period,
        "calldata_ceiling_bytes_per_s": gas_limit // GAS_PER_BYTE // max(period, 1),
        "max_payload_bytes": MAX_PAYLOAD_SIZE,
        "ceiling_updates_per_s_at_this_gas": round(gas_limit / mean_gas / max(period, 1), 1)
        if gas else None,
        "ceiling_max_size_payloads_per_block": gas_limit // (MAX_PAYLOAD_SIZE * GAS_PER_BYTE),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=2.0, help="s between a device's updates")
    parser.add_argument("--confirmations", type=int, default=5)
    parser.add_argument("--num-features", type=int, default=13)
    parser.add_argument("--drain-seconds", type=float, default=90.0)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("edge_server", "httpx", "uvicorn", "fednode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="edge-load-") as tmp:
        network = Path(tmp) / "net"
        try:
            result = _run(args, network)
        finally:
            if network.exists():
                network_down(network)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
