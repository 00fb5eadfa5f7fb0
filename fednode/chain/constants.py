"""Chain: role ids and size limits shared by the contracts, InMemoryLedger and Web3Ledger.

The values mirror the Solidity constants (``Consortium.PUBLISHER_ROLE``,
``UpdateLedger.MAX_PAYLOAD_SIZE``); tests/contracts check that they agree.
"""

from __future__ import annotations

from eth_utils import keccak

from fednode.errors import FednodeValueError

__all__ = [
    "AGGREGATOR_ROLE",
    "AUDITOR_ROLE",
    "DEFAULT_ADMIN_ROLE",
    "DEFAULT_VOTE_QUORUM_PERCENT",
    "DEFAULT_VOTING_PERIOD",
    "EDGE_ROLE",
    "MAX_PAYLOAD_SIZE",
    "MAX_TX_SIZE",
    "MIN_VOTE_QUORUM_PERCENT",
    "PUBLISHER_ROLE",
    "ROLE_NAMES",
    "check_uint",
]

DEFAULT_ADMIN_ROLE = b"\x00" * 32
"""OpenZeppelin's admin role id: 32 zero bytes."""
PUBLISHER_ROLE = keccak(b"PUBLISHER_ROLE")
EDGE_ROLE = keccak(b"EDGE_ROLE")
AGGREGATOR_ROLE = keccak(b"AGGREGATOR_ROLE")
AUDITOR_ROLE = keccak(b"AUDITOR_ROLE")

ROLE_NAMES = {
    DEFAULT_ADMIN_ROLE: "DEFAULT_ADMIN_ROLE",
    PUBLISHER_ROLE: "PUBLISHER_ROLE",
    EDGE_ROLE: "EDGE_ROLE",
    AGGREGATOR_ROLE: "AGGREGATOR_ROLE",
    AUDITOR_ROLE: "AUDITOR_ROLE",
}
"""Role id -> Solidity constant name, for messages."""

DEFAULT_VOTE_QUORUM_PERCENT = 51
"""Share of the edge operators a proposal needs at deployment (``Consortium``)."""

MIN_VOTE_QUORUM_PERCENT = 51
"""Smallest quorum accepted: strictly above half of the edge operators (``Consortium``)."""

DEFAULT_VOTING_PERIOD = 7 * 24 * 3600
"""Seconds a proposal stays open for votes unless deployed otherwise (``Consortium``)."""

MAX_PAYLOAD_SIZE = 124 * 1024
"""Largest update, initial or global model payload in bytes (``UpdateLedger.MAX_PAYLOAD_SIZE``).

geth refuses transactions over 128 KiB; 4 KiB are left for the ABI encoding, the task spec
JSON and the transaction envelope.
"""

MAX_TX_SIZE = 128 * 1024
"""geth's limit on one signed transaction (``txMaxSize``)."""


def check_uint(name: str, value: int, bits: int) -> int:
    """Returns ``value`` if it fits a Solidity ``uint<bits>``, else raises FednodeValueError.

    Example:
      >>> check_uint("rounds", 3, 32)
      3
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise FednodeValueError(f"{name} must be an integer in [0, 2**{bits}), got {value!r}")
    return value
