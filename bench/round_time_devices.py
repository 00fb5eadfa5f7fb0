"""Bench: end-to-end round time of 100 simulated devices on 4 geth Clique validators, next to
Flower on the same 100 clients, and the fraction of our round spent waiting for blocks.

Devices: each UCI heart hospital's training rows (FLamby split, federated normalization) are
shuffled once and cut into 25 shards: 100 devices, 25 behind each of the 4 edge operators. Every
device trains the task's logistic regression (``train_local``, same PRNG key per device and
round on both sides) from the current global model.

Ours: each device's delta is its own ``submitUpdate`` transaction, sent through its edge
operator's validator. The contract accepts one update per submitting account and base version
(``UpdateLedgerDuplicateSubmission``), so each edge operator submits from 25 accounts of its own
(``edge-<e>-lane-<j>``, EDGE_ROLE granted by the admin during bootstrap), each through a
``TransactionSender`` (nonce, gas estimate = contract check, EIP-1559 fees). Per edge, 5 threads
train its 25 devices and sign and send each delta as soon as it is trained, then the edge
waits for the 25 receipts (``--confirmations`` blocks deep); the 4 edges run in
parallel. Then the aggregator (``run_round`` with the previous round's rule checkpoint) reads the
100 updates, aggregates and commits the version. Block wait = time inside ``wait_for_receipt``
on the critical path (the slowest edge's receipt waits + the aggregator's commit wait) over the
round's wall time.

Flower: the same 100 clients, same local training, ``flwr.server.Server.fit`` + ``FedAvg`` with
in-process client proxies (no gRPC; Flower's simulation engine needs Ray, which is not
installed), 4 client workers (our 4 edges); in ``.cache/flwr-venv`` (see flower_compare.py).

    .venv/bin/python bench/round_time_devices.py --rounds 5 --confirmations 1 \
        --json docs/benchmarks/round_time_devices.json
"""

from __future__ import annotations

import os
import site
import sys

if os.environ.get("FLOWER_COMPARE_HOST_SITE"):  # the Flower worker runs in the flwr venv
    site.addsitedir(os.environ["FLOWER_COMPARE_HOST_SITE"])

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sysconfig  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from flower_compare import (  # noqa: E402
    ensure_flower_venv,
    flower_codec,
    heart_sites,
    in_process_proxy,
)
from round_time import WaitClock  # noqa: E402

from fednode.codec import (  # noqa: E402
    decode_params,
    encode_params,
    flatten_params,
)
from fednode.device import evaluate, pool_test_sets, train_local  # noqa: E402
from fednode.tasks import heart_task_spec, initial_payload  # noqa: E402

EDGES = 4
PER_EDGE = 25
SUBMIT_WORKERS = 5
"""Devices of one edge training and submitting at the same time (threads)."""


def device_shards(sites, per_site: int = PER_EDGE) -> list[tuple[int, tuple]]:
    """``(edge index, (x, y))`` for each device: each site's rows shuffled once, cut in shards."""
    devices = []
    for index, s in enumerate(sites):
        order = np.random.default_rng(index).permutation(len(s.y_train))
        for part in np.array_split(order, per_site):
            devices.append((index, (s.x_train[part], s.y_train[part])))
    return devices


