"""Auditor: checks a provenance card offline (``fednode audit check-card``), no network at all.

Checks, in order: the auditor's signature over the card body; every block header hashes to its
hash, links to its parent and carries a Clique seal by a listed signer; the publication and
every update receipt is proven against its block's ``receiptsRoot`` and holds the expected
event with the card's values; each version's ``GlobalModelFinalized`` receipt is proven, with
the commits of at least the task's ``aggregatorQuorum`` distinct aggregators; every commit's
aggregator held ``AGGREGATOR_ROLE`` and every update's edge was a registered ``EDGE_ROLE``
holder at that transaction, by the Consortium's role events (``card_roles.py``); payloads hash
to their digests; and the model recomputed with the task's rule from the initial model and the
updates equals every finalized digest.

Contract addresses come from a trusted :class:`~fednode.chain.deploy.Deployment` (the
consortium's ``deployment.json``), event definitions from the ABIs compiled into fednode;
the card names neither. An event emitted by another contract is a ``look_alike_contract``.

These checks prove the card is internally consistent, not that its chain is the consortium's:
anyone can seal a header chain with keys of their own. With an :class:`Anchor` (a trusted block
hash and/or the consortium genesis) the ``anchor`` check ties the headers to it
(``clique_anchor.py``); a clean card is ``VERIFIED`` only with an anchor and a trusted
deployment, otherwise only ``UNANCHORED`` (integrity only) and ``ok`` stays False. A failed
check names its reason (:data:`REASONS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

from fednode.aggregator.build import build_global_model
from fednode.auditor.card import CARD_FORMAT, card_message
from fednode.auditor.card_roles import CardRejection, check_roles, commit_use, update_uses
from fednode.auditor.clique_anchor import Anchor, check_anchored_chain
from fednode.auditor.proofs import (
    clique_signer,
    decode_log,
    header_hash,
    receipt_logs,
    verify_receipt_proof,
)
from fednode.chain.compile import load_artifact
from fednode.chain.deploy import Deployment
from fednode.errors import AuditError, FednodeError
from fednode.types import LedgerUpdate, TaskSpec

__all__ = ["CARD_STATUSES", "REASONS", "CardCheck", "CardVerdict", "check_card"]

CARD_STATUSES = ("VERIFIED", "UNANCHORED", "REJECTED")
"""A card's outcome: every check passed against a trust anchor and a trusted deployment; every
check passed but one of them was missing (integrity only); some check failed."""
REASONS = ("look_alike_contract", "not_final", "unknown_signer", "roles_unproven",
           "missing_event")
"""Named reasons of a rejection besides the failing check's own name: an event emitted by a
contract other than the consortium's; a version without a proven finalization by the task's
quorum; a sender without its role; role evidence the card lacks; a receipt without the event."""
_EVENT_CONTRACTS = {"TaskPublished": "TaskRegistry", "UpdateSubmitted": "UpdateLedger",
                    "GlobalModelCommitted": "UpdateLedger",
                    "GlobalModelFinalized": "UpdateLedger"}


@dataclass(frozen=True)
class CardCheck:
    """One named check and its outcome; ``reason`` names why it failed ("" if it passed)."""

    name: str
    ok: bool
    detail: str
    reason: str = ""


@dataclass(frozen=True)
class CardVerdict:
    """Every check of one card; ``ok`` only if all passed and the card was anchored (to the
    chain by an :class:`Anchor` and to the consortium by a trusted deployment)."""

    signer: str
    model_digest: str
    checks: tuple[CardCheck, ...]
    anchored: bool = False

    @property
    def intact(self) -> bool:
        """Whether every check passed (with or without an anchor)."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def status(self) -> str:
        """One of :data:`CARD_STATUSES`."""
        if not self.intact:
            return "REJECTED"
        return "VERIFIED" if self.anchored else "UNANCHORED"

    @property
    def ok(self) -> bool:
        return self.status == "VERIFIED"

    @property
    def reasons(self) -> tuple[str, ...]:
        """The reasons of the failed checks, in check order, each once."""
        return tuple(dict.fromkeys(c.reason for c in self.checks if not c.ok))

    def to_dict(self) -> dict:
        return {"ok": self.ok, "status": self.status, "anchored": self.anchored,
                "reasons": list(self.reasons), "signer": self.signer,
                "model_digest": self.model_digest, "checks": [asdict(c) for c in self.checks]}


