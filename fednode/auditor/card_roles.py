"""Auditor: proves offline who held which role when a card's updates and commits ran (pure).

A provenance card must show that every update came from a registered edge holding
``EDGE_ROLE`` and every commit from an ``AGGREGATOR_ROLE`` holder, at the transaction that
carried it, by the role events of the consortium's own Consortium contract. Role events prove
a grant; only their absence proves there was no revocation. The header chain gives that
absence: every header from the Consortium's deployment block to the last proven transaction is
in the card (and anchored), and a block whose ``logsBloom`` cannot hold a role event of the
Consortium for an (role, account) pair has none. For every block whose bloom may hold one (a
real change or a false positive) the card carries the block's complete receipts, which must
rebuild the header's ``receiptsRoot``; their Consortium logs are the block's role changes.

Event topics come from the ABI compiled into fednode (``fednode/chain/abi``), never from a
card. :func:`role_blocks` is shared by the card builder and the checker so both pick the same
blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_utils import event_abi_to_log_topic, to_checksum_address

from fednode.auditor.proofs import bloom_may_contain, decode_log, receipt_logs, receipts_root
from fednode.auditor.roles import role_history
from fednode.chain.compile import load_artifact
from fednode.chain.constants import AGGREGATOR_ROLE, EDGE_ROLE
from fednode.chain.roles import REGISTERED_EDGE, RoleChange, role_name
from fednode.errors import AuditError

__all__ = [
    "CardRejection",
    "RoleUse",
    "check_roles",
    "commit_use",
    "role_blocks",
    "role_changes_in",
    "update_uses",
]

_ROLE_EVENTS = (("RoleGranted", True), ("RoleRevoked", False))
_EDGE_EVENTS = (("EdgeRegistered", True), ("EdgeRemoved", False))


class CardRejection(AuditError):
    """A card check failed for a named reason (``look_alike_contract``, ``not_final``, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class RoleUse:
    """``account`` must hold ``role`` when transaction ``tx_index`` of ``block`` ran."""

    role: bytes
    account: str
    block: int
    tx_index: int
    what: str


@cache
def _consortium_events() -> dict[str, dict[str, Any]]:
    abi = load_artifact("Consortium")["abi"]
    wanted = {name for name, _ in _ROLE_EVENTS + _EDGE_EVENTS}
    return {e["name"]: e for e in abi if e.get("type") == "event" and e["name"] in wanted}


def _topic(name: str) -> bytes:
    return event_abi_to_log_topic(_consortium_events()[name])


def _address_topic(account: str) -> bytes:
    return bytes(12) + bytes.fromhex(to_checksum_address(account)[2:])


def _may_change(bloom: bytes, consortium: bytes, role: bytes, account: str) -> bool:
    """Whether a block with ``bloom`` may hold a Consortium log changing ``role`` of ``account``."""
    if not bloom_may_contain(bloom, consortium):
        return False
    if not bloom_may_contain(bloom, _address_topic(account)):
        return False
    if role == REGISTERED_EDGE:
        events = _EDGE_EVENTS
    elif bloom_may_contain(bloom, role):
        events = _ROLE_EVENTS
    else:
        return False
    return any(bloom_may_contain(bloom, _topic(name)) for name, _ in events)


def role_blocks(headers: Mapping[str, Mapping[str, Any]], consortium: str,
                pairs: Iterable[tuple[bytes, str]], first: int, last: int) -> list[int]:
    """Blocks ``first..last`` whose bloom may hold a role change of one of ``pairs``.

    Raises:
      CardRejection: ``roles_unproven`` when a header of that range is missing.

    Example:
      >>> empty = {str(n): {"logsBloom": "0x" + "00" * 256} for n in range(3)}
      >>> role_blocks(empty, "0x" + "11" * 20, [(b"r" * 32, "0x" + "22" * 20)], 0, 2)
      []
    """
    address = bytes.fromhex(to_checksum_address(consortium)[2:])
    wanted = sorted(set(pairs))
    hits = []
    for number in range(first, last + 1):
        header = headers.get(str(number))
        if header is None:
            raise CardRejection("roles_unproven", f"the card lacks header {number}: roles need "
                                f"every header from the Consortium's deployment (block "
                                f"{first}) to the last proven transaction (block {last})")
        bloom = bytes.fromhex(header["logsBloom"].removeprefix("0x"))
        if any(_may_change(bloom, address, role, account) for role, account in wanted):
            hits.append(number)
    return hits


def role_changes_in(block: int, encoded: Sequence[bytes], consortium: str) -> list[RoleChange]:
    """The role changes a block's Consortium logs record, in order (receipts already proven)."""
    address = to_checksum_address(consortium)
    events = _consortium_events()
    kinds = [(name, granted, name in dict(_EDGE_EVENTS)) for name, granted in
             _ROLE_EVENTS + _EDGE_EVENTS]
    changes = []
    position = 0
    for tx_index, receipt in enumerate(encoded):
        for log_address, topics, data in _logs(receipt):
            position += 1
            if log_address != address:
                continue
            for name, granted, edge in kinds:
                args = decode_log(events[name], topics, data)
                if args is None:
                    continue
                role = REGISTERED_EDGE if edge else bytes(args["role"])
                account = args["edge"] if edge else args["account"]
                changes.append(RoleChange(block, tx_index, position - 1, role,
                                          to_checksum_address(account), granted))
    return changes


def _logs(encoded: bytes) -> list[tuple[str, list[bytes], bytes]]:
    try:
        return receipt_logs(encoded)
    except AuditError:
        return []  # a failed transaction emits no log


def _proven_changes(headers: Mapping[str, Mapping[str, Any]],
                    receipts: Mapping[str, Sequence[str]], consortium: str,
                    blocks: Sequence[int]) -> list[RoleChange]:
    changes = []
    for number in blocks:
        listed = receipts.get(str(number))
        if listed is None:
            raise CardRejection("roles_unproven", f"block {number} may hold a role change of "
                                "an account this card relies on, and the card lacks its receipts")
        encoded = [bytes.fromhex(r.removeprefix("0x")) for r in listed]
        root = headers[str(number)]["receiptsRoot"]
        if "0x" + receipts_root(encoded).hex() != root:
            raise CardRejection("roles_unproven", f"the receipts carried for block {number} do "
                                "not rebuild its receiptsRoot (incomplete or altered)")
        changes += role_changes_in(number, encoded, consortium)
    return changes


def check_roles(headers: Mapping[str, Mapping[str, Any]], receipts: Mapping[str, Sequence[str]],
                consortium: str, first: int, uses: Sequence[RoleUse]) -> str:
    """Checks every :class:`RoleUse` against the Consortium's proven role history.

    Args:
      headers: the card's (anchored) headers by block number.
      receipts: complete receipts (hex) of the blocks whose bloom may hold a role change.
      consortium: the trusted Consortium address.
      first: the Consortium's deployment block (from the trusted deployment).
      uses: who must hold which role where.

    Raises:
      CardRejection: ``unknown_signer`` (a sender did not hold its role) or ``roles_unproven``.
    """
    if not uses:
        return "no signer to check"
    last = max(u.block for u in uses)
    if min(u.block for u in uses) < first:
        raise CardRejection("unknown_signer", f"a transaction in block "
                            f"{min(u.block for u in uses)} predates the Consortium (block {first})")
    blocks = role_blocks(headers, consortium, {(u.role, u.account) for u in uses}, first, last)
    history = role_history(_proven_changes(headers, receipts, consortium, blocks))
    for use in uses:
        if not history.held(use.role, use.account, use.block, tx_index=use.tx_index):
            raise CardRejection("unknown_signer", f"{use.what} was sent by {use.account}, who "
                                f"did not hold {role_name(use.role)} then "
                                f"({history.timeline(use.role, use.account)})")
    accounts = {u.account for u in uses}
    return (f"{len(accounts)} signers held their roles at each of {len(uses)} uses (blocks "
            f"{first}..{last}; {len(blocks)} blocks' receipts checked for role changes)")


def commit_use(aggregator: str, block: int, tx_index: int, what: str) -> RoleUse:
    """The role a commit's aggregator must hold."""
    return RoleUse(AGGREGATOR_ROLE, to_checksum_address(aggregator), block, tx_index, what)


def update_uses(edge: str, block: int, tx_index: int, what: str) -> list[RoleUse]:
    """The roles an update's edge must hold: registered in the edge registry and EDGE_ROLE."""
    account = to_checksum_address(edge)
    return [RoleUse(EDGE_ROLE, account, block, tx_index, what),
            RoleUse(REGISTERED_EDGE, account, block, tx_index, what)]
