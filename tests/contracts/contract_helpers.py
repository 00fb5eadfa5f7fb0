"""Chain: helpers for contract tests: send a call, expect a decoded revert, read events."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD
from web3.types import TxReceipt

from fednode.chain.revert import revert_error_from
from fednode.chain.transactions import TransactionSender
from fednode.errors import ContractRevertError


def send(account: LocalAccount, contract: Contract, fn_name: str, *args: Any) -> TxReceipt:
    """Sends ``contract.fn_name(*args)`` from ``account`` and returns the receipt."""
    data = bytes(HexBytes(contract.encode_abi(fn_name, list(args))))
    return TransactionSender(contract.w3, account).transact(contract.address, data)


def expect_revert(
    sender: LocalAccount,
    contract: Contract,
    fn_name: str,
    args: tuple[Any, ...],
    error: str,
    /,
    **expected: Any,
) -> None:
    """Asserts that the call reverts with custom error ``error`` and exactly ``expected`` args."""
    with pytest.raises(ContractRevertError) as info:
        send(sender, contract, fn_name, *args)
    assert info.value.name == error, info.value
    assert info.value.args_by_name == expected, info.value


def events(contract: Contract, name: str, receipt: TxReceipt) -> list[dict[str, Any]]:
    """Decoded args of every ``name`` event that ``contract`` emitted in ``receipt``."""
    logs = contract.events[name]().process_receipt(receipt, errors=DISCARD)
    return [dict(log["args"]) for log in logs]


def mine_after(w3: Web3, seconds: int) -> int:
    """Moves anvil's clock ``seconds`` forward, mines a block, returns its timestamp."""
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])
    return int(w3.eth.get_block("latest")["timestamp"])


def expect_view_revert(
    contract: Contract, fn_name: str, args: tuple[Any, ...], error: str, /, **expected: Any
) -> None:
    """Asserts that the view ``contract.fn_name(*args)`` reverts with ``error(expected)``."""
    with pytest.raises((ContractLogicError, Web3RPCError)) as info:
        contract.get_function_by_name(fn_name)(*args).call()
    decoded = revert_error_from(info.value)
    assert decoded is not None and decoded.name == error, decoded
    assert decoded.args_by_name == expected, decoded


def struct(contract: Contract, fn_name: str, *args: Any) -> dict[str, Any]:
    """A struct-returning view as a dict keyed by field name."""
    fn = contract.get_function_by_name(fn_name)(*args)
    names = [c["name"] for c in fn.abi["outputs"][0]["components"]]
    return dict(zip(names, fn.call(), strict=True))


def publish(
    account: LocalAccount,
    registry: Contract,
    *,
    spec: bytes = b'{"name":"t"}',
    rounds: int = 2,
    min_updates: int = 1,
    max_staleness: int = 0,
    deadline: int = 0,
    epsilon_budget_micro: int = 0,
    aggregator_quorum: int = 1,
    max_examples: int = 100_000,
    initial_model: bytes = b"initial-model",
) -> int:
    """Publishes a task straight through the contract; returns its id."""
    params = (rounds, min_updates, max_staleness, deadline, epsilon_budget_micro, aggregator_quorum,
              max_examples)
    receipt = send(account, registry, "publishTask", spec, params, initial_model)
    return int(events(registry, "TaskPublished", receipt)[0]["taskId"])


def submit(
    edge: LocalAccount,
    ledger: Contract,
    task_id: int,
    base_version: int = 0,
    *,
    payload: bytes = b"update",
    num_examples: int = 1,
    epsilon_micro: int = 0,
) -> int:
    """Submits an update straight through the contract; returns its id."""
    receipt = send(
        edge, ledger, "submitUpdate", task_id, base_version, num_examples, epsilon_micro, payload
    )
    return int(events(ledger, "UpdateSubmitted", receipt)[0]["updateId"])


def commit(
    aggregator: LocalAccount,
    ledger: Contract,
    task_id: int,
    version: int,
    update_ids: list[int],
    *,
    rejected_ids: list[int] | None = None,
    payload: bytes = b"global",
) -> TxReceipt:
    """Commits a global model straight through the contract; returns the receipt."""
    return send(
        aggregator, ledger, "commitGlobalModel", task_id, version, update_ids,
        rejected_ids or [], payload,
    )
