"""Bench: Flower's FedAvg side by side with ours on the heart task (same data, model, training).

Both sides run the FLamby Fed-Heart-Disease split with federated normalization, the task's
logistic regression, the same initial model per seed and the same local training
(``fednode.device.train_local``, same PRNG key per seed, round and site), so the comparison
isolates the framework:

* **ours**: each site's delta goes through the canonical codec into an ``InMemoryLedger``;
  ``fednode.aggregator.round.run_round`` reads, verifies, aggregates (exact float64 FedAvg)
  and commits each version. The chain-backed round time (geth Clique) is in the demo report
  and the chain benches, not here.
* **Flower**: the legacy server loop ``flwr.server.Server.fit`` with ``FedAvg`` and one
  in-process ``ClientProxy`` per site wrapping a ``NumPyClient`` (Flower serializes parameters
  as for the wire, but no gRPC and no Ray: ``flwr[simulation]`` needs Ray). Clients run one
  at a time (``max_workers=1``), as ours do.

Flower cannot share ``.venv``: it pins rich<15, fastapi<0.139, uvicorn<0.50 and packaging<26
(fednode pins newer ones), and flwr 1.42.0 needs certifi>=2026.10.19, which the package index
does not have. So this script creates ``.cache/flwr-venv`` with ``FLOWER_REQUIREMENTS`` (once)
and runs the Flower side there as a subprocess that also sees ``.venv``'s packages (after its
own) for jax and fednode.

    .venv/bin/python bench/flower_compare.py --json docs/benchmarks/flower_compare.json
"""

from __future__ import annotations

import os
import site
import sys

if os.environ.get("FLOWER_COMPARE_HOST_SITE"):  # the Flower worker: see _run_flower_worker
    site.addsitedir(os.environ["FLOWER_COMPARE_HOST_SITE"])

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sysconfig  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from fednode.codec import (  # noqa: E402
    decode_params, encode_params, flatten_params, unflatten_params,
)
from fednode.device import (  # noqa: E402
    combine_feature_stats, compute_feature_stats, evaluate, load_heart_disease, normalize,
    normalizer_from_stats, pool_test_sets, train_local,
)
from fednode.tasks import heart_task_spec, initial_payload  # noqa: E402

log = logging.getLogger("flower_compare")
FLOWER_VENV = ROOT / ".cache" / "flwr-venv"
FLOWER_REQUIREMENTS = ("flwr==1.41.0", "numpy==2.5.5", "cryptography==50.0.2")
SPEC = heart_task_spec(normalization_task=1, rounds=10, min_updates=4)


def heart_sites():
    """The four hospitals, normalized with consortium-wide statistics (counts and sums only)."""
    sites = load_heart_disease()
    stats = combine_feature_stats([compute_feature_stats(s.x_train) for s in sites])
    norm = normalizer_from_stats(stats)
    return tuple(replace(s, x_train=normalize(s.x_train, norm), x_test=normalize(s.x_test, norm))
                 for s in sites)


def site_key(seed: int, round_number: int, index: int) -> jax.Array:
    """The local-training key of one site in one round: identical on both sides."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(1000 + seed), round_number), index)


def initial_params(seed: int) -> dict:
    return decode_params(initial_payload(SPEC, key=jax.random.key(seed)))


def score(params: dict, sites, round_seconds: list[float], server_seconds: list[float]) -> dict:
    """Pooled test metrics, median seconds per round, and the final model's flat values."""
    pooled = evaluate(params, *pool_test_sets(sites))
    flat = flatten_params(params)
    return {"pooled_accuracy": pooled.accuracy, "pooled_auc": pooled.auc,
            "round_seconds": statistics.median(round_seconds),
            "server_seconds": statistics.median(server_seconds),
            "final_params": np.concatenate([flat[k].ravel() for k in sorted(flat)]).tolist()}


def warm_up(sites) -> None:
    """Compiles local training once, outside the timed rounds (both processes do this)."""
    for s in sites:
        train_local(initial_params(0), s.train, key=jax.random.key(0), spec=SPEC)


