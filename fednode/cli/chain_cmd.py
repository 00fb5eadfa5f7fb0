"""Chain: ``fednode deploy``, ``fednode task ...`` and ``fednode aggregate`` (thin CLI layer)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
from rich.console import Console
from rich.table import Table

from fednode.cli.network_cmd import DEFAULT_NETWORK_DIR
from fednode.types import TaskRecord, TaskSpec

__all__ = ["add_chain_parsers", "deploy_network", "render_task"]



def _network_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network-dir", type=Path, default=Path(DEFAULT_NETWORK_DIR),
                        help="network folder")
    parser.add_argument("--node", type=int, default=0, help="validator index to talk to")


def add_chain_parsers(commands: argparse._SubParsersAction) -> None:
    """Registers ``deploy``, ``task publish/show/list/cancel`` and ``aggregate``."""
    deploy = commands.add_parser("deploy", help="compile-checked deploy of the contracts")
    _network_arg(deploy)
    deploy.add_argument("--keep-bootstrap", action="store_true",
                        help="leave the admin able to grant and register (set-up not finished;"
                             " end it with `fednode member end-bootstrap`). By default the"
                             " bootstrap ends once the founding members are registered")
    deploy.set_defaults(handler=_deploy)

    task = commands.add_parser("task", help="publish and inspect training tasks")
    verbs = task.add_subparsers(dest="verb", required=True, metavar="VERB")
    publish = verbs.add_parser("publish",
                               help="publish a task (job file, spec JSON or the heart task)")
    _network_arg(publish)
    source = publish.add_mutually_exclusive_group()
    source.add_argument("--job", type=Path,
                        help="a job file (TOML: schema, model, training, aggregation, privacy,"
                             " compression, acceptance; see examples/heart/job.toml)")
    source.add_argument("--spec-json", type=Path, help="a TaskSpec JSON file")
    publish.add_argument("--kind", choices=("heart", "feature-stats"), default="heart")
    publish.add_argument("--normalization-task", type=int, default=0)
    publish.add_argument("--rounds", type=int, default=10)
    publish.add_argument("--model", choices=("logreg", "mlp"), default="logreg")
    publish.add_argument("--seed", type=int, default=0)
    for flag, kind, what in (
        ("--min-updates", int, "updates per global model (K)"),
        ("--max-staleness", int, "versions an update's base may lag"),
        ("--deadline", int, "unix seconds after which nothing is accepted (0: none)"),
        ("--epsilon-budget", float, "privacy budget per site (0: unlimited)"),
        ("--aggregator-quorum", int, "aggregators that must commit the same model (k)"),
        ("--max-examples", int, "most examples one update may claim (FedAvg weight cap)"),
    ):
        publish.add_argument(flag, type=kind, help=f"override the spec: {what}")
    publish.set_defaults(handler=_publish)
    for verb in ("show", "cancel"):
        sub = verbs.add_parser(verb, help=f"{verb} one task")
        _network_arg(sub)
        sub.add_argument("task_id", type=int)
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(handler=_show if verb == "show" else _cancel)
    listing = verbs.add_parser("list", help="list all tasks")
    _network_arg(listing)
    listing.set_defaults(handler=_list)

    aggregate = commands.add_parser("aggregate", help="run the aggregator loop for a task")
    _network_arg(aggregate)
    aggregate.add_argument("--task", type=int, required=True)
    aggregate.add_argument("--timeout", type=float, default=600.0, help="seconds per round")
    aggregate.set_defaults(handler=_aggregate)


def deploy_network(network_dir: Path, *, node: int = 0, keep_bootstrap: bool = False):
    """Deploys the contracts on a network folder's chain and wires the consortium's accounts.

    The admin deploys; publisher, aggregator and auditor get their roles; every ``edge-i``
    account is registered with validator ``i``'s signer address; then the bootstrap ends (the
    admin keeps no power: every change goes through proposals and votes of the edge
    operators) unless ``keep_bootstrap``. Writes ``deployment.json``.
    """
    from fednode.chain.connect import deployment_path, load_account, rpc_url
    from fednode.chain.connection import connect_web3
    from fednode.chain.deploy import EdgeRegistration, deploy_consortium, write_deployment
    from fednode.network.info import load_network

    info = load_network(network_dir)
    w3 = connect_web3(rpc_url(info, node))
    address = {name: account.address for name, account in info.accounts.items()}
    edges = [EdgeRegistration(address[f"edge-{i + 1}"], v.signer, f"edge-{i + 1}")
             for i, v in enumerate(info.validators) if f"edge-{i + 1}" in address]
    deployment = deploy_consortium(
        w3, load_account(info, "admin"), publishers=[address["publisher"]],
        aggregators=[address["aggregator"]], auditors=[address["auditor"]], edges=edges,
        keep_bootstrap=keep_bootstrap,
    )
    write_deployment(deployment, deployment_path(network_dir))
    return deployment


def render_task(task: TaskRecord, console: Console) -> None:
    """Prints one task as a two-column table."""
    table = Table(title=f"task {task.task_id}: {task.spec.name}", show_header=False)
    rows = {
        "state": task.state.name.lower(), "latest version": str(task.latest_version),
        "rounds": str(task.spec.rounds), "publisher": task.publisher,
        "spec digest": "0x" + task.spec_digest.hex(), "model": task.spec.model,
        "aggregation": task.spec.aggregation, "min updates": str(task.spec.min_updates),
        "max staleness": str(task.spec.max_staleness),
        "deadline": str(task.spec.deadline or "none"),
        "epsilon budget / site": str(task.spec.epsilon_budget or "unlimited"),
        "aggregator quorum": str(task.spec.aggregator_quorum),
        "max examples / update": str(task.spec.max_examples),
        "published at block": str(task.published_block),
    }
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)


def _deploy(args: argparse.Namespace) -> int:
    deployment = deploy_network(args.network_dir, node=args.node,
                                keep_bootstrap=args.keep_bootstrap)
    print(json.dumps(deployment.to_json(), indent=2))
    return 0


def _spec_from_args(args: argparse.Namespace) -> TaskSpec:
    from fednode.tasks import feature_stats_spec, heart_task_spec

    if getattr(args, "job", None) is not None:
        from fednode.job import load_job

        spec = load_job(args.job)
    elif args.spec_json is not None:
        spec = TaskSpec.from_json(args.spec_json.read_bytes())
    elif args.kind == "feature-stats":
        spec = feature_stats_spec()
    else:
        spec = heart_task_spec(normalization_task=args.normalization_task, rounds=args.rounds,
                               model=args.model, seed=args.seed,
                               hidden_sizes=(16,) if args.model == "mlp" else ())
    overrides = {name: getattr(args, name, None) for name in _SPEC_OVERRIDES}
    return dataclasses.replace(spec, **{k: v for k, v in overrides.items() if v is not None})


_SPEC_OVERRIDES = (
    "min_updates", "max_staleness", "deadline", "epsilon_budget", "aggregator_quorum",
    "max_examples",
)


def _publish(args: argparse.Namespace) -> int:
    from fednode.chain.connect import open_ledger
    from fednode.tasks import initial_payload

    spec = _spec_from_args(args)
    ledger = open_ledger(args.network_dir, "publisher", node=args.node)
    task_id = ledger.publish_task(spec, initial_payload(spec, key=jax.random.key(spec.seed)))
    print(task_id)
    return 0


def _show(args: argparse.Namespace) -> int:
    from fednode.chain.connect import open_ledger

    task = open_ledger(args.network_dir, "auditor", node=args.node).get_task(args.task_id)
    if args.json:
        body = {"task_id": task.task_id, "state": task.state.name.lower(),
                "latest_version": task.latest_version, "publisher": task.publisher,
                "spec": json.loads(task.spec.to_json())}
        print(json.dumps(body, indent=2))
    else:
        render_task(task, Console())
    return 0


def _list(args: argparse.Namespace) -> int:
    from fednode.chain.connect import open_ledger

    table = Table(title="tasks")
    for column in ("id", "name", "state", "version", "rounds", "publisher"):
        table.add_column(column)
    for t in open_ledger(args.network_dir, "auditor", node=args.node).list_tasks():
        table.add_row(str(t.task_id), t.spec.name, t.state.name.lower(), str(t.latest_version),
                      str(t.spec.rounds), t.publisher)
    Console().print(table)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from fednode.chain.connect import open_ledger

    open_ledger(args.network_dir, "publisher", node=args.node).cancel_task(args.task_id)
    print(f"task {args.task_id} cancelled")
    return 0


def _aggregate(args: argparse.Namespace) -> int:
    from fednode.aggregator.round import run_task
    from fednode.chain.connect import open_ledger

    ledger = open_ledger(args.network_dir, "aggregator", node=args.node)
    console = Console()
    started = time.monotonic()

    def report(result) -> None:
        console.print(f"version {result.record.version}: {len(result.record.update_ids)} updates, "
                      f"digest 0x{result.record.digest.hex()[:16]}…, {result.seconds:.1f}s")

    results = run_task(ledger, args.task, timeout=args.timeout, on_round=report)
    console.print(f"{len(results)} versions committed in {time.monotonic() - started:.0f}s")
    return 0
