"""Auditor: ``fednode audit verify`` and ``fednode audit trace`` (read-only, from the ledger)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fednode.auditor.replay import AuditReport, verify_task
from fednode.auditor.trace import render_trace, trace_digest
from fednode.cli.network_cmd import DEFAULT_NETWORK_DIR

__all__ = ["add_audit_parser", "render_report"]


def add_audit_parser(commands: argparse._SubParsersAction) -> None:
    """Registers ``audit verify`` and ``audit trace``."""
    audit = commands.add_parser("audit", help="verify and trace models from the ledger alone")
    verbs = audit.add_subparsers(dest="verb", required=True, metavar="VERB")
    verify = verbs.add_parser("verify", help="recompute every global model of a task")
    verify.add_argument("--task", type=int, required=True, help="task id")
    trace = verbs.add_parser("trace", help="provenance of one global model")
    trace.add_argument("digest", help="0x-prefixed keccak-256 digest of the model")
    for sub in (verify, trace):
        sub.add_argument("--network-dir", type=Path, default=Path(DEFAULT_NETWORK_DIR))
        sub.add_argument("--node", type=int, default=0, help="validator index to read from")
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify.set_defaults(handler=_verify)
    trace.set_defaults(handler=_trace)


def render_report(report: AuditReport, console: Console) -> None:
    """Prints one row per version: match or the first differing tensor and who is at fault."""
    table = Table(title=f"audit of task {report.task_id}")
    for column in ("version", "committed digest", "result", "detail"):
        table.add_column(column)
    for v in report.verdicts:
        detail = "" if v.match else f"{v.detail}; tensor={v.first_differing_tensor}; at fault: {v.at_fault}"
        result = "[green]match[/]" if v.match else "[red]MISMATCH[/]"
        table.add_row(str(v.version), "0x" + v.committed_digest[:16] + "…", result, detail)
    console.print(table)
    verdict = "[green]all versions verified bit for bit[/]" if report.ok else "[red]audit FAILED[/]"
    console.print(verdict)


def _verify(args: argparse.Namespace) -> int:
    from fednode.chain.connect import open_ledger

    report = verify_task(open_ledger(args.network_dir, "auditor", node=args.node), args.task)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render_report(report, Console())
    return 0 if report.ok else 1


def _trace(args: argparse.Namespace) -> int:
    from fednode.chain.connect import open_ledger

    trace = trace_digest(open_ledger(args.network_dir, "auditor", node=args.node), args.digest)
    print(json.dumps(trace.to_dict(), indent=2) if args.json else render_trace(trace))
    return 0