def _hex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


@cache
def _compiled_events() -> dict[str, tuple[str, dict[str, Any]]]:
    """Event name -> (contract, ABI) from the artifacts compiled into fednode, never a card's."""
    found = {}
    for event, contract in _EVENT_CONTRACTS.items():
        [abi] = [e for e in load_artifact(contract)["abi"]
                 if e.get("type") == "event" and e["name"] == event]
        found[event] = (contract, abi)
    return found


def _check_signature(card: dict[str, Any]) -> str:
    body, signature = card["card"], card["signature"]
    message = card_message(body)
    if "0x" + message.hex() != signature["message"]:
        raise AuditError("the signed message is not the keccak of this card body")
    signer = Account.recover_message(encode_defunct(primitive=message),
                                     signature=_hex(signature["signature"]))
    if signer != to_checksum_address(signature["signer"]):
        raise AuditError(f"signature is by {signer}, the card names {signature['signer']}")
    return f"signed by {signer}"


def _check_headers(body: dict[str, Any]) -> str:
    headers = body["headers"]
    numbers = sorted(int(n) for n in headers)
    signers = {to_checksum_address(s) for s in body.get("signers", [])}
    for number in numbers:
        header = headers[str(number)]
        if "0x" + header_hash(header).hex() != header["hash"]:
            raise AuditError(f"block {number}: header does not hash to {header['hash']}")
        if signers and number > 0 and clique_signer(header) not in signers:  # genesis: no seal
            raise AuditError(f"block {number}: sealed by {clique_signer(header)}, not a signer")
        parent = headers.get(str(number - 1))
        if body.get("header_chain") and parent and header["parentHash"] != parent["hash"]:
            raise AuditError(f"block {number}: parentHash does not link to block {number - 1}")
    if body.get("header_chain") and numbers != list(range(numbers[0], numbers[-1] + 1)):
        raise AuditError("the header chain has gaps")
    return f"{len(numbers)} headers hash, link and carry Clique seals of {len(signers)} signers"


def _prove_headers(body: dict[str, Any], anchor: Anchor | None) -> list[CardCheck]:
    """The engine-specific header proof (Clique today): integrity and, if given, the anchor.

    Everything else in a card only reads ``receiptsRoot`` and ``logsBloom`` of headers this
    function accepted, so another consensus engine replaces this function and the card's
    ``headers`` section, nothing else.
    """
    checks = [_run("headers", _check_headers, body)]
    if anchor is not None and anchor.given:
        checks.append(_run("anchor", lambda b: check_anchored_chain(b["headers"], anchor), body))
    return checks


@dataclass(frozen=True)
class _Proven:
    """One event proven in a receipt, with where it ran."""

    args: dict[str, Any]
    address: str
    block: int
    tx_index: int


def _proven_event(body: dict[str, Any], entry: dict[str, Any], event: str,
                  trusted: Deployment | None, *, missing: str = "missing_event") -> _Proven:
    """Proves ``entry``'s receipt and finds ``event`` of the trusted contract in it.

    Without a trusted deployment any contract's log counts (integrity only).

    Raises:
      CardRejection: ``look_alike_contract`` when only another contract emitted ``event``;
        ``missing`` when no contract did.
    """
    if not isinstance(entry, dict):
        raise CardRejection(missing, f"the card carries no receipt proving {event}")
    header = body["headers"].get(str(entry["block"]))
    if header is None:
        raise AuditError(f"no header for block {entry['block']}")
    encoded = verify_receipt_proof(_hex(header["receiptsRoot"]), entry["tx_index"], entry["proof"])
    contract, abi = _compiled_events()[event]
    want = to_checksum_address(trusted.address(contract)) if trusted is not None else None
    others = []
    for log_address, topics, data in receipt_logs(encoded):
        args = decode_log(abi, topics, data)
        if args is None:
            continue
        if want is None or log_address == want:
            return _Proven(args, log_address, entry["block"], entry["tx_index"])
        others.append(log_address)
    where = f"block {entry['block']} receipt {entry['tx_index']}"
    if others:
        raise CardRejection("look_alike_contract", f"{where}: {event} was emitted by "
                            f"{', '.join(sorted(set(others)))}, not by the consortium's "
                            f"{contract} {want}")
    raise CardRejection(missing, f"{where} has no {event} log")


