"""Chain: one change of the consortium's roles, as the Consortium contract's events record it.

``RoleGranted`` / ``RoleRevoked`` (OpenZeppelin AccessControl) and ``EdgeRegistered`` /
``EdgeRemoved`` (the edge registry) are read back as :class:`RoleChange` values, in chain order,
by ``Web3Ledger.role_changes`` and ``InMemoryLedger.role_changes``. The auditor rebuilds from
them who held which role at any block (``fednode.auditor.roles``). Registration in the edge
registry is not an AccessControl role; it is recorded under the pseudo role id
:data:`REGISTERED_EDGE` so that one history answers both questions.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import keccak

from fednode.chain.constants import ROLE_NAMES

__all__ = ["REGISTERED_EDGE", "RoleChange", "role_name"]

REGISTERED_EDGE = keccak(b"fednode:registered-edge")
"""Pseudo role id of "registered in the Consortium's edge registry" (not an on-chain role)."""


@dataclass(frozen=True, order=True)
class RoleChange:
    """``account`` gained (``granted``) or lost ``role`` in ``block`` at transaction ``tx_index``.

    Ordered by position on the chain: block, then transaction index, then log index.
    """

    block: int
    tx_index: int
    log_index: int
    role: bytes
    account: str
    granted: bool


def role_name(role: bytes) -> str:
    """The Solidity name of a role id (or "registered edge", or its hex for unknown roles).

    Example:
      >>> from fednode.chain.constants import EDGE_ROLE
      >>> role_name(EDGE_ROLE), role_name(REGISTERED_EDGE), role_name(b"\\x01" * 2)
      ('EDGE_ROLE', 'registered edge', 'role 0x0101')
    """
    if role == REGISTERED_EDGE:
        return "registered edge"
    return ROLE_NAMES.get(bytes(role), f"role 0x{bytes(role).hex()}")
