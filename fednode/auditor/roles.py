"""Auditor: who held which role at which block, rebuilt once from the role events (pure).

``verify_task`` reads every ``RoleGranted`` / ``RoleRevoked`` / ``EdgeRegistered`` /
``EdgeRemoved`` of the Consortium once (``role_changes()`` on the ledger) and answers each
"did the sender of this transaction hold role R when block B included it?" from the
:class:`RoleHistory`, without another read. An edge revoked later still held its role when its
old updates were accepted; an account granted later did not hold it before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from eth_utils import to_checksum_address

from fednode.chain.roles import RoleChange, role_name
from fednode.errors import FednodeValueError

__all__ = ["RoleHistory", "role_history"]

_Key = tuple[bytes, str]


@dataclass(frozen=True)
class RoleHistory:
    """Role changes grouped per (role, account), each list in chain order.

    Build it with :func:`role_history`; ``changes`` keeps every change in chain order.
    """

    changes: tuple[RoleChange, ...]
    _by_key: dict[_Key, tuple[RoleChange, ...]] = field(repr=False, compare=False)

    def held(self, role: bytes, account: str, block: int, *, tx_index: int | None = None) -> bool:
        """Whether ``account`` held ``role`` when transaction ``tx_index`` of ``block`` ran.

        With ``tx_index`` None: at the end of ``block`` (what ``eth_call`` at ``block`` says).

        Example:
          >>> h = role_history([RoleChange(5, 0, 0, b"r", "0x" + "11" * 20, True)])
          >>> h.held(b"r", "0x" + "11" * 20, 4), h.held(b"r", "0x" + "11" * 20, 5)
          (False, True)
          >>> h.held(b"r", "0x" + "11" * 20, 5, tx_index=0)
          False
        """
        changes = self._for(role, account)
        if tx_index is None:
            before = [c for c in changes if c.block <= block]
        else:
            before = [c for c in changes if (c.block, c.tx_index) < (block, tx_index)]
        return bool(before) and before[-1].granted

    def changed_in(self, role: bytes, account: str, block: int) -> bool:
        """Whether ``account``'s ``role`` changed inside ``block`` (then the position matters).

        Example:
          >>> h = role_history([RoleChange(5, 1, 0, b"r", "0x" + "11" * 20, True)])
          >>> h.changed_in(b"r", "0x" + "11" * 20, 5), h.changed_in(b"r", "0x" + "11" * 20, 6)
          (True, False)
        """
        return any(c.block == block for c in self._for(role, account))

    def timeline(self, role: bytes, account: str) -> str:
        """Human summary of ``account``'s ``role``, e.g. "EDGE_ROLE granted at block 9".

        Example:
          >>> from fednode.chain.constants import EDGE_ROLE
          >>> a = "0x" + "11" * 20
          >>> h = role_history([RoleChange(3, 0, 0, EDGE_ROLE, a, True),
          ...                   RoleChange(8, 0, 0, EDGE_ROLE, a, False)])
          >>> h.timeline(EDGE_ROLE, a)
          'EDGE_ROLE granted at block 3, revoked at block 8'
          >>> h.timeline(EDGE_ROLE, "0x" + "22" * 20)
          'EDGE_ROLE never held'
        """
        changes = self._for(role, account)
        if not changes:
            return f"{role_name(role)} never held"
        steps = [f"{'granted' if c.granted else 'revoked'} at block {c.block}" for c in changes]
        return f"{role_name(role)} " + ", ".join(steps)

    def _for(self, role: bytes, account: str) -> tuple[RoleChange, ...]:
        return self._by_key.get((bytes(role), _checksum(account)), ())


def role_history(changes: Iterable[RoleChange]) -> RoleHistory:
    """Sorts and indexes role changes (as read from the ledger's ``role_changes()``).

    Raises:
      FednodeValueError: a change with a negative block or position, or a non-bool flag.

    Example:
      >>> a = "0x" + "11" * 20
      >>> h = role_history([RoleChange(9, 0, 0, b"r", a, False),
      ...                   RoleChange(2, 0, 0, b"r", a, True)])
      >>> [c.block for c in h.changes], h.held(b"r", a, 5), h.held(b"r", a, 9)
      ([2, 9], True, False)
    """
    ordered = sorted(changes)
    by_key: defaultdict[_Key, list[RoleChange]] = defaultdict(list)
    for change in ordered:
        if min(change.block, change.tx_index, change.log_index) < 0:
            raise FednodeValueError(f"role change at a negative position: {change}")
        if not isinstance(change.granted, bool):
            raise FednodeValueError(f"role change flag must be a bool: {change}")
        by_key[bytes(change.role), _checksum(change.account)].append(change)
    return RoleHistory(tuple(ordered), {k: tuple(v) for k, v in by_key.items()})


def _checksum(account: str) -> str:
    try:
        return to_checksum_address(account)
    except (TypeError, ValueError) as exc:
        raise FednodeValueError(f"not an address: {account!r}") from exc
