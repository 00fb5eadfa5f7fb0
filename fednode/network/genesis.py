"""Chain: builds the Clique genesis of a local consortium chain (pure, no I/O).

Clique in geth 1.13 stops at London: every fork through London (and the Arrow/Gray Glacier
difficulty-bomb delays) is active from block 0, and Shanghai or Cancun are never scheduled,
because geth 1.13 refuses to seal Clique blocks past the merge forks. The block gas limit is set
explicitly and high, so that several 128 KiB calldata transactions fit in one block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fednode.errors import FednodeValueError

__all__ = [
    "CLIQUE_EXTRA_SEAL",
    "CLIQUE_EXTRA_VANITY",
    "DEFAULT_BALANCE_WEI",
    "DEFAULT_EPOCH",
    "DEFAULT_GAS_LIMIT",
    "build_clique_genesis",
    "clique_extra_data",
    "parse_clique_signers",
]

CLIQUE_EXTRA_VANITY = 32
"""Bytes of free vanity data that open a Clique header's extraData."""

CLIQUE_EXTRA_SEAL = 65
"""Bytes of the signer's secp256k1 seal that close a Clique header's extraData."""

DEFAULT_EPOCH = 30_000
"""Blocks between Clique checkpoints (votes reset, signer list written into extraData)."""

DEFAULT_GAS_LIMIT = 60_000_000
"""Block gas limit: about 3.7 MB of non-zero calldata, so ~28 payloads of 128 KiB."""

DEFAULT_BALANCE_WEI = 10**24
"""Prefunded balance of every allocated account (one million ether)."""

_PRE_MERGE_FORKS = (
    "homesteadBlock",
    "eip150Block",
    "eip155Block",
    "eip158Block",
    "byzantiumBlock",
    "constantinopleBlock",
    "petersburgBlock",
    "istanbulBlock",
    "muirGlacierBlock",
    "berlinBlock",
    "londonBlock",
    "arrowGlacierBlock",
    "grayGlacierBlock",
)


def _address_bytes(address: str) -> bytes:
    """Returns the 20 raw bytes of a hex address, rejecting anything else."""
    text = address[2:] if address.lower().startswith("0x") else address
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise FednodeValueError(f"not a hex address: {address!r}") from exc
    if len(raw) != 20:
        raise FednodeValueError(f"address must be 20 bytes, got {len(raw)}: {address!r}")
    return raw


def clique_extra_data(signers: Iterable[str]) -> str:
    """Encodes the genesis extraData: 32 vanity bytes, the sorted signers, 65 seal bytes.

    Clique reads the initial signer list from the genesis extraData and expects the addresses
    in ascending byte order, as it writes them at every checkpoint.

    Args:
        signers: Hex addresses of the initial sealers (at least one, no duplicates).

    Returns:
        The extraData as a 0x-prefixed lowercase hex string.

    Raises:
        FednodeValueError: No signer, a duplicate, or a malformed address.

    Example:
        >>> extra = clique_extra_data(["0x" + "22" * 20, "0x" + "11" * 20])
        >>> len(bytes.fromhex(extra[2:]))
        137
        >>> extra[2 + 64 : 2 + 64 + 40] == "11" * 20
        True
    """
    raw = [_address_bytes(s) for s in signers]
    if not raw:
        raise FednodeValueError("a Clique genesis needs at least one signer")
    if len(set(raw)) != len(raw):
        raise FednodeValueError("duplicate signer address in the Clique genesis")
    body = b"".join(sorted(raw))
    return "0x" + (bytes(CLIQUE_EXTRA_VANITY) + body + bytes(CLIQUE_EXTRA_SEAL)).hex()


