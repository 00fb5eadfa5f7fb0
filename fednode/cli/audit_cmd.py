"""Auditor: ``fednode audit verify | trace | affected | card | check-card | report``.

Read-only: every verb reads the ledger (and, for sealers and receipts, its JSON-RPC node);
``check-card`` reads nothing but the card file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fednode.auditor.replay import AuditReport, verify_task
from fednode.cli.network_cmd import DEFAULT_NETWORK_DIR

__all__ = ["add_audit_parser", "render_report"]


def _ledger_args(sub: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    sub.add_argument("--network-dir", type=Path, default=Path(DEFAULT_NETWORK_DIR))
    sub.add_argument("--node", type=int, default=0, help="validator index to read from")
    if json_flag:
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_audit_parser(commands: argparse._SubParsersAction) -> None:
    """Registers the ``audit`` verbs."""
    audit = commands.add_parser("audit", help="verify and trace models from the ledger alone")
    verbs = audit.add_subparsers(dest="verb", required=True, metavar="VERB")
    verify = verbs.add_parser("verify", help="recompute every global model of a task")
    verify.add_argument("--task", type=int, required=True, help="task id")
    verify.add_argument("--no-roles", action="store_true", help="skip the signer role checks")
    trace = verbs.add_parser("trace", help="provenance of one global model")
    trace.add_argument("digest", help="0x-prefixed keccak-256 digest of the model")
    affected = verbs.add_parser("affected", help="versions holding one edge's updates")
    affected.add_argument("--edge", required=True, help="the contributor's edge address")
    affected.add_argument("--from-version", type=int, default=0,
                          help="only the edge's updates aggregated into versions >= this")
    card = verbs.add_parser("card", help="write a signed, offline-checkable provenance card")
    card.add_argument("digest", help="0x-prefixed digest of the global model")
    card.add_argument("--out", type=Path, required=True, help="card file to write")
    card.add_argument("--account", default="auditor", help="network account that signs")
    check = verbs.add_parser("check-card", help="verify a provenance card offline")
    check.add_argument("card", type=Path)
    check.add_argument("--expect-signer", help="fail unless the card is signed by this address")
    check.add_argument("--json", action="store_true")
    report = verbs.add_parser("report", help="HTML report with plots of a task")
    report.add_argument("--task", type=int, required=True)
    report.add_argument("--html", type=Path, required=True, help="where to write the report")
    for sub in (verify, trace, affected, card, report):
        _ledger_args(sub, json_flag=sub not in (card, report))
    for sub, handler in ((verify, _verify), (trace, _trace), (affected, _affected), (card, _card),
                         (check, _check_card), (report, _report)):
        sub.set_defaults(handler=handler)


def render_report(report: AuditReport, console: Console) -> None:
    """Prints one row per version: match or the first differing tensor and who is at fault."""
    table = Table(title=f"audit of task {report.task_id}")
    for column in ("version", "committed digest", "result", "detail"):
        table.add_column(column)
    for v in report.verdicts:
        problems = [f"{f.kind}: {f.detail} (at fault: {f.at_fault})" for f in v.findings]
        if not v.match:
            problems.insert(0, f"{v.detail}; tensor={v.first_differing_tensor}; "
                               f"at fault: {v.at_fault}")
        result = ("[green]match[/]" if v.ok else
                  "[red]MISMATCH[/]" if not v.match else "[red]FLAGGED[/]")
        table.add_row(str(v.version), "0x" + v.committed_digest[:16] + "…", result,
                      "\n".join(problems))
    console.print(table)
    for f in report.findings:
        console.print(f"[red]{f.kind}[/]: {f.detail} (at fault: {f.at_fault})")
    verdict = "[green]all versions verified bit for bit[/]" if report.ok else "[red]audit FAILED[/]"
    console.print(verdict)


def _open(args: argparse.Namespace, account: str = "auditor"):
    from fednode.chain.connect import open_ledger

    return open_ledger(args.network_dir, account, node=args.node)


def _verify(args: argparse.Namespace) -> int:
    report = verify_task(_open(args), args.task, check_roles=not args.no_roles)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render_report(report, Console())
    return 0 if report.ok else 1


def _trace(args: argparse.Namespace) -> int:
    from fednode.auditor.node import node_reader
    from fednode.auditor.trace import render_trace, trace_digest

    ledger = _open(args)
    node = node_reader(ledger)
    trace = trace_digest(ledger, args.digest, sealer_of=node.sealer_of if node else None)
    print(json.dumps(trace.to_dict(), indent=2) if args.json else render_trace(trace))
    return 0


def _affected(args: argparse.Namespace) -> int:
    from fednode.auditor.affected import find_affected, render_affected

    found = find_affected(_open(args), args.edge, from_version=args.from_version)
    if args.json:
        print(json.dumps([a.to_dict() for a in found], indent=2))
    else:
        print(render_affected(args.edge, found))
    return 0


def _card(args: argparse.Namespace) -> int:
    from fednode.auditor.card import build_card, sign_card
    from fednode.chain.connect import load_account
    from fednode.network.info import load_network

    body = build_card(_open(args), args.digest)
    signed = sign_card(body, load_account(load_network(args.network_dir), args.account))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(signed, indent=1, sort_keys=True) + "\n")
    print(f"provenance card of {args.digest} (task {body['task']['task_id']} "
          f"v{body['model']['version']}, {len(body['updates'])} updates, "
          f"{len(body['headers'])} headers) signed by {signed['signature']['signer']}: {args.out}")
    return 0


def _check_card(args: argparse.Namespace) -> int:
    from fednode.auditor.card_check import check_card
    from fednode.errors import AuditError

    try:
        card = json.loads(args.card.read_text())
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read card {args.card}: {exc}") from exc
    verdict = check_card(card)
    ok = verdict.ok and (not args.expect_signer
                         or verdict.signer.lower() == args.expect_signer.lower())
    if args.json:
        print(json.dumps({**verdict.to_dict(), "ok": ok}, indent=2))
        return 0 if ok else 1
    for check in verdict.checks:
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    if args.expect_signer and verdict.signer.lower() != args.expect_signer.lower():
        print(f"FAIL signer: {verdict.signer} is not the expected {args.expect_signer}")
    print(f"card for {verdict.model_digest}: {'VERIFIED' if ok else 'REJECTED'}")
    return 0 if ok else 1


def _report(args: argparse.Namespace) -> int:
    from fednode.auditor.html_report import collect_report_data, render_html

    data = collect_report_data(_open(args), args.task)
    args.html.parent.mkdir(parents=True, exist_ok=True)
    args.html.write_text(render_html(data))
    print(f"report of task {args.task} ({len(data.versions)} versions): {args.html}")
    return 0
