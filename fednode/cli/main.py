"""All stages: the ``fednode`` command line (thin: parses arguments and calls the library)."""

from __future__ import annotations

import argparse
import logging
import sys

from fednode.errors import FednodeError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The root parser with every subcommand registered."""
    from fednode.cli import (
        audit_cmd,
        chain_cmd,
        dashboard_cmd,
        demo_cmd,
        device_cmd,
        governance_cmd,
        network_cmd,
        schema_cmd,
    )

    parser = argparse.ArgumentParser(
        prog="fednode",
        description="Blockchain-anchored federated learning consortium for healthcare.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    network_cmd.add_network_parser(commands)
    chain_cmd.add_chain_parsers(commands)
    governance_cmd.add_governance_parser(commands)
    device_cmd.add_device_parser(commands)
    audit_cmd.add_audit_parser(commands)
    dashboard_cmd.add_dashboard_parser(commands)
    demo_cmd.add_demo_parser(commands)
    schema_cmd.add_schema_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fednode`` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except FednodeError as exc:
        print(f"fednode: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fednode: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
