"""Chain: read_in_batches sends reads as JSON-RPC batches and returns results in order."""

from __future__ import annotations

import json
from typing import Any

import pytest
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.providers.base import JSONBaseProvider

from fednode.chain.read_batch import read_in_batches
from fednode.errors import FednodeValueError


class FakeNode(JSONBaseProvider):
    """Answers eth_getBalance with the address's last byte, counting single and batch requests.

    ``error_for`` makes that address's request fail with a JSON-RPC error.
    """

    def __init__(self, *, error_for: int | None = None) -> None:
        super().__init__()
        self.singles = 0
        self.batch_sizes: list[int] = []
        self.error_for = error_for

    def _answer(self, request_id: int, method: str, params: Any) -> dict[str, Any]:
        assert method == "eth_getBalance", method
        value = int(params[0], 16) % 256
        if value == self.error_for:
            return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32000, "message": "no"}}
        return {"jsonrpc": "2.0", "id": request_id, "result": hex(value)}

    def make_request(self, method, params):
        self.singles += 1
        return self._answer(1, method, params)

    def make_batch_request(self, requests):
        self.batch_sizes.append(len(requests))
        encoded = json.loads(self.encode_batch_rpc_request(requests))
        return [self._answer(r["id"], r["method"], r["params"]) for r in encoded]


class SinglesOnly(JSONBaseProvider):
    """A provider that never overrode make_batch_request."""

    def __init__(self) -> None:
        super().__init__()
        self.singles = 0

    def make_request(self, method, params):
        self.singles += 1
        return {"jsonrpc": "2.0", "id": 1, "result": hex(int(params[0], 16) % 256)}


def _balance_reads(w3: Web3, count: int) -> list:
    addresses = [Web3.to_checksum_address(f"0x{i + 1:040x}") for i in range(count)]
    return [lambda a=a: w3.eth.get_balance(a, "latest") for a in addresses]


def test_sends_reads_as_batches_of_batch_size_in_order():
    # Arrange
    node = FakeNode()
    w3 = Web3(node)
    # Act
    results = read_in_batches(w3, _balance_reads(w3, 70), batch_size=32)
    # Assert
    assert results == [i + 1 for i in range(70)]
    assert node.batch_sizes == [32, 32, 6] and node.singles == 0


def test_a_single_read_is_sent_without_a_batch():
    node = FakeNode()
    w3 = Web3(node)
    assert read_in_batches(w3, _balance_reads(w3, 1)) == [1]
    assert node.batch_sizes == [] and node.singles == 1


def test_providers_without_batches_get_the_reads_one_at_a_time():
    # Arrange
    node = SinglesOnly()
    w3 = Web3(node)
    # Act
    results = read_in_batches(w3, _balance_reads(w3, 5))
    # Assert
    assert results == [1, 2, 3, 4, 5] and node.singles == 5


def test_an_error_in_a_batch_raises_like_the_single_read():
    node = FakeNode(error_for=3)
    w3 = Web3(node)
    with pytest.raises(Web3RPCError, match="no"):
        read_in_batches(w3, _balance_reads(w3, 5))


def test_refuses_a_batch_size_below_one():
    with pytest.raises(FednodeValueError, match="batch_size"):
        read_in_batches(Web3(FakeNode()), [lambda: None], batch_size=0)


def test_a_missing_transaction_in_a_batch_raises_transaction_not_found():
    # Arrange: a node that answers null for every transaction
    class NoTransactions(FakeNode):
        def _answer(self, request_id, method, params):
            return {"jsonrpc": "2.0", "id": request_id, "result": None}

    w3 = Web3(NoTransactions())
    reads = [lambda h=h: w3.eth.get_transaction(h) for h in ("0x" + "11" * 32, "0x" + "22" * 32)]
    # Act / Assert
    with pytest.raises(TransactionNotFound):
        read_in_batches(w3, reads)