# ---- ours: InMemoryLedger + run_round --------------------------------------------------------
def run_ours(sites, seed: int) -> dict:
    from fednode.aggregator.round import run_round
    from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
    from fednode.chain.memory_ledger import InMemoryLedger

    admin = InMemoryLedger()
    edges = [f"0x{i + 1:040x}" for i in range(len(sites))]
    for index, edge in enumerate(edges):
        admin.register_edge(edge, f"0x{index + 100:040x}", f"edge-{index + 1}")
    admin.grant_role(PUBLISHER_ROLE, "0x" + "a" * 40)
    admin.grant_role(AGGREGATOR_ROLE, "0x" + "b" * 40)
    aggregator = admin.as_sender("0x" + "b" * 40)
    task_id = admin.as_sender("0x" + "a" * 40).publish_task(
        SPEC, initial_payload(SPEC, key=jax.random.key(seed)))
    round_seconds, server_seconds = [], []
    for round_number in range(1, SPEC.rounds + 1):
        started = time.perf_counter()
        latest = admin.read_global_models(task_id)[-1]
        params = decode_params(latest.payload)
        for index, (edge, s) in enumerate(zip(edges, sites, strict=True)):
            key = site_key(seed, round_number, index)
            update = train_local(params, s.train, key=key, spec=SPEC)
            admin.as_sender(edge).submit_update(task_id, latest.version,
                                                encode_params(update.delta),
                                                num_examples=update.num_examples)
        result = run_round(aggregator, task_id, timeout=5, poll=0.01)
        round_seconds.append(time.perf_counter() - started)
        server_seconds.append(result.seconds)
    final = decode_params(admin.read_global_models(task_id)[-1].payload)
    return score(final, sites, round_seconds, server_seconds)


# ---- Flower: legacy Server.fit + FedAvg, in-process client proxies (runs in the flwr venv) -----
def flower_codec(names: Sequence[str]):
    """``(to_tree, to_list)``: Flower's list of arrays <-> our params, in ``names`` order."""

    def to_tree(arrays):
        return unflatten_params(dict(zip(names, (np.asarray(a, np.float32) for a in arrays),
                                         strict=True)))

    def to_list(params):
        flat = flatten_params(params)
        return [np.asarray(flat[name], np.float32) for name in names]

    return to_tree, to_list


def in_process_proxy(index: int, client):
    """A Flower client proxy that calls ``client`` directly (no gRPC, no Ray)."""
    from flwr.server.client_proxy import ClientProxy

    class InProcessProxy(ClientProxy):
        def fit(self, ins, timeout, group_id):
            return client.fit(ins)

        def get_parameters(self, ins, timeout, group_id):
            return client.get_parameters(ins)

        def get_properties(self, ins, timeout, group_id):
            raise NotImplementedError

        def evaluate(self, ins, timeout, group_id):
            raise NotImplementedError

        def reconnect(self, ins, timeout, group_id):
            raise NotImplementedError

    return InProcessProxy(cid=str(index))


def run_flower(sites, seed: int) -> dict:
    import flwr
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server import Server, SimpleClientManager
    from flwr.server.strategy import FedAvg

    names = sorted(flatten_params(initial_params(seed)))

    to_tree, to_list = flower_codec(names)

    class HeartClient(flwr.client.NumPyClient):
        def __init__(self, index: int):
            self.index = index

        def fit(self, parameters, config):
            params = to_tree(parameters)
            key = site_key(seed, int(config["server_round"]), self.index)
            update = train_local(params, sites[self.index].train, key=key, spec=SPEC)
            local = jax.tree_util.tree_map(np.add, params, update.delta)
            return to_list(local), update.num_examples, {}

    class TimedFedAvg(FedAvg):
        def configure_fit(self, server_round, parameters, client_manager):
            self.round_started = time.perf_counter()
            return super().configure_fit(server_round, parameters, client_manager)

        def aggregate_fit(self, server_round, results, failures):
            started = time.perf_counter()
            out = super().aggregate_fit(server_round, results, failures)
            self.server_seconds.append(time.perf_counter() - started)
            self.round_seconds.append(time.perf_counter() - self.round_started)
            return out

    strategy = TimedFedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=len(sites),
        min_available_clients=len(sites), on_fit_config_fn=lambda r: {"server_round": r},
        initial_parameters=ndarrays_to_parameters(to_list(initial_params(seed))),
    )
    strategy.round_seconds, strategy.server_seconds = [], []
    manager = SimpleClientManager()
    for index in range(len(sites)):
        manager.register(in_process_proxy(index, HeartClient(index).to_client()))
    server = Server(client_manager=manager, strategy=strategy)
    server.set_max_workers(1)
    server.fit(num_rounds=SPEC.rounds, timeout=None)
    final = to_tree(parameters_to_ndarrays(server.parameters))
    return {**score(final, sites, strategy.round_seconds, strategy.server_seconds),
            "flwr_version": flwr.__version__}


