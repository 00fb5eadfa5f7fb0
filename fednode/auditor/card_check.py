"""Auditor: checks a provenance card offline (``fednode audit check-card``), no network at all.

Checks, in order: the auditor's signature over the card body; every block header hashes to its
hash, links to its parent and carries a Clique seal by a listed signer; every publication,
update and commit receipt is proven against its block's ``receiptsRoot`` and holds the expected
event with the card's values; payloads hash to their digests; and the model recomputed with the
task's rule from the initial model and the updates equals every committed digest.

These checks prove the card is internally consistent, not that its chain is the consortium's:
anyone can seal a header chain with keys of their own. With an :class:`Anchor` (a trusted block
hash and/or the consortium genesis) the ``anchor`` check ties the headers to it
(``clique_anchor.py``) and a clean card is ``VERIFIED``; without one a clean card is only
``UNANCHORED`` (integrity only) and ``ok`` stays False.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

from fednode.aggregator.build import build_global_model
from fednode.auditor.card import CARD_FORMAT, card_message
from fednode.auditor.clique_anchor import Anchor, check_anchored_chain
from fednode.auditor.proofs import (
    clique_signer,
    decode_log,
    header_hash,
    receipt_logs,
    verify_receipt_proof,
)
from fednode.errors import AuditError, FednodeError
from fednode.types import LedgerUpdate, TaskSpec

__all__ = ["CARD_STATUSES", "CardCheck", "CardVerdict", "check_card"]

CARD_STATUSES = ("VERIFIED", "UNANCHORED", "REJECTED")
"""A card's outcome: every check passed against a trust anchor; every check passed but there
was no anchor (integrity only); some check failed."""


@dataclass(frozen=True)
class CardCheck:
    """One named check and its outcome."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class CardVerdict:
    """Every check of one card; ``ok`` only if all passed and the chain was anchored."""

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

    def to_dict(self) -> dict:
        return {"ok": self.ok, "status": self.status, "anchored": self.anchored,
                "signer": self.signer, "model_digest": self.model_digest,
                "checks": [asdict(c) for c in self.checks]}


def _hex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


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


def _proven_event(body: dict[str, Any], entry: dict[str, Any], event: str, contract: str) -> dict:
    header = body["headers"].get(str(entry["block"]))
    if header is None:
        raise AuditError(f"no header for block {entry['block']}")
    encoded = verify_receipt_proof(_hex(header["receiptsRoot"]), entry["tx_index"], entry["proof"])
    address = to_checksum_address(body["contracts"][contract])
    for log_address, topics, data in receipt_logs(encoded):
        args = decode_log(body["events"][event], topics, data) if log_address == address else None
        if args is not None:
            return args
    raise AuditError(f"block {entry['block']} receipt {entry['tx_index']} has no {event} log")


def _expect(what: str, actual: Any, expected: Any) -> None:
    if actual != expected:
        raise AuditError(f"{what}: proven {actual!r}, card says {expected!r}")


def _check_publication(body: dict[str, Any]) -> str:
    initial, task = body["initial"], body["task"]
    args = _proven_event(body, initial, "TaskPublished", "TaskRegistry")
    _expect("task id", int(args["taskId"]), task["task_id"])
    _expect("spec digest", "0x" + bytes(args["specDigest"]).hex(),
            "0x" + keccak(task["spec_json"].encode()).hex())
    _expect("initial model digest", "0x" + bytes(args["initialModelDigest"]).hex(),
            "0x" + keccak(_hex(initial["payload"])).hex())
    return f"task {task['task_id']} spec and initial model proven in block {initial['block']}"


def _check_updates(body: dict[str, Any]) -> str:
    for u in body["updates"]:
        args = _proven_event(body, u, "UpdateSubmitted", "UpdateLedger")
        _expect(f"update {u['update_id']} id", int(args["updateId"]), u["update_id"])
        _expect(f"update {u['update_id']} task", int(args["taskId"]), body["task"]["task_id"])
        _expect(f"update {u['update_id']} edge", to_checksum_address(args["edge"]), u["edge"])
        _expect(f"update {u['update_id']} digest", "0x" + bytes(args["digest"]).hex(), u["digest"])
        for key, arg in (("base_version", "baseVersion"), ("num_examples", "numExamples"),
                         ("epsilon_micro", "epsilonMicro")):
            _expect(f"update {u['update_id']} {key}", int(args[arg]), u[key])
        _expect(f"update {u['update_id']} payload digest",
                "0x" + keccak(_hex(u["payload"])).hex(), u["digest"])
    return f"{len(body['updates'])} update receipts proven, payloads hash to their digests"


def _check_versions(body: dict[str, Any]) -> str:
    for v in body["versions"]:
        args = _proven_event(body, v, "GlobalModelCommitted", "UpdateLedger")
        _expect(f"v{v['version']} task", int(args["taskId"]), body["task"]["task_id"])
        _expect(f"v{v['version']} version", int(args["version"]), v["version"])
        _expect(f"v{v['version']} digest", "0x" + bytes(args["digest"]).hex(), v["digest"])
    return f"{len(body['versions'])} commit receipts proven"


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


_CHECKS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("headers", _check_headers),
    ("publication", _check_publication),
    ("updates", _check_updates),
    ("commits", _check_versions),
    ("recomputation", _check_recomputation),
)


def check_card(card: dict[str, Any], *, anchor: Anchor | None = None) -> CardVerdict:
    """Runs every check on a parsed card (see the module docstring); never touches the network.

    Args:
      card: the parsed card file (``{"card": body, "signature": ...}``).
      anchor: what the auditor trusts; None (or an empty anchor) checks integrity only.

    Raises:
      AuditError: if the file is not a provenance card at all.

    Example:
      >>> check_card({"card": {"format": "other"}, "signature": {}})
      Traceback (most recent call last):
      fednode.errors.AuditError: not a fednode-provenance-card/1 file
    """
    body = card.get("card") if isinstance(card, dict) else None
    if not isinstance(body, dict) or body.get("format") != CARD_FORMAT or "signature" not in card:
        raise AuditError(f"not a {CARD_FORMAT} file")
    checks = [_run("signature", lambda _: _check_signature(card), body)]
    checks += [_run(name, check, body) for name, check in _CHECKS]
    anchored = anchor is not None and anchor.given
    if anchored:
        checks.append(_run("anchor", lambda b: check_anchored_chain(b["headers"], anchor), body))
    return CardVerdict(card["signature"].get("signer", ""), body["model"]["digest"], tuple(checks),
                       anchored)


def _run(name: str, check: Callable[[dict[str, Any]], str], body: dict[str, Any]) -> CardCheck:
    try:
        return CardCheck(name, True, check(body))
    except (FednodeError, KeyError, TypeError, ValueError, IndexError) as exc:
        return CardCheck(name, False, f"{type(exc).__name__}: {exc}")
