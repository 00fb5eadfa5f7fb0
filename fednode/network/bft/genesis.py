"""Consensus: builds the two genesis files of a CometBFT consortium (pure, no I/O).

The execution genesis is post-merge from block 0 (terminal total difficulty 0, difficulty 0):
every pre-merge fork, Paris, Shanghai and Cancun are active at genesis. The contracts are
compiled for Paris (``evmVersion`` in ``fednode/chain/compile.py``); Shanghai and Cancun are on
as well because geth 1.17 drives Cancun chains through Engine API V3, its maintained path
(withdrawals stay empty, no blob transactions are made). Prague is not scheduled: it would
need the deposit contract and execution requests, which a consortium has no use for.

The CometBFT genesis lists one ed25519 validator per operator with equal voting power.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fednode.errors import FednodeValueError
from fednode.network.genesis import DEFAULT_GAS_LIMIT

__all__ = [
    "CANCUN_BLOB_SCHEDULE",
    "CometValidator",
    "build_comet_genesis",
    "build_execution_genesis",
    "comet_chain_id",
]

_FORK_BLOCKS = (
    "homesteadBlock", "eip150Block", "eip155Block", "eip158Block", "byzantiumBlock",
    "constantinopleBlock", "petersburgBlock", "istanbulBlock", "muirGlacierBlock",
    "berlinBlock", "londonBlock", "arrowGlacierBlock", "grayGlacierBlock", "mergeNetsplitBlock",
)  # fmt: skip
_FORK_TIMES = ("shanghaiTime", "cancunTime")

CANCUN_BLOB_SCHEDULE = {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477}
"""EIP-4844's blob parameters; geth >= 1.15 wants them in the config of every blob fork."""

VOTING_POWER = 10
"""Voting power of every genesis validator (equal shares)."""


@dataclass(frozen=True)
class CometValidator:
    """One genesis validator: name, base64 ed25519 public key, upper-case hex address."""

    name: str
    pub_key: str
    address: str


def _address_hex(address: str) -> str:
    """Returns the 40 lowercase hex digits of a 20-byte address, rejecting anything else."""
    text = address.removeprefix("0x").removeprefix("0X")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise FednodeValueError(f"not a hex address: {address!r}") from exc
    if len(raw) != 20:
        raise FednodeValueError(f"address must be 20 bytes, got {len(raw)}: {address!r}")
    return raw.hex()


def build_execution_genesis(
    *,
    chain_id: int,
    gas_limit: int = DEFAULT_GAS_LIMIT,
    alloc: Mapping[str, int] | None = None,
    timestamp: int = 0,
) -> dict[str, Any]:
    """Builds a post-merge geth 1.17 genesis with every fork through Cancun at 0.

    Args:
        chain_id: EIP-155 chain id, also the devp2p network id.
        gas_limit: Block gas limit (geth keeps it with ``--miner.gaslimit``).
        alloc: Address -> prefunded balance in wei.
        timestamp: Genesis timestamp, seconds since the epoch.

    Returns:
        A JSON-ready dict for ``geth init``.

    Raises:
        FednodeValueError: A bad chain id, gas limit or address.

    Example:
        >>> g = build_execution_genesis(chain_id=1337, alloc={"0x" + "22" * 20: 5})
        >>> g["config"]["terminalTotalDifficulty"], g["config"]["cancunTime"], g["difficulty"]
        (0, 0, '0x0')
        >>> "clique" in g["config"], "pragueTime" in g["config"]
        (False, False)
    """
    if chain_id <= 0:
        raise FednodeValueError(f"chain_id must be positive, got {chain_id}")
    if gas_limit < 5000:
        raise FednodeValueError(f"gas_limit must be >= 5000 (geth's floor), got {gas_limit}")
    config: dict[str, Any] = {"chainId": chain_id}
    config.update(dict.fromkeys(_FORK_BLOCKS, 0))
    config["terminalTotalDifficulty"] = 0
    config.update(dict.fromkeys(_FORK_TIMES, 0))
    config["blobSchedule"] = {"cancun": dict(CANCUN_BLOB_SCHEDULE)}
    balances = {_address_hex(a): {"balance": hex(int(b))} for a, b in (alloc or {}).items()}
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": hex(timestamp),
        "extraData": "0x",
        "gasLimit": hex(gas_limit),
        "difficulty": "0x0",
        "mixHash": "0x" + "00" * 32,
        "coinbase": "0x" + "00" * 20,
        "alloc": balances,
        "number": "0x0",
        "gasUsed": "0x0",
        "parentHash": "0x" + "00" * 32,
    }


def comet_chain_id(chain_id: int) -> str:
    """The CometBFT chain id of an execution chain id.

    Example:
        >>> comet_chain_id(1337)
        'fednode-1337'
    """
    return f"fednode-{chain_id}"


def build_comet_genesis(
    validators: Sequence[CometValidator], *, chain_id: int, genesis_time: datetime
) -> dict[str, Any]:
    """Builds CometBFT's genesis.json: equal-power ed25519 validators, default parameters.

    Args:
        validators: The genesis validators (at least one, distinct keys).
        chain_id: The execution chain id (the CometBFT chain id is derived from it).
        genesis_time: When consensus may start (timezone-aware).

    Returns:
        A JSON-ready dict.

    Raises:
        FednodeValueError: No validator, or a duplicate key.

    Example:
        >>> v = CometValidator("validator-1", "A" * 43 + "=", "AB" * 20)
        >>> g = build_comet_genesis([v], chain_id=7, genesis_time=datetime(2026, 1, 1, tzinfo=UTC))
        >>> g["chain_id"], g["genesis_time"], g["validators"][0]["power"]
        ('fednode-7', '2026-01-01T00:00:00Z', '10')
    """
    if not validators:
        raise FednodeValueError("a CometBFT genesis needs at least one validator")
    if len({v.pub_key for v in validators}) != len(validators):
        raise FednodeValueError("duplicate validator key in the CometBFT genesis")
    when = genesis_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")
    return {
        "genesis_time": when,
        "chain_id": comet_chain_id(chain_id),
        "initial_height": "1",
        "validators": [
            {
                "address": v.address,
                "pub_key": {"type": "tendermint/PubKeyEd25519", "value": v.pub_key},
                "power": str(VOTING_POWER),
                "name": v.name,
            }
            for v in validators
        ],
        "app_hash": "",
    }