def ensure_flower_venv() -> Path:
    """Creates ``.cache/flwr-venv`` with ``FLOWER_REQUIREMENTS`` unless it is already there."""
    python = FLOWER_VENV / "bin" / "python"
    stamp = FLOWER_VENV / ".requirements"
    if python.exists() and stamp.exists() and stamp.read_text() == "\n".join(FLOWER_REQUIREMENTS):
        return python
    log.info("creating %s with %s (once)", FLOWER_VENV, ", ".join(FLOWER_REQUIREMENTS))
    subprocess.run([sys.executable, "-m", "venv", str(FLOWER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *FLOWER_REQUIREMENTS], check=True)
    stamp.write_text("\n".join(FLOWER_REQUIREMENTS))
    return python


def run_flower_subprocess(seeds: Sequence[int]) -> list[dict]:
    python = ensure_flower_venv()
    env = {**os.environ, "FLOWER_COMPARE_HOST_SITE": sysconfig.get_paths()["purelib"]}
    command = [str(python), __file__, "--flower-worker", "--seeds", *map(str, seeds)]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cell(runs: list[dict], key: str, fmt: str = "{:.3f}") -> str:
    values = [r[key] for r in runs]
    return (f"{fmt.format(statistics.median(values))} "
            f"[{fmt.format(min(values))}, {fmt.format(max(values))}]")


def table(results: dict[str, list[dict]]) -> str:
    rows = ["| framework | pooled acc | pooled AUC | s / round (4 sites train + aggregate) "
            "| server s / round |", "|---|---|---|---|---|"]
    for name, runs in results.items():
        rows.append(f"| {name} | {_cell(runs, 'pooled_accuracy')} | {_cell(runs, 'pooled_auc')} "
                    f"| {_cell(runs, 'round_seconds', '{:.4f}')} "
                    f"| {_cell(runs, 'server_seconds', '{:.5f}')} |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--flower-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING if args.flower_worker else logging.INFO,
                        format="%(message)s")
    logging.getLogger("fednode").setLevel(logging.WARNING)
    sites = heart_sites()
    warm_up(sites)
    if args.flower_worker:
        print(json.dumps([run_flower(sites, seed) for seed in args.seeds]))
        return 0
    ours = [run_ours(sites, seed) for seed in args.seeds]
    log.info("ours done: %s", [round(r["pooled_accuracy"], 3) for r in ours])
    flower = run_flower_subprocess(args.seeds)
    version = flower[0]["flwr_version"]
    results = {"fednode (InMemoryLedger + run_round)": ours,
               f"Flower {version} (Server.fit + FedAvg, in-process)": flower}
    gaps = [float(np.max(np.abs(np.subtract(a["final_params"], b["final_params"]))))
            for a, b in zip(ours, flower, strict=True)]
    print(table(results))
    print(f"max |final params ours - Flower| per seed: {[f'{g:.1e}' for g in gaps]}")
    if args.json:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
        args.json.write_text(json.dumps({"machine": machine, "seeds": args.seeds,
                                         "max_param_gap": gaps, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