def _expect(what: str, actual: Any, expected: Any) -> None:
    if actual != expected:
        raise AuditError(f"{what}: proven {actual!r}, card says {expected!r}")


def _publication(body: dict[str, Any], trusted: Deployment | None) -> _Proven:
    initial, task = body["initial"], body["task"]
    proven = _proven_event(body, initial, "TaskPublished", trusted)
    args = proven.args
    _expect("task id", int(args["taskId"]), task["task_id"])
    _expect("spec digest", "0x" + bytes(args["specDigest"]).hex(),
            "0x" + keccak(task["spec_json"].encode()).hex())
    _expect("initial model digest", "0x" + bytes(args["initialModelDigest"]).hex(),
            "0x" + keccak(_hex(initial["payload"])).hex())
    return proven


def _check_publication(body: dict[str, Any], trusted: Deployment | None) -> str:
    proven = _publication(body, trusted)
    return (f"task {body['task']['task_id']} spec and initial model proven in block "
            f"{proven.block} (TaskRegistry {proven.address})")


def _proven_updates(body: dict[str, Any], trusted: Deployment | None) -> list[_Proven]:
    found = []
    for u in body["updates"]:
        proven = _proven_event(body, u, "UpdateSubmitted", trusted)
        args = proven.args
        _expect(f"update {u['update_id']} id", int(args["updateId"]), u["update_id"])
        _expect(f"update {u['update_id']} task", int(args["taskId"]), body["task"]["task_id"])
        _expect(f"update {u['update_id']} edge", to_checksum_address(args["edge"]), u["edge"])
        _expect(f"update {u['update_id']} digest", "0x" + bytes(args["digest"]).hex(), u["digest"])
        for key, arg in (("base_version", "baseVersion"), ("num_examples", "numExamples"),
                         ("epsilon_micro", "epsilonMicro")):
            _expect(f"update {u['update_id']} {key}", int(args[arg]), u[key])
        _expect(f"update {u['update_id']} payload digest",
                "0x" + keccak(_hex(u["payload"])).hex(), u["digest"])
        found.append(proven)
    return found


def _check_updates(body: dict[str, Any], trusted: Deployment | None) -> str:
    found = _proven_updates(body, trusted)
    return f"{len(found)} update receipts proven, payloads hash to their digests"


def _expect_version(what: str, args: dict[str, Any], body: dict[str, Any], v: dict) -> None:
    _expect(f"{what} task", int(args["taskId"]), body["task"]["task_id"])
    _expect(f"{what} version", int(args["version"]), v["version"])
    _expect(f"{what} digest", "0x" + bytes(args["digest"]).hex(), v["digest"])


def _final_commits(body: dict[str, Any], trusted: Deployment | None,
                   quorum: int) -> list[_Proven]:
    """Each version's finalization and the agreeing commits that reached the task's quorum."""
    found = []
    for v in body["versions"]:
        name = f"v{v['version']}"
        final = _proven_event(body, v.get("final"), "GlobalModelFinalized", trusted,
                              missing="not_final")
        _expect_version(f"{name} finalization", final.args, body, v)
        committers: dict[str, _Proven] = {}
        for entry in v.get("commits", []):
            commit = _proven_event(body, entry, "GlobalModelCommitted", trusted)
            _expect_version(f"{name} commit", commit.args, body, v)
            if (commit.block, commit.tx_index) > (final.block, final.tx_index):
                raise CardRejection("not_final", f"{name}: a commit in block {commit.block} "
                                    f"comes after the finalization in block {final.block}")
            committers.setdefault(to_checksum_address(commit.args["aggregator"]), commit)
        if to_checksum_address(final.args["aggregator"]) not in committers:
            raise CardRejection("not_final", f"{name}: the finalizing aggregator's commit is "
                                "not among the proven commits")
        if len(committers) < quorum:
            raise CardRejection("not_final", f"{name}: {len(committers)} distinct aggregator(s) "
                                f"committed {v['digest']}, the task's quorum is {quorum}")
        found += committers.values()
    return found


def _check_finality(body: dict[str, Any], trusted: Deployment | None) -> str:
    numbers = [v["version"] for v in body["versions"]]
    if numbers != list(range(1, body["model"]["version"] + 1)):
        raise AuditError(f"the card's versions {numbers} are not v1..v{body['model']['version']}")
    quorum = int(_publication(body, trusted).args["aggregatorQuorum"])
    commits = _final_commits(body, trusted, quorum)
    return (f"{len(body['versions'])} versions finalized by the ledger, each committed by at "
            f"least {quorum} aggregator(s) ({len(commits)} commit receipts proven)")


