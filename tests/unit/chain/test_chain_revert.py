"""Chain: revert data decodes into ContractRevertError from raw bytes or web3 errors."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from fednode.chain.compile import CONTRACT_NAMES, load_artifact
from fednode.chain.constants import EDGE_ROLE
from fednode.chain.revert import decode_revert, default_error_table, error_table, revert_error_from

EDGE = "0x" + "ab" * 20


def _data(signature: str, types: list[str], values: list[object]) -> bytes:
    return keccak(text=signature)[:4] + encode(types, values)


def test_chain_revert_decodes_a_custom_error_with_named_args():
    # Arrange
    data = _data(
        "UpdateLedgerDuplicateSubmission(uint256,uint32,address)",
        ["uint256", "uint32", "address"],
        [3, 1, EDGE],
    )
    # Act
    error = decode_revert(data)
    # Assert
    assert error.name == "UpdateLedgerDuplicateSubmission"
    assert error.args_by_name == {
        "taskId": 3,
        "baseVersion": 1,
        "edge": "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB",
    }
    assert error.raw == "0x" + data.hex()


def test_chain_revert_decodes_openzeppelin_errors_and_enums():
    role_error = decode_revert(
        _data(
            "AccessControlUnauthorizedAccount(address,bytes32)",
            ["address", "bytes32"],
            [EDGE, EDGE_ROLE],
        )
    )
    state_error = decode_revert(
        _data("UpdateLedgerUnexpectedTaskState(uint256,uint8)", ["uint256", "uint8"], [4, 3])
    )
    assert role_error.args_by_name["neededRole"] == EDGE_ROLE
    assert state_error.args_by_name == {"taskId": 4, "current": 3}


def test_chain_revert_decodes_builtin_error_and_panic():
    assert decode_revert(_data("Error(string)", ["string"], ["boom"])).args_by_name == {
        "message": "boom"
    }
    assert decode_revert(_data("Panic(uint256)", ["uint256"], [0x11])).args_by_name == {
        "code": 0x11
    }


@pytest.mark.parametrize("data", ["0x", "0xdeadbeef", b"\x12\x34"])
def test_chain_revert_unknown_data_keeps_the_raw_bytes(data):
    error = decode_revert(data)
    assert error.name == ""
    assert error.raw.startswith("0x")


def test_chain_revert_table_covers_every_error_in_every_artifact():
    table = default_error_table()
    names = {entry["name"] for entry in table.values()}
    for name in CONTRACT_NAMES:
        for entry in load_artifact(name)["abi"]:
            if entry["type"] == "error":
                assert entry["name"] in names


def test_chain_revert_table_builds_from_any_abi():
    table = error_table(
        [[{"type": "error", "name": "Oops", "inputs": [{"name": "x", "type": "uint8"}]}]]
    )
    assert decode_revert(_data("Oops(uint8)", ["uint8"], [7]), table=table).args_by_name == {"x": 7}


def test_chain_revert_reads_web3_exceptions():
    data = "0x" + _data("UpdateLedgerZeroExamples()", [], []).hex()
    custom = revert_error_from(ContractCustomError(data, data=data))
    logic = revert_error_from(ContractLogicError("execution reverted", data={"data": data}))
    rpc = revert_error_from(
        Web3RPCError(
            "x",
            rpc_response={
                "jsonrpc": "2.0",
                "id": 1,
                "error": {"code": 3, "message": "m", "data": data},
            },
        )
    )
    plain = revert_error_from(ContractLogicError("execution reverted: nope", data=None))
    assert custom.name == logic.name == rpc.name == "UpdateLedgerZeroExamples"
    assert plain.name == "" and "nope" in plain.raw
    assert revert_error_from(RuntimeError("x")) is None
