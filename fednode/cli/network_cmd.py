"""Chain: the ``fednode network`` commands (up, status, down, join) for a validator consortium.

Each command is a function ``run_network_<name>(args) -> int`` (the process exit code) that
``add_network_parser`` registers with ``set_defaults(handler=...)``; the root parser calls
``args.handler(args)``. Progress and results go to the terminal through rich.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fednode.errors import FednodeError
from fednode.network import (
    DEFAULT_CHAIN_ID,
    NodeStatus,
    StopResult,
    join_network,
    load_network,
    network_down,
    network_status,
    network_up,
)
from fednode.network.keys import read_key_file

__all__ = [
    "DEFAULT_NETWORK_DIR",
    "add_network_parser",
    "render_status_table",
    "run_network_down",
    "run_network_join",
    "run_network_status",
    "run_network_up",
]

DEFAULT_NETWORK_DIR = os.environ.get("FEDNODE_NETWORK_DIR", "fednode-network")
"""The network folder every command uses unless told otherwise."""


def _short(address: str) -> str:
    """Shortens an address for a table cell: 0x1234…abcd."""
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def render_status_table(statuses: Sequence[NodeStatus]) -> Table:
    """Builds the rich table of ``fednode network status``: one row per validator."""
    table = Table(title="validators", header_style="bold")
    for column in ("node", "height", "peers", "signer", "in signer set", "pid", "alive", "rpc"):
        table.add_column(column)
    for s in statuses:
        in_set = "-" if s.signers is None else ("yes" if s.signer.lower() in s.signers else "no")
        table.add_row(
            s.name,
            "-" if s.height is None else str(s.height),
            "-" if s.peers is None else str(s.peers),
            _short(s.signer),
            in_set,
            "-" if s.pid is None else str(s.pid),
            "[green]yes[/]" if s.alive else "[red]no[/]",
            s.http_url if s.error is None else f"[red]{s.error[:60]}[/]",
        )
    return table


def run_network_up(args: argparse.Namespace) -> int:
    """``fednode network up``: creates or restarts the network, shows progress and a summary."""
    from fednode.network.bft import is_bft_network

    # A folder keeps the engine it was created with; --engine picks it for a new folder.
    if getattr(args, "engine", "clique") == "cometbft" or is_bft_network(args.dir):
        from fednode.cli.bft_cmd import run_bft_up

        return run_bft_up(args)
    console = Console(stderr=True)
    try:
        with console.status("starting validators…") as spinner:
            info = network_up(
                args.dir,
                validators=args.validators,
                period=args.period,
                chain_id=args.chain_id,
                timeout=args.timeout,
                progress=lambda line: spinner.update(f"[bold]network up[/]: {line}"),
            )
        statuses = network_status(info.dir)
    except FednodeError as exc:
        _print_failure(console, "network up", exc)
        return 1
    console.print(render_status_table(statuses))
    console.print(
        f"[green]{len(info.validators)} validators sealing[/] chain id {info.chain_id}, "
        f"period {info.period} s; endpoints in {info.dir}/network.json"
    )
    return 0


def run_network_status(args: argparse.Namespace) -> int:
    """``fednode network status``: a table (or JSON) of height, peers and signer per node."""
    from fednode.network.bft import is_bft_network

    if is_bft_network(args.dir):
        from fednode.cli.bft_cmd import run_bft_status

        return run_bft_status(args)
    console = Console()
    try:
        statuses = network_status(args.dir)
        info = load_network(args.dir)
    except FednodeError as exc:
        _print_failure(Console(stderr=True), "network status", exc)
        return 1
    drift = _registry_drift(args.dir) if any(s.alive for s in statuses) else None
    if args.json:
        rows = [asdict(s) for s in statuses]
        body = {"chain_id": info.chain_id, "validators": rows, "signer_drift": drift}
        print(json.dumps(body, indent=2))
    else:
        console.print(render_status_table(statuses))
        if drift is not None:
            console.print(_describe_drift(drift))
    return 0 if all(s.alive for s in statuses) else 3


def _registry_drift(directory: str) -> dict | None:
    """Clique signers vs the consortium registry's validators, once contracts are deployed.

    ``None`` before ``fednode deploy``; ``{"error": ...}`` when the registry cannot be read.
    """
    from fednode.chain.connect import deployment_path, open_ledger
    from fednode.network.signers import chain_signers, registry_signers, signer_drift

    if not deployment_path(directory).exists():
        return None
    try:
        wanted = registry_signers(open_ledger(directory, "auditor"))
        drift = signer_drift(wanted, chain_signers(load_network(directory).ipc_paths[0]))
    except FednodeError as exc:
        return {"error": str(exc)}
    return {"missing": list(drift.missing), "extra": list(drift.extra), "clean": drift.clean}


def _describe_drift(drift: dict) -> str:
    if "error" in drift:
        return f"[yellow]signer drift unknown:[/] {escape(drift['error'])}"
    if drift["clean"]:
        return "[green]Clique signers match the consortium registry[/]"
    return (f"[red]signer drift:[/] missing {escape(str(drift['missing']))}, "
            f"extra {escape(str(drift['extra']))} "
            "(run `fednode member sync-signers`)")


def _print_failure(console: Console, command: str, exc: FednodeError) -> None:
    """Prints ``<command> failed: <error>``; the error (often a geth log tail) is escaped,
    so brackets in it are printed as they are, never read as rich markup."""
    console.print(f"[red]{command} failed:[/] {escape(str(exc))}")


def _describe_stop(result: StopResult) -> str:
    """One line per stopped node; a SIGKILL is flagged because geth rewinds after it."""
    if result.outcome == "killed":
        return (
            f"[red]{result.name}: killed (pid {result.pid}) after {result.seconds} s; "
            "geth will rewind its head on the next start[/]"
        )
    return f"{result.name}: {result.outcome} (pid {result.pid}, {result.seconds} s)"


def run_network_down(args: argparse.Namespace) -> int:
    """``fednode network down``: stops every validator gracefully and reports how each went."""
    from fednode.network.bft import bft_network_down, is_bft_network

    console = Console(stderr=True)
    stop = bft_network_down if is_bft_network(args.dir) else network_down
    try:
        with console.status("stopping validators (SIGTERM)…"):
            results = stop(args.dir, timeout=args.timeout)
    except FednodeError as exc:
        _print_failure(console, "network down", exc)
        return 1
    for result in results:
        console.print(_describe_stop(result))
    return 2 if any(r.outcome == "killed" for r in results) else 0


def run_network_join(args: argparse.Namespace) -> int:
    """``fednode network join``: starts this operator's validator on an existing network."""
    console = Console(stderr=True)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()] if args.peers else []
    try:
        signer_key = read_key_file(Path(args.signer_key)) if args.signer_key else None
        node_key = read_key_file(Path(args.node_key)) if args.node_key else None
        with console.status(f"joining with {len(peers)} peers…"):
            node = join_network(
                args.dir, args.genesis, peers, host=args.host, p2p_port=args.p2p_port,
                http_port=args.http_port, authrpc_port=args.authrpc_port, name=args.name,
                signer_key=signer_key, node_key=node_key, timeout=args.timeout,
            )  # fmt: skip
    except FednodeError as exc:
        _print_failure(console, "network join", exc)
        return 1
    print(json.dumps(asdict(node), indent=2))
    console.print(
        f"[green]{node.name} is up[/] at {node.http_url}, {node.peers} peers, height "
        f"{node.height}; to seal, the current signers vote in {node.signer} (clique.propose)"
    )
    return 0