def _check_roles(body: dict[str, Any], trusted: Deployment | None) -> str:
    if trusted is None:
        return "not checked: no trusted deployment names the Consortium"
    quorum = int(_publication(body, trusted).args["aggregatorQuorum"])
    uses = [commit_use(c.args["aggregator"], c.block, c.tx_index,
                       f"the commit of v{c.args['version']} in block {c.block}")
            for c in _final_commits(body, trusted, quorum)]
    for u in _proven_updates(body, trusted):
        uses += update_uses(u.args["edge"], u.block, u.tx_index,
                            f"update {u.args['updateId']} in block {u.block}")
    return check_roles(body["headers"], body.get("role_receipts", {}),
                       trusted.address("Consortium"), trusted.deploy_block, uses)


def _update_of(entry: dict[str, Any], task_id: int) -> LedgerUpdate:
    return LedgerUpdate(entry["update_id"], task_id, entry["base_version"], entry["edge"],
                        _hex(entry["digest"]), entry["num_examples"], entry["epsilon_micro"],
                        _hex(entry["payload"]), entry["block"], _hex(entry["tx_hash"]))


def _check_recomputation(body: dict[str, Any]) -> str:
    spec = TaskSpec.from_json(body["task"]["spec_json"])
    by_id = {u["update_id"]: _update_of(u, body["task"]["task_id"]) for u in body["updates"]}
    payload, state, digest = _hex(body["initial"]["payload"]), None, body["initial"]["digest"]
    for v in sorted(body["versions"], key=lambda v: v["version"]):
        built = build_global_model(spec, payload, [by_id[i] for i in v["update_ids"]],
                                   rule_state=state)
        _expect(f"recomputed v{v['version']}", "0x" + built.digest.hex(), v["digest"])
        payload, state, digest = built.payload, built.rule_state, v["digest"]
    _expect("model digest", digest, body["model"]["digest"])
    return f"recomputed v1..v{body['model']['version']} bit for bit: {digest}"


_TrustedCheck = Callable[[dict[str, Any], "Deployment | None"], str]
_CHECKS: tuple[tuple[str, _TrustedCheck], ...] = (
    ("publication", _check_publication),
    ("updates", _check_updates),
    ("finality", _check_finality),
    ("signers", _check_roles),
    ("recomputation", lambda body, _: _check_recomputation(body)),
)


def check_card(card: dict[str, Any], *, anchor: Anchor | None = None,
               deployment: Deployment | None = None) -> CardVerdict:
    """Runs every check on a parsed card (see the module docstring); never touches the network.

    Args:
      card: the parsed card file (``{"card": body, "signature": ...}``).
      anchor: the chain the auditor trusts; None (or an empty anchor) checks integrity only.
      deployment: the consortium's contracts, from the auditor's own copy of its
        ``deployment.json``; None checks integrity only (events of any contract count).

    Raises:
      AuditError: if the file is not a provenance card of this format at all.

    Example:
      >>> check_card({"card": {"format": "other"}, "signature": {}})
      Traceback (most recent call last):
      fednode.errors.AuditError: not a fednode-provenance-card/2 file
    """
    body = card.get("card") if isinstance(card, dict) else None
    if not isinstance(body, dict) or body.get("format") != CARD_FORMAT or "signature" not in card:
        raise AuditError(f"not a {CARD_FORMAT} file")
    checks = [_run("signature", lambda _: _check_signature(card), body)]
    headers = _prove_headers(body, anchor)
    checks += headers[:1]
    checks += [_run(name, lambda b, c=check: c(b, deployment), body) for name, check in _CHECKS]
    checks += headers[1:]
    anchored = anchor is not None and anchor.given and deployment is not None
    return CardVerdict(card["signature"].get("signer", ""), body["model"]["digest"], tuple(checks),
                       anchored)


def _run(name: str, check: Callable[[dict[str, Any]], str], body: dict[str, Any]) -> CardCheck:
    try:
        return CardCheck(name, True, check(body))
    except CardRejection as exc:
        return CardCheck(name, False, str(exc), exc.reason)
    except (FednodeError, KeyError, TypeError, ValueError, IndexError) as exc:
        return CardCheck(name, False, f"{type(exc).__name__}: {exc}", name)
