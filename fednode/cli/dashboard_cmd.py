"""Auditor: ``fednode dashboard``, serves the read-only consortium dashboard from the chain."""

from __future__ import annotations

import argparse
from pathlib import Path

from fednode.cli.network_cmd import DEFAULT_NETWORK_DIR

__all__ = ["add_dashboard_parser", "dashboard_source"]


def add_dashboard_parser(commands: argparse._SubParsersAction) -> None:
    """Registers ``fednode dashboard``."""
    dashboard = commands.add_parser("dashboard", help="serve the read-only web dashboard")
    dashboard.add_argument("--network-dir", type=Path, default=Path(DEFAULT_NETWORK_DIR))
    dashboard.add_argument("--node", type=int, default=0, help="validator index to read from")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8600)
    dashboard.set_defaults(handler=_serve)


def dashboard_source(network_dir: Path, *, node: int = 0):
    """A DashboardSource reading as the auditor account, members named from the network folder."""
    from fednode.chain.connect import open_ledger
    from fednode.dashboard.views import DashboardSource
    from fednode.network.info import load_network

    info = load_network(network_dir)
    accounts = {name: account.address for name, account in info.accounts.items()}
    return DashboardSource(open_ledger(network_dir, "auditor", node=node), accounts)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fednode.dashboard.app import create_app

    app = create_app(dashboard_source(args.network_dir, node=args.node))
    print(f"fednode dashboard on http://{args.host}:{args.port}/ (read-only, Ctrl-C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
