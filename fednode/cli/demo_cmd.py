"""All stages: ``fednode demo``, the main job, run end to end on a real local consortium chain.

network up -> deploy -> feature-stats task -> heart task rounds (devices -> edges -> chain ->
aggregator) -> metrics next to single-site baselines -> audit -> JSON report -> network down.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import jax
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fednode.cli.demo_summary import finish_report
from fednode.errors import FednodeError

__all__ = ["add_demo_parser", "run_demo"]

_MARKER = ".fednode-demo"


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    """Registers ``fednode demo``."""
    demo = commands.add_parser("demo", help="run the whole federated task end to end")
    demo.add_argument("--dir", type=Path, default=Path("runs/demo"), help="work folder (wiped)")
    demo.add_argument("--rounds", type=int, default=10, help="global model versions to train")
    demo.add_argument("--task", choices=("heart", "wearable"), default="heart",
                      help="heart: UCI Heart Disease over 4 hospitals; wearable: BasicMotions "
                           "1D-CNN over 4 wearables")
    demo.add_argument("--model", choices=("logreg", "mlp"), default="logreg",
                      help="model of the heart task")
    demo.add_argument("--aggregation", default="fedavg",
                      choices=("fedavg", "krum", "median", "norm_clip", "trimmed_mean"))
    demo.add_argument("--server-optimizer", default="none",
                      choices=("none", "sgd", "adam", "yogi", "adagrad"))
    demo.add_argument("--compression", action="append", default=[], metavar="STEP",
                      help="device update compression step, repeatable: int8, topk[:fraction]")
    demo.add_argument("--proximal-mu", type=_non_negative, default=0.0,
                      help="FedProx: proximal term on the devices (0 = FedAvg's local training)")
    demo.add_argument("--example-power", type=float, default=1.0, choices=(0.0, 0.25, 0.5, 1.0),
                      help="FedAvg weighs site i by n_i ** power; 0 = bias correction (every "
                           "site alike)")
    demo.add_argument("--dp-epsilon", type=_non_negative, default=0.0,
                      help="DP-SGD: per-site epsilon budget, enforced on chain; each site "
                           "calibrates its own noise to it (0 = no DP)")
    demo.add_argument("--accountant", choices=("rdp", "pld"), default="rdp",
                      help="privacy accountant of --dp-epsilon")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--validators", type=int, default=4)
    demo.add_argument("--engine", choices=("clique", "cometbft"), default="clique",
                      help="consensus: geth 1.13 Clique (default) or CometBFT + geth 1.17")
    demo.add_argument("--confirmations", type=int, default=1,
                      help="blocks on top of a write before it counts as committed")
    demo.add_argument("--report-json", type=Path, help="where to write the JSON summary")
    demo.add_argument("--keep-network", action="store_true", help="leave the validators running")
    demo.set_defaults(handler=_run)


def _non_negative(text: str) -> float:
    """argparse type: a finite float >= 0 (refused before any validator starts)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _prepare_dir(path: Path) -> None:
    if path.exists() and any(path.iterdir()):
        if not (path / _MARKER).exists():
            raise FednodeError(f"{path} is not empty and not a demo folder; pick another --dir")
        from fednode.network.bft import bft_network_down, is_bft_network
        from fednode.network.manager import network_down

        if (path / "network" / "network.json").exists():
            stop = bft_network_down if is_bft_network(path / "network") else network_down
            stop(path / "network")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / _MARKER).write_text("fednode demo work folder; wiped by the next demo run\n")


def _run(args: argparse.Namespace) -> int:
    report = run_demo(args)
    return 0 if report["audit"]["ok"] and report["target"]["met"] else 1


