"""Consensus tests: helpers shared by the CometBFT engine's integration tests.

The binaries check, waiting for finality on every validator, a raw transfer signed with an
account's own key, a receipt wait and a SIGKILL that waits for the process to be gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
from eth_account import Account
from web3 import Web3

from fednode.errors import NetworkError
from fednode.network.bft.manager import finalized_number
from fednode.network.bft.node import checked_bft_geth_version, find_bft_app, find_bft_geth
from fednode.network.info import NetworkInfo
from fednode.network.keys import read_key_file
from fednode.network.node import rpc_call
from fednode.network.process import is_running


def require_bft_binaries() -> None:
    """Fails (FEDNODE_REQUIRE_GETH set) or skips when geth 1.17 or fednode-bft is missing."""
    try:
        checked_bft_geth_version(find_bft_geth())
        find_bft_app()
    except NetworkError as exc:
        if os.environ.get("FEDNODE_REQUIRE_GETH"):
            pytest.fail(f"FEDNODE_REQUIRE_GETH is set but the CometBFT engine is missing: {exc}")
        pytest.skip(f"no CometBFT engine binaries: {exc}")


def wait_finalized(urls: list[str], number: int, *, timeout: float) -> None:
    """Waits until every validator in ``urls`` has finalized block ``number``."""
    deadline = time.monotonic() + timeout
    while True:
        heights = [finalized_number(u) for u in urls]
        if all(h is not None and h >= number for h in heights):
            return
        assert time.monotonic() < deadline, f"finalized {heights}, wanted {number} on all"
        time.sleep(0.5)


def send_transfer(info: NetworkInfo, url: str, account: str) -> str:
    """Signs a 1-wei transfer with ``account``'s own key and sends it raw to ``url``."""
    sender = Account.from_key(read_key_file(info.key_file(account)))
    w3 = Web3(Web3.HTTPProvider(url))
    base_fee = int(w3.eth.get_block("latest")["baseFeePerGas"])
    tip = int(w3.eth.max_priority_fee)
    tx = {
        "to": info.accounts["auditor"].address, "value": 1, "gas": 21_000,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        "maxFeePerGas": 2 * base_fee + tip, "maxPriorityFeePerGas": tip,
        "chainId": info.chain_id, "type": 2,
    }  # fmt: skip
    return "0x" + w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction).hex()


def wait_receipt(url: str, tx_hash: str, *, timeout: float) -> dict:
    """The receipt of ``tx_hash`` from ``url``, once it is in a block."""
    deadline = time.monotonic() + timeout
    while (receipt := rpc_call(url, "eth_getTransactionReceipt", [tx_hash], timeout=10.0)) is None:
        assert time.monotonic() < deadline, f"{tx_hash} not in a block within {timeout} s"
        time.sleep(0.5)
    return receipt


def sigkill(pid: int | None, marker: str) -> None:
    """SIGKILLs ``pid`` (if it still runs ``marker``) and waits until it is gone."""
    if pid and is_running(pid, marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while is_running(pid, marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not is_running(pid, marker), f"pid {pid} ({marker}) survived SIGKILL"
