"""Auditor: the genesis block of a consortium, recomputed from its genesis.json (pure, offline).

``fednode audit check-card --genesis genesis.json`` anchors a provenance card's header chain
to the consortium's own genesis: the block-0 header is rebuilt as geth 1.13 builds it
(``core.Genesis.ToBlock``: the state root of the ``alloc`` accounts, empty transaction and
receipt tries, London's initial base fee), so its hash is the chain's identity, and the Clique
signer set comes from its ``extraData`` (see ``fednode.network.genesis``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rlp
from eth_utils import keccak, to_checksum_address
from trie import HexaryTrie

from fednode.auditor.proofs import header_hash
from fednode.errors import AuditError, FednodeValueError
from fednode.network.genesis import DEFAULT_EPOCH, parse_clique_signers

__all__ = ["GenesisAnchor", "genesis_anchor", "genesis_header"]

EMPTY_ROOT = HexaryTrie({}).root_hash
EMPTY_UNCLES = keccak(rlp.encode([]))
INITIAL_BASE_FEE = 1_000_000_000
GENESIS_GAS_LIMIT = 4_712_388
GENESIS_DIFFICULTY = 131_072


@dataclass(frozen=True)
class GenesisAnchor:
    """What a genesis file fixes: block 0's hash, the initial Clique signers and the epoch."""

    block_hash: bytes
    signers: tuple[str, ...]
    epoch: int


def _int(value: Any, default: int = 0) -> int:
    """geth's HexOrDecimal: 0x-hex or decimal strings, or JSON numbers."""
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    raise FednodeValueError(f"not a number: {value!r}")


def _bytes(value: str | None, size: int | None = None) -> bytes:
    raw = bytes.fromhex((value or "").removeprefix("0x"))
    if size is not None and len(raw) > size:
        raise FednodeValueError(f"0x{raw.hex()} is longer than {size} bytes")
    return raw.rjust(size, b"\0") if size is not None else raw


def _storage_root(storage: Mapping[str, str]) -> bytes:
    trie = HexaryTrie({})
    for slot, value in storage.items():
        trimmed = _bytes(value, 32).lstrip(b"\0")
        if trimmed:
            trie[keccak(_bytes(slot, 32))] = rlp.encode(trimmed)
    return trie.root_hash


def _state_root(alloc: Mapping[str, Mapping[str, Any]]) -> bytes:
    trie = HexaryTrie({})
    for address, account in alloc.items():
        fields = [_int(account.get("nonce")), _int(account.get("balance")),
                  _storage_root(account.get("storage") or {}),
                  keccak(_bytes(account.get("code")))]
        trie[keccak(_bytes(address if address.startswith("0x") else "0x" + address, 20))] = (
            rlp.encode(fields))
    return trie.root_hash


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def genesis_header(genesis: Mapping[str, Any]) -> dict[str, str]:
    """Block 0 as raw JSON-RPC header fields (hex strings), with its recomputed ``hash``.

    Raises:
      AuditError: a genesis that schedules Shanghai or Cancun (not a geth 1.13 Clique chain)
        or has malformed fields.

    Example:
      >>> from fednode.network.genesis import build_clique_genesis
      >>> h = genesis_header(build_clique_genesis(["0x" + "11" * 20], chain_id=1337))
      >>> h["number"], h["baseFeePerGas"], len(h["hash"])
      ('0x0', '0x3b9aca00', 66)
    """
    config = genesis.get("config") or {}
    if any(key in config for key in ("shanghaiTime", "cancunTime", "terminalTotalDifficulty")):
        raise AuditError("the genesis schedules post-merge forks; only pre-merge Clique "
                         "chains (geth 1.13) can be anchored")
    try:
        header = _header_fields(genesis, config)
    except (FednodeValueError, ValueError, TypeError, AttributeError) as exc:
        raise AuditError(f"malformed genesis: {exc}") from exc
    header["hash"] = _hex(header_hash(header))
    return header


def _header_fields(genesis: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, str]:
    mix = _bytes(genesis.get("mixHash"), 32)
    difficulty = genesis.get("difficulty")
    if difficulty is None and mix == bytes(32):
        difficulty = GENESIS_DIFFICULTY
    header = {
        "parentHash": _hex(_bytes(genesis.get("parentHash"), 32)),
        "sha3Uncles": _hex(EMPTY_UNCLES),
        "miner": _hex(_bytes(genesis.get("coinbase"), 20)),
        "stateRoot": _hex(_state_root(genesis.get("alloc") or {})),
        "transactionsRoot": _hex(EMPTY_ROOT), "receiptsRoot": _hex(EMPTY_ROOT),
        "logsBloom": _hex(bytes(256)),
        "difficulty": hex(_int(difficulty)),
        "number": hex(_int(genesis.get("number"))),
        "gasLimit": hex(_int(genesis.get("gasLimit")) or GENESIS_GAS_LIMIT),
        "gasUsed": hex(_int(genesis.get("gasUsed"))),
        "timestamp": hex(_int(genesis.get("timestamp"))),
        "extraData": _hex(_bytes(genesis.get("extraData"))),
        "mixHash": _hex(mix),
        "nonce": _hex(_int(genesis.get("nonce")).to_bytes(8, "big")),
    }
    london = config.get("londonBlock")
    if london is not None and _int(london) == 0:
        header["baseFeePerGas"] = hex(_int(genesis.get("baseFeePerGas"), INITIAL_BASE_FEE))
    return header


def genesis_anchor(genesis: Mapping[str, Any]) -> GenesisAnchor:
    """The anchor a genesis file gives: block 0's hash, its Clique signers and epoch.

    Raises:
      AuditError: not a Clique genesis, or malformed.

    Example:
      >>> from fednode.network.genesis import build_clique_genesis
      >>> a = genesis_anchor(build_clique_genesis(["0x" + "11" * 20], chain_id=1337, epoch=10))
      >>> a.signers, a.epoch, len(a.block_hash)
      (('0x1111111111111111111111111111111111111111',), 10, 32)
    """
    clique = (genesis.get("config") or {}).get("clique")
    if not isinstance(clique, Mapping):
        raise AuditError("the genesis has no config.clique section: not a Clique chain")
    header = genesis_header(genesis)
    try:
        signers = tuple(to_checksum_address(s) for s in parse_clique_signers(header["extraData"]))
    except FednodeValueError as exc:
        raise AuditError(f"genesis extraData: {exc}") from exc
    if not signers:
        raise AuditError("the genesis extraData lists no Clique signer")
    epoch = _int(clique.get("epoch"), DEFAULT_EPOCH) or DEFAULT_EPOCH
    return GenesisAnchor(_bytes(header["hash"]), signers, epoch)