def run_demo(args: argparse.Namespace) -> dict:
    """Runs the main job; returns (and optionally writes) the JSON report."""
    from fednode.cli.chain_cmd import deploy_network
    from fednode.network.bft import bft_network_down, bft_network_up
    from fednode.network.manager import network_down, network_up

    console = Console()
    _prepare_dir(args.dir)
    network_dir = args.dir / "network"
    started = time.monotonic()
    bft = getattr(args, "engine", "clique") == "cometbft"
    up, down = (bft_network_up, bft_network_down) if bft else (network_up, network_down)
    with console.status("[bold]starting validators[/]") as spinner:
        up(network_dir, validators=args.validators, tie_to_caller=True,
           progress=lambda line: spinner.update(f"[bold]network up[/]: {line}"))
    kind = "CometBFT + geth 1.17 validators finalizing" if bft else "geth Clique validators sealing"
    console.print(f"[green]✓[/] {args.validators} {kind}")
    try:
        with console.status("[bold]deploying contracts[/]"):
            deployment = deploy_network(network_dir)
        console.print(f"[green]✓[/] contracts deployed: {deployment.contracts}; bootstrap "
                      "ended, roles now change only by vote of the edge operators")
        report = _federate(args, network_dir, console)
    finally:
        if not args.keep_network:
            down(network_dir)
            console.print("[green]✓[/] validators stopped")
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    finish_report(report, console, report_json=args.report_json)
    return report


def _federate(args: argparse.Namespace, network_dir: Path, console: Console) -> dict:
    from fednode.auditor.replay import verify_task
    from fednode.chain.connect import open_ledger
    from fednode.cli.audit_cmd import render_report
    from fednode.cli.demo_facts import chain_facts, evaluation_facts, privacy_facts
    from fednode.cli.demo_flow import hospitals_online
    sites = _load_sites(args.task)
    publisher = open_ledger(network_dir, "publisher", confirmations=args.confirmations)
    aggregator = open_ledger(network_dir, "aggregator", confirmations=args.confirmations)
    with hospitals_online(network_dir, args.dir, sites, confirmations=args.confirmations) as hospitals:
        console.print(f"[green]✓[/] {len(hospitals)} edge servers up, one device each")
        stats_task = 0
        if args.task == "heart":
            stats_task = _share_feature_stats(publisher, aggregator, hospitals, console)
        spec = _task_spec(args, stats_task, len(hospitals))
        task_id, curve = _train(spec, publisher, aggregator, hospitals, console)
        final = _final_params(aggregator, task_id)
        metrics = _metrics(spec, final, hospitals, sites)
    auditor = open_ledger(network_dir, "auditor")
    site_of = {h.edge_address: h.site.name for h in hospitals}
    evaluations = evaluation_facts(auditor, task_id, site_of)
    privacy = privacy_facts(auditor, task_id, site_of,
                            {h.site.name: h.privacy_spec(spec).noise_multiplier for h in hospitals})
    audits = [verify_task(auditor, t) for t in (stats_task, task_id) if t]
    for audit in audits:
        render_report(audit, console)
    facts = chain_facts(auditor, network_dir, [t for t in (stats_task, task_id) if t])
    return {"task": args.task, "task_id": task_id, "feature_stats_task_id": stats_task or None,
            "spec": json.loads(spec.to_json()), "rounds": curve, **metrics,
            "evaluations": evaluations, "privacy": privacy,
            "audit": {"ok": all(a.ok for a in audits), "tasks": [a.to_dict() for a in audits]},
            "chain": facts}


def _share_feature_stats(publisher, aggregator, hospitals, console: Console) -> int:
    from fednode.aggregator.round import run_round
    from fednode.tasks import feature_stats_spec, initial_payload

    spec = feature_stats_spec(min_updates=len(hospitals))
    task_id = publisher.publish_task(spec, initial_payload(spec, key=jax.random.key(0)))
    refs = [h.post_feature_stats(task_id) for h in hospitals]
    for hospital, ref in zip(hospitals, refs, strict=True):
        hospital.client.wait_submitted(ref, timeout=120)
    run_round(aggregator, task_id, timeout=120)
    for hospital in hospitals:
        hospital.adopt_normalizer(task_id)
    console.print(f"[green]✓[/] federated normalization: counts/sums/squares shared as task {task_id}")
    return task_id


def _load_sites(task: str):
    if task == "wearable":
        from fednode.device.wearable import wearable_sites

        return wearable_sites()
    from fednode.device.data import load_heart_disease

    return load_heart_disease()