def _add_join(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    join = commands.add_parser("join", help="bring this operator's validator onto a network")
    _add_dir(join)
    join.add_argument("--genesis", required=True, help="the consortium's genesis.json")
    join.add_argument("--peers", default="", help="comma-separated enode URLs of validators")
    join.add_argument("--host", default="127.0.0.1", help="this node's own address")
    join.add_argument("--p2p-port", type=int, default=30303, help="devp2p port (30303)")
    join.add_argument("--http-port", type=int, default=8545,
                      help="public JSON-RPC port: eth, net, web3 only (8545)")
    join.add_argument("--authrpc-port", type=int, default=8551, help="engine API port (8551)")
    join.add_argument("--name", default="validator", help="geth identity")
    join.add_argument("--signer-key", help="sealer key file (hex); a new key if omitted")
    join.add_argument("--node-key", help="devp2p node key file (hex); a new key if omitted")
    join.add_argument("--timeout", type=float, default=60.0, help="seconds to reach a peer")
    join.set_defaults(handler=run_network_join)


def _add_dir(parser: argparse.ArgumentParser) -> None:
    """Adds the ``--dir`` option every network command takes."""
    parser.add_argument(
        "--dir",
        default=DEFAULT_NETWORK_DIR,
        help=f"network folder (default: $FEDNODE_NETWORK_DIR or ./{DEFAULT_NETWORK_DIR})",
    )


def add_network_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Registers ``network up|status|down`` under a root parser's subcommands.

    Args:
        subparsers: What the root parser's ``add_subparsers()`` returned.

    Returns:
        The ``network`` parser.

    Example:
        >>> root = argparse.ArgumentParser(prog="fednode")
        >>> _ = add_network_parser(root.add_subparsers(dest="command"))
        >>> args = root.parse_args(["network", "up", "--validators", "3", "--dir", "/tmp/n"])
        >>> args.handler.__name__, args.validators, args.period
        ('run_network_up', 3, None)
    """
    network: argparse.ArgumentParser = subparsers.add_parser(
        "network", help="run a local consortium of geth validators"
    )
    commands = network.add_subparsers(dest="network_command", required=True)

    up = commands.add_parser("up", help="create (or restart) and start the validators")
    _add_dir(up)
    up.add_argument("--validators", type=int, default=None, help="number of validators (4)")
    up.add_argument("--period", type=int, default=None, help="Clique block period, s (1)")
    up.add_argument(
        "--chain-id", type=int, default=None, help=f"chain and network id ({DEFAULT_CHAIN_ID})"
    )
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for sealing")
    up.add_argument("--engine", choices=("clique", "cometbft"), default="clique",
                    help="consensus: geth 1.13 Clique (default) or CometBFT + geth 1.17")
    up.set_defaults(handler=run_network_up)

    status = commands.add_parser("status", help="height, peers and signer of each validator")
    _add_dir(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(handler=run_network_status)

    down = commands.add_parser("down", help="stop every validator gracefully")
    _add_dir(down)
    down.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    down.set_defaults(handler=run_network_down)
    _add_join(commands)
    return network