def device_key(seed: int, round_number: int, device: int) -> jax.Array:
    """The local-training key of one device in one round (identical on both sides)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(2000 + seed), round_number), device)


def make_spec(rounds: int):
    return heart_task_spec(normalization_task=1, rounds=rounds, min_updates=EDGES * PER_EDGE)


def warm_up(devices, spec) -> None:
    """Compiles local training for every shard size, outside the timed rounds."""
    params = decode_params(initial_payload(spec, key=jax.random.key(0)))
    for size in sorted({len(data[1]) for _, data in devices}):
        data = next(d for _, d in devices if len(d[1]) == size)
        train_local(params, data, key=jax.random.key(0), spec=spec)


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


# ---- ours: 4 geth validators, 100 device updates per round ---------------------------------
def _lane(edge: int, slot: int) -> str:
    return f"edge-{edge + 1}-lane-{slot + 1:02d}"


def _grant_lanes(directory: Path) -> None:
    """EDGE_ROLE for the 100 submitting accounts, signed with consecutive admin nonces."""
    from fednode.chain.connect import open_ledger
    from fednode.chain.constants import EDGE_ROLE
    from fednode.network import load_network

    admin = open_ledger(directory, "admin")
    info = load_network(directory)
    lanes = [info.accounts[_lane(e, j)].address for e in range(EDGES) for j in range(PER_EDGE)]
    sender, consortium = admin.transactions, admin.consortium
    nonce = sender.pending_nonce()
    for start in range(0, len(lanes), 16):  # geth guarantees 16 pending slots per account
        signed = []
        for offset, lane in enumerate(lanes[start:start + 16]):
            data = bytes.fromhex(consortium.encode_abi("grantRole", [EDGE_ROLE, lane])[2:])
            signed.append(sender.sign(consortium.address, data, nonce=nonce + start + offset))
        for tx in signed:
            sender.send_raw(tx.raw)
        for tx in signed:
            sender.wait_for_receipt(tx.tx_hash, resend=tx.raw)


def _edge_round(edge: int, lanes, devices, task_id, spec, seed, round_number) -> dict:
    """One edge: pull the global model; its devices train and their deltas are signed and sent
    concurrently (``SUBMIT_WORKERS`` at a time); then it waits for every receipt."""
    started = time.perf_counter()
    latest = lanes[0].read_global_models(task_id)[-1]
    params = decode_params(latest.payload)

    def device(slot: int):
        index, data = devices[slot]
        t = time.perf_counter()
        update = train_local(params, data, key=device_key(seed, round_number, index), spec=spec)
        trained = time.perf_counter() - t
        lane = lanes[slot]
        signed = lane.sign_submit_update(task_id, latest.version, encode_params(update.delta),
                                         num_examples=update.num_examples,
                                         nonce=lane.transactions.pending_nonce())
        lane.send_raw(signed.raw)
        return lane, signed, trained

    with ThreadPoolExecutor(SUBMIT_WORKERS) as pool:
        sent = list(pool.map(device, range(len(devices))))
    all_sent = time.perf_counter()
    for lane, signed, _ in sent:
        lane.transactions.wait_for_receipt(signed.tx_hash, resend=signed.raw)
    return {"edge": edge, "train_s": sum(t for *_, t in sent), "send_s": all_sent - started,
            "total_s": time.perf_counter() - started}


class ReadClock:
    """Seconds the aggregator spends in each ledger read, per round."""

    READS = ("read_updates", "read_global_models", "read_commits", "get_task")

    def __init__(self, ledger) -> None:
        self.seconds: dict[str, float] = {}
        for name in self.READS:
            setattr(ledger, name, self._timed(name, getattr(ledger, name)))

    def _timed(self, name, inner):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        return timed

    def take(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, {}
        return taken


def run_ours(rounds: int, confirmations: int, seed: int, devices, sites) -> dict:
    from fednode.aggregator.round import run_round
    from fednode.chain.connect import open_ledger
    from fednode.cli.chain_cmd import deploy_network
    from fednode.network import network_down, network_up
    from fednode.network.keys import default_account_names

    spec = make_spec(rounds)
    lanes_by_edge = [[_lane(e, j) for j in range(PER_EDGE)] for e in range(EDGES)]
    names = [*default_account_names(EDGES), *(n for lanes in lanes_by_edge for n in lanes)]
    clock = WaitClock()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "net"
        network_up(directory, validators=4, accounts=names, timeout=180.0, tie_to_caller=True)
        try:
            deploy_network(directory, keep_bootstrap=True)
            _grant_lanes(directory)
            open_ledger(directory, "admin").end_bootstrap()
            publisher = open_ledger(directory, "publisher", confirmations=confirmations)
            task_id = publisher.publish_task(spec, initial_payload(spec, key=jax.random.key(seed)))
            lanes = [[open_ledger(directory, n, node=e, confirmations=confirmations)
                      for n in lanes_by_edge[e]] for e in range(EDGES)]
            for e in range(EDGES):
                for lane in lanes[e]:
                    clock.wrap(lane, f"edge-{e + 1}")
            aggregator = open_ledger(directory, "aggregator", confirmations=confirmations)
            clock.wrap(aggregator, "aggregator")
            reads = ReadClock(aggregator)
            by_edge = [[(i, d) for i, (e, d) in enumerate(devices) if e == edge]
                       for edge in range(EDGES)]
            rows, checkpoint = [], None
            with ThreadPoolExecutor(EDGES) as pool:
                for round_number in range(1, rounds + 1):
                    started = time.perf_counter()
                    edges = list(pool.map(
                        lambda e, r=round_number: _edge_round(e, lanes[e], by_edge[e], task_id,
                                                              spec, seed, r), range(EDGES)))
                    submitted = time.perf_counter()
                    result = run_round(aggregator, task_id, timeout=300, poll=0.1,
                                       checkpoint=checkpoint)
                    checkpoint = result.checkpoint
                    finished = time.perf_counter()
                    waits, read_s = clock.take(), reads.take()
                    critical = max(waits.get(f"edge-{e + 1}", 0.0) for e in range(EDGES))
                    critical += waits.get("aggregator", 0.0)
                    wall = finished - started
                    rows.append({"wall_s": wall, "devices_and_submit_s": submitted - started,
                                 "aggregate_and_commit_s": finished - submitted,
                                 "train_s_slowest_edge": max(e["train_s"] for e in edges),
                                 "block_wait_s": critical, "block_wait_fraction": critical / wall,
                                 "aggregator_reads_s": read_s,
                                 "aggregator_commit_wait_s": waits.get("aggregator", 0.0),
                                 "updates": len(result.record.update_ids)})
            final = decode_params(aggregator.read_global_models(task_id)[-1].payload)
        finally:
            network_down(directory)
    pooled = evaluate(final, *pool_test_sets(sites))
    return {"rounds": rows, "pooled_accuracy": pooled.accuracy, "pooled_auc": pooled.auc,
            "final_params": _flat(final)}


def _flat(params) -> list[float]:
    flat = flatten_params(params)
    return np.concatenate([np.ravel(flat[k]) for k in sorted(flat)]).tolist()


# ---- Flower: the same 100 clients (runs in the flwr venv) -----------------------------------
def run_flower(rounds: int, seed: int, devices, sites) -> dict:
    import flwr
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server import Server, SimpleClientManager
    from flwr.server.strategy import FedAvg

    spec = make_spec(rounds)
    initial = decode_params(initial_payload(spec, key=jax.random.key(seed)))
    names = sorted(flatten_params(initial))

    to_tree, to_list = flower_codec(names)

    class DeviceClient(flwr.client.NumPyClient):
        def __init__(self, index: int):
            self.index = index

        def fit(self, parameters, config):
            params = to_tree(parameters)
            key = device_key(seed, int(config["server_round"]), self.index)
            update = train_local(params, devices[self.index][1], key=key, spec=spec)
            return to_list(jax.tree_util.tree_map(np.add, params, update.delta)), \
                update.num_examples, {}

    class TimedFedAvg(FedAvg):
        def configure_fit(self, server_round, parameters, client_manager):
            self.round_started = time.perf_counter()
            return super().configure_fit(server_round, parameters, client_manager)

        def aggregate_fit(self, server_round, results, failures):
            out = super().aggregate_fit(server_round, results, failures)
            self.walls.append(time.perf_counter() - self.round_started)
            return out

    count = len(devices)
    strategy = TimedFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=count,
                           min_available_clients=count,
                           on_fit_config_fn=lambda r: {"server_round": r},
                           initial_parameters=ndarrays_to_parameters(to_list(initial)))
    strategy.walls = []
    manager = SimpleClientManager()
    for index in range(count):
        manager.register(in_process_proxy(index, DeviceClient(index).to_client()))
    server = Server(client_manager=manager, strategy=strategy)
    server.set_max_workers(EDGES)
    server.fit(num_rounds=rounds, timeout=None)
    final = to_tree(parameters_to_ndarrays(server.parameters))
    pooled = evaluate(final, *pool_test_sets(sites))
    return {"rounds": [{"wall_s": w} for w in strategy.walls], "pooled_accuracy": pooled.accuracy,
            "pooled_auc": pooled.auc, "final_params": _flat(final),
            "flwr_version": flwr.__version__}


def run_flower_subprocess(rounds: int, seed: int) -> dict:
    python = ensure_flower_venv()
    env = {**os.environ, "FLOWER_COMPARE_HOST_SITE": sysconfig.get_paths()["purelib"]}
    command = [str(python), __file__, "--flower-worker", "--rounds", str(rounds),
               "--seed", str(seed)]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(ours: dict, flower: dict) -> str:
    def cell(rows, key, fmt="{:.2f}"):
        s = spread([r[key] for r in rows])
        return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}, {fmt.format(s['max'])}]"

    o, f = ours["rounds"], flower["rounds"]
    lines = [
        "| framework | s / round, median [min, max] | block wait fraction | pooled acc | "
        "pooled AUC |", "|---|---|---|---|---|",
        f"| fednode on 4 geth validators (100 on-chain updates / round) | {cell(o, 'wall_s')} "
        f"| {cell(o, 'block_wait_fraction')} | {ours['pooled_accuracy']:.3f} "
        f"| {ours['pooled_auc']:.3f} |",
        f"| Flower {flower['flwr_version']} (Server.fit + FedAvg, in-process) "
        f"| {cell(f, 'wall_s', '{:.3f}')} | - | {flower['pooled_accuracy']:.3f} "
        f"| {flower['pooled_auc']:.3f} |",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--confirmations", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--flower-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.confirmations < 0:
        parser.error("need --rounds >= 1 and --confirmations >= 0")
    sites = heart_sites()
    devices = device_shards(sites)
    warm_up(devices, make_spec(args.rounds))
    if args.flower_worker:
        print(json.dumps(run_flower(args.rounds, args.seed, devices, sites)))
        return 0
    ours = run_ours(args.rounds, args.confirmations, args.seed, devices, sites)
    flower = run_flower_subprocess(args.rounds, args.seed)
    gap = float(np.max(np.abs(np.subtract(ours["final_params"], flower["final_params"]))))
    print(summary(ours, flower))
    print(f"devices: {len(devices)}; shard rows min/max: "
          f"{min(len(d[1]) for _, d in devices)}/{max(len(d[1]) for _, d in devices)}; "
          f"max |final params ours - Flower|: {gap:.1e}")
    if args.json:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
        args.json.write_text(json.dumps({
            "machine": machine, "rounds": args.rounds, "confirmations": args.confirmations,
            "seed": args.seed, "devices": len(devices), "max_param_gap": gap,
            "ours": ours, "flower": flower}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
