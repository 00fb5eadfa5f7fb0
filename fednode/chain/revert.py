"""Chain: turns revert data from the node into ``ContractRevertError(name, args)``.

The 4-byte selector is matched against every custom error in the compiled ABIs (ours and the
OpenZeppelin ones they inherit), plus Solidity's built-in ``Error(string)`` and
``Panic(uint256)``. Args are keyed by Solidity parameter name; addresses are checksummed,
``bytesN`` stay bytes, integers and enums are ints. web3 v8 surfaces revert data of
``eth_call`` / ``eth_estimateGas`` as ``ContractCustomError.data`` (a hex string) or, for
``Error(string)`` and odd nodes, ``ContractLogicError.data``; ``revert_error_from`` reads both.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_bytes, to_checksum_address
from web3.exceptions import ContractLogicError, Web3RPCError

from fednode.chain.compile import CONTRACT_NAMES, load_artifact
from fednode.errors import ContractRevertError

__all__ = ["ErrorTable", "decode_revert", "default_error_table", "error_table", "revert_error_from"]

ErrorTable = Mapping[bytes, Mapping[str, Any]]
"""4-byte selector -> ABI entry of a custom error."""

_BUILTIN_ERRORS: tuple[dict[str, Any], ...] = (
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
)


def _canonical_type(entry: Mapping[str, Any]) -> str:
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in entry["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _signature(entry: Mapping[str, Any]) -> str:
    return f"{entry['name']}({','.join(_canonical_type(i) for i in entry['inputs'])})"


def error_table(abis: Iterable[Sequence[Mapping[str, Any]]]) -> dict[bytes, Mapping[str, Any]]:
    """Selector -> error ABI entry for every ``type == "error"`` entry in ``abis``.

    Example:
      >>> table = error_table([[{"type": "error", "name": "Oops", "inputs": []}]])
      >>> list(table.values())[0]["name"]
      'Oops'
    """
    table: dict[bytes, Mapping[str, Any]] = {}
    for abi in (*abis, _BUILTIN_ERRORS):
        for entry in abi:
            if entry.get("type") == "error":
                table[keccak(text=_signature(entry))[:4]] = entry
    return table


@functools.cache
def default_error_table() -> dict[bytes, Mapping[str, Any]]:
    """The table of every error in the committed artifacts (cached)."""
    return error_table(load_artifact(name)["abi"] for name in CONTRACT_NAMES)


def _normalize(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type.endswith("]") and isinstance(value, (list, tuple)):
        inner = abi_type[: abi_type.rindex("[")]
        return tuple(_normalize(inner, item) for item in value)
    return value


def decode_revert(
    data: bytes | str | None, *, table: ErrorTable | None = None
) -> ContractRevertError:
    """Decodes raw revert data; unknown or empty data gives an error with ``name == ""``.

    Example:
      >>> decode_revert("0x" + keccak(text="UpdateLedgerZeroExamples()")[:4].hex()).name
      'UpdateLedgerZeroExamples'
    """
    raw = to_bytes(hexstr=data) if isinstance(data, str) else bytes(data or b"")
    raw_hex = "0x" + raw.hex()
    entry = (table if table is not None else default_error_table()).get(raw[:4])
    if entry is None:
        return ContractRevertError("", None, raw=raw_hex)
    types = [_canonical_type(i) for i in entry["inputs"]]
    try:
        values = abi_decode(types, raw[4:])
    except Exception:  # eth_abi raises several decoding error types
        return ContractRevertError("", None, raw=raw_hex)
    args = {
        i["name"]: _normalize(t, v) for i, t, v in zip(entry["inputs"], types, values, strict=True)
    }
    return ContractRevertError(str(entry["name"]), args, raw=raw_hex)


def _revert_data(exc: BaseException) -> str | None:
    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, dict):
            data = data.get("data")
        if isinstance(data, str):
            return data.removeprefix("Reverted ")
        return None
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
        error = exc.rpc_response.get("error")
        if isinstance(error, dict) and isinstance(error.get("data"), str):
            return str(error["data"])
    return None


def revert_error_from(
    exc: BaseException, *, table: ErrorTable | None = None
) -> ContractRevertError | None:
    """The decoded revert carried by a web3 exception, or None if ``exc`` is not a revert.

    Example:
      >>> revert_error_from(ValueError("unrelated")) is None
      True
    """
    if not isinstance(exc, (ContractLogicError, Web3RPCError)):
        return None
    data = _revert_data(exc)
    if data is not None and data.startswith("0x"):
        return decode_revert(data, table=table)
    if isinstance(exc, ContractLogicError):
        message = exc.message or "execution reverted"
        return ContractRevertError("", None, raw=message)
    return None