def parse_clique_signers(extra_data: str) -> list[str]:
    """Reads the signer addresses back out of a Clique genesis or checkpoint extraData.

    Args:
        extra_data: 0x-prefixed hex extraData.

    Returns:
        Lowercase 0x-prefixed addresses in the order they are stored (ascending).

    Raises:
        FednodeValueError: The length is not vanity + 20·n + seal.

    Example:
        >>> parse_clique_signers(clique_extra_data(["0x" + "ab" * 20]))
        ['0xabababababababababababababababababababab']
    """
    raw = bytes.fromhex(extra_data.removeprefix("0x"))
    body = raw[CLIQUE_EXTRA_VANITY : len(raw) - CLIQUE_EXTRA_SEAL]
    if len(raw) < CLIQUE_EXTRA_VANITY + CLIQUE_EXTRA_SEAL or len(body) % 20:
        raise FednodeValueError(f"malformed Clique extraData of {len(raw)} bytes")
    return ["0x" + body[i : i + 20].hex() for i in range(0, len(body), 20)]


def _chain_config(chain_id: int, period: int, epoch: int) -> dict[str, Any]:
    """Returns the genesis ``config`` object: pre-merge forks at 0 plus Clique."""
    config: dict[str, Any] = {"chainId": chain_id}
    config.update({fork: 0 for fork in _PRE_MERGE_FORKS})
    config["clique"] = {"period": period, "epoch": epoch}
    return config


def _check_settings(chain_id: int, period: int, epoch: int, gas_limit: int) -> None:
    """Rejects settings that geth would refuse or that make no sense for a consortium."""
    if chain_id <= 0:
        raise FednodeValueError(f"chain_id must be positive, got {chain_id}")
    if period < 0:
        raise FednodeValueError(f"period must be >= 0 seconds, got {period}")
    if epoch <= 0:
        raise FednodeValueError(f"epoch must be positive, got {epoch}")
    if gas_limit < 5000:
        raise FednodeValueError(f"gas_limit must be >= 5000 (geth's floor), got {gas_limit}")


def build_clique_genesis(
    signers: Sequence[str],
    *,
    chain_id: int,
    period: int = 1,
    epoch: int = DEFAULT_EPOCH,
    gas_limit: int = DEFAULT_GAS_LIMIT,
    alloc: Mapping[str, int] | None = None,
    timestamp: int = 0,
) -> dict[str, Any]:
    """Builds a geth 1.13 Clique genesis for a permissioned consortium.

    Args:
        signers: Hex addresses of the initial validators (Clique sealers).
        chain_id: EIP-155 chain id, also used as the network id.
        period: Seconds between blocks (0 seals only when transactions arrive).
        epoch: Blocks between Clique checkpoints.
        gas_limit: Block gas limit of the genesis block (miners keep it via
            ``--miner.gaslimit``).
        alloc: Address -> prefunded balance in wei.
        timestamp: Genesis timestamp (seconds since the epoch).

    Returns:
        A JSON-ready dict for ``geth init``.

    Raises:
        FednodeValueError: Bad signers, alloc addresses or settings.

    Example:
        >>> g = build_clique_genesis(["0x" + "11" * 20], chain_id=1337, alloc={"0x" + "22" * 20: 5})
        >>> g["config"]["clique"], g["gasLimit"]
        ({'period': 1, 'epoch': 30000}, '0x3938700')
        >>> "shanghaiTime" in g["config"], g["alloc"]["2222222222222222222222222222222222222222"]
        (False, {'balance': '0x5'})
    """
    _check_settings(chain_id, period, epoch, gas_limit)
    balances = {_address_bytes(a).hex(): {"balance": hex(int(b))} for a, b in (alloc or {}).items()}
    return {
        "config": _chain_config(chain_id, period, epoch),
        "nonce": "0x0",
        "timestamp": hex(timestamp),
        "extraData": clique_extra_data(signers),
        "gasLimit": hex(gas_limit),
        "difficulty": "0x1",
        "mixHash": "0x" + "00" * 32,
        "coinbase": "0x" + "00" * 20,
        "alloc": balances,
        "number": "0x0",
        "gasUsed": "0x0",
        "parentHash": "0x" + "00" * 32,
    }
