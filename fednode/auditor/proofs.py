"""Auditor: pure Ethereum proof helpers, block header hashes, Clique seals, receipts-trie proofs.

Everything here works on raw JSON-RPC values (hex strings) and bytes, with no network: it is
what ``fednode audit check-card`` runs offline. Receipts are encoded as in the yellow paper
(EIP-2718: ``type || rlp(receipt)`` for typed transactions) and keyed by ``rlp(index)`` in a
Merkle-Patricia trie whose root is the header's ``receiptsRoot``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import rlp
from eth_abi import decode as abi_decode
from eth_keys import keys
from eth_utils import event_abi_to_log_topic, keccak, to_checksum_address
from trie import HexaryTrie

from fednode.errors import AuditError

__all__ = [
    "bloom_may_contain",
    "clique_signer",
    "decode_log",
    "encode_receipt",
    "header_hash",
    "prove_receipt",
    "receipt_logs",
    "receipts_root",
    "verify_receipt_proof",
]

_HEADER_FIELDS = (
    "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot",
    "logsBloom", "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData",
    "mixHash", "nonce",
)
_OPTIONAL_FIELDS = (
    "baseFeePerGas", "withdrawalsRoot", "blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot",
)
_INT_FIELDS = {"difficulty", "number", "gasLimit", "gasUsed", "timestamp", "baseFeePerGas",
               "blobGasUsed", "excessBlobGas"}
_SEAL_SIZE = 65


def _hex_bytes(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def _field(header: Mapping[str, Any], name: str) -> int | bytes:
    value = header[name]
    return int(value, 16) if name in _INT_FIELDS else _hex_bytes(value)


def _header_fields(header: Mapping[str, Any]) -> list[int | bytes]:
    fields = [_field(header, name) for name in _HEADER_FIELDS]
    fields += [_field(header, name) for name in _OPTIONAL_FIELDS if header.get(name) is not None]
    return fields


def header_hash(header: Mapping[str, Any]) -> bytes:
    """keccak-256 of the RLP of a raw JSON header: the block hash, recomputed.

    Example:
      >>> header_hash.__name__
      'header_hash'
    """
    return keccak(rlp.encode(_header_fields(header)))


def clique_signer(header: Mapping[str, Any]) -> str:
    """The address whose seal (last 65 bytes of ``extraData``) signs a Clique header.

    Raises:
      AuditError: if ``extraData`` is too short to hold a seal or the signature is invalid.
    """
    fields = _header_fields(header)
    extra = fields[12]
    if not isinstance(extra, bytes) or len(extra) < _SEAL_SIZE:
        raise AuditError(f"block {header.get('number')}: extraData holds no Clique seal")
    fields[12] = extra[:-_SEAL_SIZE]
    try:
        signature = keys.Signature(signature_bytes=extra[-_SEAL_SIZE:])
        public = signature.recover_public_key_from_msg_hash(keccak(rlp.encode(fields)))
    except Exception as exc:  # eth_keys raises several types for a bad signature
        raise AuditError(f"block {header.get('number')}: bad Clique seal: {exc}") from exc
    return public.to_checksum_address()


def encode_receipt(receipt: Mapping[str, Any]) -> bytes:
    """The consensus encoding of a raw JSON receipt (what the receipts trie stores)."""
    logs = [
        [_hex_bytes(log["address"]), [_hex_bytes(t) for t in log["topics"]],
         _hex_bytes(log["data"])]
        for log in receipt["logs"]
    ]
    status = int(receipt.get("status", "0x1"), 16)
    body = rlp.encode([status, int(receipt["cumulativeGasUsed"], 16),
                       _hex_bytes(receipt["logsBloom"]), logs])
    kind = int(receipt.get("type", "0x0"), 16)
    return body if kind == 0 else bytes([kind]) + body


def prove_receipt(receipts: Sequence[Mapping[str, Any]], index: int) -> tuple[bytes, list[str]]:
    """Builds the receipts trie of a block; returns its root and the proof of receipt ``index``.

    The proof is the list of RLP-encoded trie nodes from the root to the receipt, as hex.
    """
    trie = HexaryTrie({})
    for position, receipt in enumerate(receipts):
        trie[rlp.encode(position)] = encode_receipt(receipt)
    proof = trie.get_proof(rlp.encode(index))
    return trie.root_hash, ["0x" + rlp.encode(node).hex() for node in proof]


def receipts_root(encoded: Sequence[bytes]) -> bytes:
    """The root of the receipts trie holding ``encoded`` (a block's complete receipts, in order).

    Example:
      >>> receipts_root([]).hex()[:16]
      '56e81f171bcc55a6'
    """
    trie = HexaryTrie({})
    for position, receipt in enumerate(encoded):
        trie[rlp.encode(position)] = receipt
    return trie.root_hash


def bloom_may_contain(bloom: bytes, item: bytes) -> bool:
    """Whether a 2048-bit log bloom may hold ``item`` (a log address or topic), as geth's bloom9.

    False means the block has no log with that address or topic; True may be a false positive.

    Example:
      >>> bloom_may_contain(bytes(256), b"\\x01" * 20)
      False
      >>> bloom_may_contain(b"\\xff" * 256, b"\\x01" * 20)
      True
    """
    if len(bloom) != 256:
        raise AuditError(f"a logs bloom has 256 bytes, got {len(bloom)}")
    digest = keccak(item)
    for i in (0, 2, 4):
        bit = ((digest[i] << 8) | digest[i + 1]) & 2047
        if not bloom[255 - bit // 8] & (1 << (bit % 8)):
            return False
    return True


def verify_receipt_proof(root: bytes, index: int, proof: Sequence[str]) -> bytes:
    """Checks a receipts-trie proof against ``root``; returns the proven receipt encoding.

    Raises:
      AuditError: if the proof does not lead from ``root`` to a receipt at ``index``.
    """
    nodes = tuple(rlp.decode(_hex_bytes(node)) for node in proof)
    try:
        value = HexaryTrie.get_from_proof(root, rlp.encode(index), nodes)
    except Exception as exc:  # trie raises BadTrieProof / KeyError variants
        raise AuditError(f"receipt {index}: proof does not match the receipts root: {exc}") from exc
    if not value:
        raise AuditError(f"receipt {index}: proof shows no receipt at this index")
    return value


def receipt_logs(encoded: bytes) -> list[tuple[str, list[bytes], bytes]]:
    """The logs ``(address, topics, data)`` of a consensus-encoded receipt."""
    body = encoded if encoded[0] >= 0xC0 else encoded[1:]
    status, _, _, logs = rlp.decode(body)
    if not int.from_bytes(status, "big") == 1:
        raise AuditError("the proven receipt is of a failed transaction")
    return [(to_checksum_address(a), list(topics), data) for a, topics, data in logs]


def decode_log(event_abi: Mapping[str, Any], topics: Sequence[bytes], data: bytes) -> dict | None:
    """Decodes a log with its event ABI; None when its first topic is another event."""
    if not topics or topics[0] != event_abi_to_log_topic(dict(event_abi)):
        return None
    indexed = [i for i in event_abi["inputs"] if i["indexed"]]
    plain = [i for i in event_abi["inputs"] if not i["indexed"]]
    args = {i["name"]: abi_decode([i["type"]], t)[0]
            for i, t in zip(indexed, topics[1:], strict=True)}
    args.update(zip([i["name"] for i in plain], abi_decode([i["type"] for i in plain], data),
                    strict=True))
    return args
