"""Chain: ``fednode member ...``: consortium proposals (membership, quorum, admin), votes,
cancellation and signer sync. After the bootstrap every change goes through these verbs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fednode.chain.constants import (
    AGGREGATOR_ROLE,
    AUDITOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    EDGE_ROLE,
    PUBLISHER_ROLE,
)
from fednode.cli.network_cmd import DEFAULT_NETWORK_DIR

__all__ = ["ROLES", "add_governance_parser"]

ROLES = {
    "publisher": PUBLISHER_ROLE,
    "edge": EDGE_ROLE,
    "aggregator": AGGREGATOR_ROLE,
    "auditor": AUDITOR_ROLE,
}


def _common(parser: argparse.ArgumentParser, account: str) -> None:
    parser.add_argument("--network-dir", type=Path, default=Path(DEFAULT_NETWORK_DIR))
    parser.add_argument("--node", type=int, default=0, help="validator index to talk to")
    parser.add_argument("--as", dest="account", default=account, help="member account name")


def add_governance_parser(commands: argparse._SubParsersAction) -> None:
    """Registers ``member propose/propose-quorum/propose-admin/propose-admin-renounce/vote/cancel/
    list/end-bootstrap/sync-signers/drift``."""
    member = commands.add_parser("member", help="consortium membership by vote")
    verbs = member.add_subparsers(dest="verb", required=True, metavar="VERB")
    propose = verbs.add_parser("propose", help="propose to add or remove a member's role")
    _common(propose, "edge-1")
    propose.add_argument("action", choices=("add", "remove"))
    propose.add_argument("role", choices=sorted(ROLES))
    propose.add_argument("target", help="0x address or a network account name (edge-2, ...)")
    propose.add_argument("--validator", help="validator address (adding an edge operator)")
    propose.add_argument("--name", default="", help="display name (adding an edge operator)")
    propose.set_defaults(handler=_propose)
    quorum = verbs.add_parser("propose-quorum", help="propose a new vote quorum (51..100 %%)")
    _common(quorum, "edge-1")
    quorum.add_argument("percent", type=int)
    quorum.set_defaults(handler=_propose_quorum)
    admin = verbs.add_parser("propose-admin", help="propose to hand the admin role to TARGET")
    _common(admin, "edge-1")
    admin.add_argument("target", help="0x address or a network account name")
    admin.set_defaults(handler=_propose_admin)
    renounce = verbs.add_parser("propose-admin-renounce", help="propose to leave no admin")
    _common(renounce, "edge-1")
    renounce.set_defaults(handler=_propose_admin_renounce)
    vote = verbs.add_parser("vote", help="vote for a proposal (executes it on quorum)")
    _common(vote, "edge-2")
    vote.add_argument("proposal_id", type=int)
    vote.set_defaults(handler=_vote)
    cancel = verbs.add_parser("cancel", help="cancel your own active proposal")
    _common(cancel, "edge-1")
    cancel.add_argument("proposal_id", type=int)
    cancel.set_defaults(handler=_cancel)
    listing = verbs.add_parser("list", help="members, reputation and proposals")
    _common(listing, "auditor")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)
    end = verbs.add_parser("end-bootstrap", help="admin: from now on roles change only by vote")
    _common(end, "admin")
    end.set_defaults(handler=_end_bootstrap)
    for verb, handler in (("sync-signers", _sync), ("drift", _drift)):
        sub = verbs.add_parser(verb, help=f"{verb.replace('-', ' ')}: Clique signers vs registry")
        _common(sub, "auditor")
        sub.set_defaults(handler=handler)


def _address(network_dir: Path, account: str) -> str:
    from fednode.network.info import load_network

    if account.startswith("0x"):
        return account
    return load_network(network_dir).accounts[account].address


def _ledger(args: argparse.Namespace):
    from fednode.chain.connect import open_ledger

    return open_ledger(args.network_dir, args.account, node=args.node)


def _propose(args: argparse.Namespace) -> int:
    from fednode.chain.records import ProposalAction

    action = ProposalAction.ADD if args.action == "add" else ProposalAction.REMOVE
    options = {"name": args.name}
    if args.validator:
        options["validator"] = args.validator
    account = _address(args.network_dir, args.target)
    proposal_id = _ledger(args).propose_member(action, ROLES[args.role], account, **options)
    print(proposal_id)
    return 0


def _propose_quorum(args: argparse.Namespace) -> int:
    print(_ledger(args).propose_quorum(args.percent))
    return 0


def _propose_admin(args: argparse.Namespace) -> int:
    print(_ledger(args).propose_admin_transfer(_address(args.network_dir, args.target)))
    return 0


def _propose_admin_renounce(args: argparse.Namespace) -> int:
    print(_ledger(args).propose_admin_renounce())
    return 0


def _vote(args: argparse.Namespace) -> int:
    executed = _ledger(args).vote(args.proposal_id)
    print(f"proposal {args.proposal_id}: {'executed' if executed else 'vote recorded'}")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    _ledger(args).cancel_proposal(args.proposal_id)
    print(f"proposal {args.proposal_id}: cancelled")
    return 0


def _list(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    members = [
        {
            "edge": edge,
            "validator": ledger.validator_of(edge),
            "active": ledger.has_role(EDGE_ROLE, edge),
            "reputation_bps": ledger.reputation(edge).score_bps,
        }
        for edge in ledger.edges()
    ]
    proposals = [
        {"id": p.proposal_id, "action": p.action.name.lower(), "role": _role_name(p.role),
         "account": p.account, "quorum_percent": p.quorum_percent, "votes": len(p.voters),
         "deadline": p.deadline, "state": ledger.proposal_state(p.proposal_id).name.lower()}
        for p in ledger.list_proposals()
    ]
    body = {"bootstrapping": ledger.bootstrapping(), "admin": ledger.default_admin(),
            "vote_quorum_percent": ledger.vote_quorum_percent(),
            "required_votes": ledger.required_votes(), "edges": members, "proposals": proposals}
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    _render(body, Console())
    return 0


def _role_name(role: bytes) -> str:
    if role == DEFAULT_ADMIN_ROLE:
        return "admin"
    return next((name for name, value in ROLES.items() if value == role), "0x" + role.hex())


def _render(body: dict, console: Console) -> None:
    console.print(f"bootstrapping: {body['bootstrapping']}, admin: {body['admin']}, quorum: "
                  f"{body['vote_quorum_percent']} %, votes needed: {body['required_votes']}")
    edges = Table(title="edge operators")
    for column in ("edge", "validator", "active", "reputation (bps)"):
        edges.add_column(column)
    for m in body["edges"]:
        edges.add_row(m["edge"], m["validator"], str(m["active"]), str(m["reputation_bps"]))
    console.print(edges)
    proposals = Table(title="proposals")
    keys = ("id", "action", "role", "account", "quorum_percent", "votes", "deadline", "state")
    for column in keys:
        proposals.add_column(column.replace("_", " "))
    for p in body["proposals"]:
        proposals.add_row(*(str(p[k]) for k in keys))
    console.print(proposals)


def _end_bootstrap(args: argparse.Namespace) -> int:
    _ledger(args).end_bootstrap()
    print("bootstrap ended: roles now change only by vote")
    return 0


def _signer_state(args: argparse.Namespace):
    from fednode.network.info import load_network
    from fednode.network.signers import registry_signers

    info = load_network(args.network_dir)
    return info, registry_signers(_ledger(args))


def _sync(args: argparse.Namespace) -> int:
    from fednode.network.signers import sync_signers

    info, wanted = _signer_state(args)
    drift = sync_signers(info.ipc_paths, wanted)
    print(json.dumps({"proposed_additions": drift.missing, "proposed_removals": drift.extra}))
    return 0


def _drift(args: argparse.Namespace) -> int:
    from fednode.network.signers import chain_signers, signer_drift

    info, wanted = _signer_state(args)
    drift = signer_drift(wanted, chain_signers(info.ipc_paths[args.node]))
    print(json.dumps({"missing": drift.missing, "extra": drift.extra, "clean": drift.clean}))
    return 0 if drift.clean else 1
