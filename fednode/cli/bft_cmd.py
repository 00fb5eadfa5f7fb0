"""Consensus: ``fednode network up|status`` for a CometBFT network (``--engine cometbft``).

``network_cmd`` hands over to these when the engine is CometBFT (``up --engine cometbft``, or a
folder holding ``bft.json``); ``down`` needs no own renderer.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fednode.errors import FednodeError
from fednode.network.bft import bft_network_status, bft_network_up

__all__ = ["render_bft_table", "run_bft_status", "run_bft_up"]


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _caption(status: dict[str, Any]) -> str:
    """Height, finalized block and the validator set's total voting power."""
    members = status.get("validator_set") or {}
    power = members.get("total_voting_power")
    return (f"CometBFT height {_cell(status.get('height'))}, finalized execution block "
            f"{_cell(status.get('finalized'))}, {len(members.get('validators', []))} validators "
            f"with voting power {_cell(power)}")


def render_bft_table(status: dict[str, Any]) -> Table:
    """One row per validator: heights, peers, voting power, both PIDs, liveness."""
    versions = ", ".join(f"{k} {v}" for k, v in status["versions"].items())
    table = Table(title=f"{status['engine']} validators ({versions})", header_style="bold",
                  caption=_caption(status))
    for column in ("node", "head", "finalized", "cometbft", "peers", "power", "geth pid",
                   "cometbft pid", "alive", "rpc"):
        table.add_column(column)
    for row in status["validators"]:
        alive = row["geth_alive"] and row["cometbft_alive"]
        table.add_row(
            row["name"], _cell(row["head"]), _cell(row["finalized"]),
            _cell(row["cometbft_height"]), _cell(row["peers"]), _cell(row["voting_power"]),
            _cell(row["geth_pid"]), _cell(row["cometbft_pid"]),
            "[green]yes[/]" if alive else "[red]no[/]", row["http_url"],
        )  # fmt: skip
    return table


def run_bft_up(args: argparse.Namespace) -> int:
    """Creates or restarts a CometBFT network and waits until its blocks are final."""
    console = Console(stderr=True)
    try:
        with console.status("starting validators…") as spinner:
            info = bft_network_up(
                args.dir, validators=args.validators, chain_id=args.chain_id,
                timeout=args.timeout,
                progress=lambda line: spinner.update(f"[bold]network up[/]: {escape(line)}"),
            )  # fmt: skip
        status = bft_network_status(info.dir)
    except FednodeError as exc:
        console.print(f"[red]network up failed:[/] {escape(str(exc))}")
        return 1
    console.print(render_bft_table(status))
    console.print(f"[green]{len(info.validators)} validators finalizing[/] (CometBFT) chain id "
                  f"{info.chain_id}; endpoints in {info.dir}/network.json")
    return 0


def run_bft_status(args: argparse.Namespace) -> int:
    """Prints the status table (or JSON); exit 3 when a process is down."""
    try:
        status = bft_network_status(args.dir)
    except FednodeError as exc:
        Console(stderr=True).print(f"[red]network status failed:[/] {escape(str(exc))}")
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        Console().print(render_bft_table(status))
    rows = status["validators"]
    return 0 if all(r["geth_alive"] and r["cometbft_alive"] for r in rows) else 3
