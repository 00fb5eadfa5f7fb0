"""Auditor: ``fednode audit verify | trace | affected | card | check-card | report``.

Read-only: every verb reads the ledger (and, for sealers and receipts, its JSON-RPC node);
``check-card`` reads nothing but the card file and the auditor's own trusted files: the
genesis it is anchored to and the consortium's ``deployment.json`` (``--deployment``, else the
one next to ``--genesis``), the only source of contract addresses.

``check-card`` exit codes: 0 VERIFIED (every check passed, the header chain links to the
trust anchor given with ``--trusted-block-hash`` / ``--genesis`` and the events come from the
trusted deployment's contracts), 1 REJECTED (a check failed; its reason is named), 3
UNANCHORED (every check passed but no anchor or no trusted deployment was given: integrity
only, the card's chain or contracts could be anyone's), 2 an error (unreadable card, genesis
or deployment).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fednode.auditor.replay import AuditReport, verify_task
from fednode.cli.network_cmd import DEFAULT_NETWORK_DIR

__all__ = ["CHECK_CARD_EXIT", "add_audit_parser", "render_report"]

CHECK_CARD_EXIT = {"VERIFIED": 0, "REJECTED": 1, "UNANCHORED": 3}
"""``fednode audit check-card`` exit code per card status."""


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
    card.add_argument("--headers-from", type=int, help="first block header to carry "
                      "(default: genesis when the chain is short, else the Consortium's deployment "
                      "block; at most that block, so the card can prove the signers' roles)")
    card.add_argument("--headers-to", help="last block header to carry: a number or 'latest' "
                      "(default: the last proven block)")
    check = verbs.add_parser("check-card", help="verify a provenance card offline")
    check.add_argument("card", type=Path)
    check.add_argument("--expect-signer", help="fail unless the card is signed by this address")
    check.add_argument("--trusted-block-hash", action="append", default=[], metavar="0xHASH",
                       help="a block hash you trust (your own node, a published checkpoint); "
                            "repeatable")
    check.add_argument("--genesis", type=Path, help="the consortium's genesis.json: anchors "
                       "block 0 and the initial Clique signer set")
    check.add_argument("--deployment", type=Path, help="the consortium's deployment.json "
                       "(contract addresses; default: the one next to --genesis)")
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

    stop = args.headers_to
    if stop is not None and stop != "latest":
        stop = _block_number(stop)
    body = build_card(_open(args), args.digest, headers_from=args.headers_from, headers_to=stop)
    signed = sign_card(body, load_account(load_network(args.network_dir), args.account))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(signed, indent=1, sort_keys=True) + "\n")
    print(f"provenance card of {args.digest} (task {body['task']['task_id']} "
          f"v{body['model']['version']}, {len(body['updates'])} updates, "
          f"{len(body['headers'])} headers) signed by {signed['signature']['signer']}: {args.out}")
    return 0


def _block_number(text: str) -> int:
    from fednode.errors import FednodeValueError

    try:
        return int(text, 0)
    except ValueError as exc:
        raise FednodeValueError(f"not a block number or 'latest': {text!r}") from exc


def _read_json(path: Path, what: str) -> dict:
    from fednode.errors import AuditError

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read {what} {path}: {exc}") from exc


def _anchor(args: argparse.Namespace):
    from fednode.auditor.clique_anchor import Anchor
    from fednode.auditor.genesis_anchor import genesis_anchor
    from fednode.errors import AuditError

    hashes = []
    for text in args.trusted_block_hash:
        try:
            raw = bytes.fromhex(text[2:]) if text.startswith("0x") else b""
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise AuditError(f"--trusted-block-hash wants 0x and 64 hex digits, got {text!r}")
        hashes.append(raw)
    genesis = genesis_anchor(_read_json(args.genesis, "genesis")) if args.genesis else None
    return Anchor(tuple(hashes), genesis)


def _trusted_deployment(args: argparse.Namespace):
    """The deployment the auditor trusts: --deployment, else deployment.json beside --genesis."""
    from fednode.chain.connect import DEPLOYMENT_FILE
    from fednode.chain.deploy import Deployment
    from fednode.errors import AuditError, FednodeValueError

    path = args.deployment
    if path is None and args.genesis is not None:
        beside = args.genesis.parent / DEPLOYMENT_FILE
        path = beside if beside.exists() else None
    if path is None:
        return None, None
    try:
        deployment = Deployment.from_json(_read_json(path, "deployment"))
    except FednodeValueError as exc:
        raise AuditError(f"{path}: {exc}") from exc
    if args.genesis is not None:
        chain_id = (_read_json(args.genesis, "genesis").get("config") or {}).get("chainId")
        if chain_id is not None and int(chain_id) != deployment.chain_id:
            raise AuditError(f"{path} is for chain {deployment.chain_id}, the genesis "
                             f"{args.genesis} for chain {chain_id}")
    return deployment, path


def _check_card(args: argparse.Namespace) -> int:
    from fednode.auditor.card_check import check_card

    card = _read_json(args.card, "card")
    anchor = _anchor(args)
    deployment, path = _trusted_deployment(args)
    verdict = check_card(card, anchor=anchor, deployment=deployment)
    status = verdict.status
    if args.expect_signer and verdict.signer.lower() != args.expect_signer.lower():
        status = "REJECTED"
    if args.json:
        print(json.dumps({**verdict.to_dict(), "status": status, "ok": status == "VERIFIED",
                          "deployment": str(path) if path else None}, indent=2))
        return CHECK_CARD_EXIT[status]
    if path:
        print(f"trusted deployment: {path}")
    for check in verdict.checks:
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    if args.expect_signer and verdict.signer.lower() != args.expect_signer.lower():
        print(f"FAIL signer: {verdict.signer} is not the expected {args.expect_signer}")
    if status == "UNANCHORED" and not anchor.given:
        print("UNANCHORED: integrity only. No trust anchor was given, so these headers could "
              "be a chain anyone sealed; pass --trusted-block-hash 0x.. and/or --genesis FILE.")
    elif status == "UNANCHORED":
        print("UNANCHORED: integrity only. No trusted deployment was given, so these events "
              "could come from any contract; pass --deployment FILE (the consortium's "
              "deployment.json) or keep deployment.json next to the genesis.")
    reasons = f" ({', '.join(verdict.reasons)})" if verdict.reasons else ""
    print(f"card for {verdict.model_digest}: {status}{reasons}")
    return CHECK_CARD_EXIT[status]


def _report(args: argparse.Namespace) -> int:
    from fednode.auditor.html_report import collect_report_data, render_html

    data = collect_report_data(_open(args), args.task)
    args.html.parent.mkdir(parents=True, exist_ok=True)
    args.html.write_text(render_html(data))
    print(f"report of task {args.task} ({len(data.versions)} versions): {args.html}")
    return 0
