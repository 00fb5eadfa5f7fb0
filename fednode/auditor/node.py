"""Auditor: block-level reads the Ledger protocol does not cover, over the ledger's JSON-RPC node.

Clique sealers (``clique_getSigner``), raw block headers and raw receipts (for Merkle proofs of
receipts), gas per transaction. This is the auditor's only I/O besides the ``Ledger``; it needs
a ledger with a ``w3`` attribute (``Web3Ledger``) and answers "unknown" for other ledgers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from eth_utils import to_checksum_address

from fednode.errors import ChainError

__all__ = ["NodeReader", "node_reader"]


class NodeReader:
    """Raw JSON-RPC reads (no middleware rewriting), cached per block; see the module docstring."""

    def __init__(self, w3: Any) -> None:
        self._w3 = w3
        self.sealer_of = lru_cache(maxsize=4096)(self._sealer_of)
        self.header = lru_cache(maxsize=4096)(self._header)
        self.receipts = lru_cache(maxsize=1024)(self._receipts)

    def _request(self, method: str, params: list[Any]) -> Any:
        answer = self._w3.provider.make_request(method, params)
        if "error" in answer:
            raise ChainError(f"{method}{params}: {answer['error']}")
        return answer.get("result")

    def _sealer_of(self, number: int) -> str:
        """The validator that sealed block ``number`` ("" when the node is not Clique)."""
        try:
            return to_checksum_address(self._request("clique_getSigner", [hex(number)]))
        except (ChainError, TypeError, ValueError):
            return ""

    def _header(self, number: int) -> dict[str, Any]:
        """The raw JSON block (header fields as hex strings, transaction hashes only)."""
        block = self._request("eth_getBlockByNumber", [hex(number), False])
        if block is None:
            raise ChainError(f"block {number} not found")
        return dict(block)

    def _receipts(self, number: int) -> tuple[dict[str, Any], ...]:
        """Raw JSON receipts of every transaction of block ``number``, in block order."""
        return tuple(dict(r) for r in self._request("eth_getBlockReceipts", [hex(number)]))

    def header_latest(self) -> dict[str, Any]:
        """The raw JSON of the head block (not cached)."""
        return dict(self._request("eth_getBlockByNumber", ["latest", False]))

    def chain_id(self) -> int:
        return int(self._request("eth_chainId", []), 16)

    def signers(self) -> list[str]:
        """The current Clique signer set (empty when the node is not Clique)."""
        try:
            return [to_checksum_address(a) for a in self._request("clique_getSigners", ["latest"])]
        except (ChainError, TypeError):
            return []

    def receipt_of(self, number: int, tx_hash: bytes) -> dict[str, Any]:
        """The raw receipt of ``tx_hash`` in block ``number``."""
        wanted = "0x" + bytes(tx_hash).hex()
        for receipt in self.receipts(number):
            if receipt["transactionHash"].lower() == wanted:
                return receipt
        raise ChainError(f"{wanted} is not in block {number}")

    def gas_of(self, number: int, tx_hash: bytes) -> int:
        """Gas used by one transaction."""
        return int(self.receipt_of(number, tx_hash)["gasUsed"], 16)


def node_reader(ledger: Any) -> NodeReader | None:
    """A NodeReader over the ledger's node, or None when the ledger has no ``w3``."""
    w3 = getattr(ledger, "w3", None)
    return NodeReader(w3) if w3 is not None else None