def _task_spec(args: argparse.Namespace, stats_task: int, sites: int):
    """The spec the publisher posts, with the learning policy chosen on the command line."""
    from fednode.tasks import (
        heart_task_spec,
        wearable_task_spec,
        with_private_training,
        with_site_weighting,
    )

    policy = {"aggregation": args.aggregation, "server_optimizer": args.server_optimizer,
              "compression": tuple(getattr(args, "compression", ())),
              "proximal_mu": float(getattr(args, "proximal_mu", 0.0))}
    if args.task == "wearable":
        spec = wearable_task_spec(rounds=args.rounds, min_updates=sites, seed=args.seed, **policy)
    else:
        spec = heart_task_spec(normalization_task=stats_task, rounds=args.rounds,
                               model=args.model, hidden_sizes=(16,) if args.model == "mlp" else (),
                               seed=args.seed, min_updates=sites, **policy)
    if getattr(args, "example_power", 1.0) != 1.0:
        spec = with_site_weighting(spec, example_power=args.example_power)
    if getattr(args, "dp_epsilon", 0.0) > 0:
        local = None if args.task == "heart" else {"clip_norm": 1.0}  # wearable: its own Adam
        spec = with_private_training(spec, epsilon=args.dp_epsilon, local=local,
                                     accountant=getattr(args, "accountant", "rdp"))
    return spec


def _train(spec, publisher, aggregator, hospitals, console: Console):
    from fednode.aggregator.round import run_round
    from fednode.cli.demo_flow import evaluate_sites
    from fednode.codec import decode_params
    from fednode.tasks import initial_payload

    task_id = publisher.publish_task(spec, initial_payload(spec, key=jax.random.key(spec.seed)))
    key = jax.random.key(spec.seed + 1)
    curve = []
    columns = (TextColumn("[bold]round"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[status]}"))
    # every hospital evaluates each final version on its own test split, signed via its edge
    # (version 0, the publisher's initial model, is not evaluated: EvaluationLedger refuses it)
    evaluations = []
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("rounds", total=spec.rounds, status="")
        for _ in range(spec.rounds):
            key, *site_keys = jax.random.split(key, len(hospitals) + 1)
            refs = [h.train_round(task_id, spec, key=k)[1]
                    for h, k in zip(hospitals, site_keys, strict=True)]
            for hospital, ref in zip(hospitals, refs, strict=True):
                hospital.client.wait_submitted(ref, timeout=120)
            result = run_round(aggregator, task_id, timeout=120)
            pooled = evaluate_sites(decode_params(result.record.payload), hospitals)["pooled"]
            curve.append({"version": result.record.version, "pooled_accuracy": pooled.accuracy,
                          "pooled_auc": pooled.auc, "seconds": round(result.seconds, 2),
                          "digest": "0x" + result.record.digest.hex(),
                          "block": result.record.block_number})
            progress.update(bar, advance=1, status=f"v{result.record.version} pooled acc "
                            f"{pooled.accuracy:.3f} auc {pooled.auc:.3f}")
            evaluations += [(h, h.evaluate_version(task_id, result.record.version))
                            for h in hospitals]
    for hospital, ref in evaluations:
        hospital.client.wait_evaluation_committed(ref, timeout=120)
    console.print(f"[green]✓[/] {len(evaluations)} per-site evaluations signed on chain")
    return task_id, curve


def _final_params(ledger, task_id: int):
    from fednode.codec import decode_params

    return decode_params(ledger.read_global_models(task_id)[-1].payload)


def _metrics(spec, params, hospitals, sites) -> dict:
    from fednode.cli.demo_flow import evaluate_sites, personalize_sites, train_single_site

    federated = {name: asdict(e) for name, e in evaluate_sites(params, hospitals).items()}
    personalized = {}
    if spec.model != "cnn1d":  # intercept calibration is for the binary tabular heart model
        personalized = personalize_sites(params, hospitals, key=jax.random.key(2000))
    baselines = {}
    for index, site in enumerate(sites):
        result = train_single_site(spec, site, sites, key=jax.random.key(1000 + index))
        baselines[site.name] = {k: asdict(v) for k, v in result.items()}
    return {"federated": federated, "personalized": personalized, "single_site": baselines}
