"""Consensus: the CometBFT engine on 4 real validators (CometBFT v0.38 + geth 1.17, Engine API).

Blocks are final as CometBFT commits them (geth's ``finalized`` tag follows its head), a
transaction sent to any validator's JSON-RPC lands in the same finalized block on all four,
the chain keeps finalizing with one validator of four killed, and a whole federated task
(publish, 4 edges submit, aggregator commits, auditor verifies) runs unchanged on it.

Needs ``scripts/build_bft.sh`` (geth 1.17.10 and fednode-bft); skipped without them unless
``FEDNODE_REQUIRE_GETH`` is set, as the Clique tests are.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from fednode.cli.demo_cmd import run_demo
from fednode.errors import NetworkError
from fednode.network.bft import bft_network_down, bft_network_status, bft_network_up, load_bft
from fednode.network.bft.manager import bft_restart_validators, finalized_number
from fednode.network.bft.node import checked_bft_geth_version, find_bft_app, find_bft_geth
from fednode.network.info import NetworkInfo, load_network
from fednode.network.keys import read_key_file
from fednode.network.node import rpc_call
from fednode.network.process import is_running

pytestmark = pytest.mark.integration


def _require_binaries() -> None:
    try:
        checked_bft_geth_version(find_bft_geth())
        find_bft_app()
    except NetworkError as exc:
        if os.environ.get("FEDNODE_REQUIRE_GETH"):
            pytest.fail(f"FEDNODE_REQUIRE_GETH is set but the CometBFT engine is missing: {exc}")
        pytest.skip(f"no CometBFT engine binaries: {exc}")


@pytest.fixture(scope="module")
def bft_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetworkInfo]:
    """4 validators (geth 1.17 + fednode-bft each), stopped at the end of the module."""
    _require_binaries()
    directory = tmp_path_factory.mktemp("bft-network")
    info = bft_network_up(directory, validators=4, timeout=180.0, tie_to_caller=True)
    try:
        yield info
    finally:
        bft_network_down(directory)


def _block(url: str, tag: str | int) -> dict:
    ref = hex(tag) if isinstance(tag, int) else tag
    block = rpc_call(url, "eth_getBlockByNumber", [ref, False], timeout=10.0)
    assert block is not None, f"{url} has no block {tag}"
    return block


def _wait_finalized(urls: list[str], number: int, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        heights = [finalized_number(u) for u in urls]
        if all(h is not None and h >= number for h in heights):
            return
        assert time.monotonic() < deadline, f"finalized {heights}, wanted {number} on all"
        time.sleep(0.5)


def _send_transfer(info: NetworkInfo, url: str, account: str) -> str:
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


def _receipt(url: str, tx_hash: str, *, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        receipt = rpc_call(url, "eth_getTransactionReceipt", [tx_hash], timeout=10.0)
        if receipt is not None:
            return receipt
        assert time.monotonic() < deadline, f"{tx_hash} not mined within {timeout} s"
        time.sleep(0.5)


def _assert_final_everywhere(urls: list[str], tx_hash: str) -> None:
    """The transaction is in the same finalized block on every URL."""
    receipts = [_receipt(u, tx_hash) for u in urls]
    number = int(receipts[0]["blockNumber"], 16)
    _wait_finalized(urls, number)
    blocks = [_block(u, number) for u in urls]
    assert {b["hash"] for b in blocks} == {receipts[0]["blockHash"]}
    assert all(tx_hash in b["transactions"] for b in blocks)
    assert all(r["status"] == "0x1" for r in receipts)


def test_demo_task_runs_end_to_end_on_cometbft(tmp_path: Path):
    # Arrange: the demo's own network (a fresh one), before the module's network starts
    _require_binaries()
    args = argparse.Namespace(
        dir=tmp_path / "run", task="heart", rounds=2, model="logreg", seed=0, validators=4,
        confirmations=1, report_json=tmp_path / "report.json", keep_network=False,
        aggregation="fedavg", server_optimizer="none", compression=[], engine="cometbft",
    )  # fmt: skip
    # Act
    report = run_demo(args)
    # Assert: published, 4 edges submitted each round, committed, audited clean
    written = json.loads(args.report_json.read_text())
    assert report["audit"]["ok"] is True and written["audit"]["ok"] is True
    assert [r["version"] for r in written["rounds"]] == [1, 2]
    assert written["chain"]["validators"] == 4
    assert written["chain"]["updates"] == 4 + 4 * 2  # feature stats + 2 training rounds
    assert not any(is_running(v.pid, v.home) for v in load_bft(args.dir / "network").validators)


def test_four_validators_finalize_blocks(bft_network: NetworkInfo):
    # Arrange
    urls = bft_network.http_urls
    start = [finalized_number(u) for u in urls]
    assert all(h is not None for h in start)
    # Act
    _wait_finalized(urls, max(start) + 3, timeout=60.0)  # type: ignore[type-var]
    # Assert: finalized follows the head, and every validator holds the same blocks
    for url in urls:
        head, final = _block(url, "latest"), _block(url, "finalized")
        assert int(head["number"], 16) - int(final["number"], 16) <= 1
    common = min(finalized_number(u) or 0 for u in urls)
    assert len({_block(u, common)["hash"] for u in urls}) == 1
    status = bft_network_status(bft_network.dir)
    assert status["engine"] == "cometbft"
    assert status["versions"]["geth"].startswith("1.17.10")
    assert status["versions"]["cometbft"] == "0.38.26"
    assert all(r["peers"] == 3 and r["voting_power"] == 10 for r in status["validators"])


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_transaction_sent_to_any_validator_is_final_on_all(bft_network: NetworkInfo, index: int):
    # Arrange
    urls = bft_network.http_urls
    # Act: edge-<i> sends to validator i's JSON-RPC only
    tx_hash = _send_transfer(bft_network, urls[index], f"edge-{index + 1}")
    # Assert
    _assert_final_everywhere(urls, tx_hash)


def _sigkill(pid: int | None, marker: str) -> None:
    if pid and is_running(pid, marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while is_running(pid, marker) and time.monotonic() < deadline:
            time.sleep(0.1)


def _kill_validator_4(info: NetworkInfo) -> None:
    """SIGKILLs both processes of validator-4 (no graceful shutdown)."""
    comet = load_bft(info.dir).validators[3]
    execution = [v for v in load_network(info.dir).validators if v.name == "validator-4"][0]
    _sigkill(comet.pid, comet.home)
    _sigkill(execution.pid, execution.datadir)


def test_kill_one_of_four_blocks_keep_being_finalized(bft_network: NetworkInfo):
    # Arrange: SIGKILL both processes of validator-4
    comet = load_bft(bft_network.dir).validators[3]
    _kill_validator_4(bft_network)
    survivors = bft_network.http_urls[:3]
    before = min(finalized_number(u) or 0 for u in survivors)
    # Act
    _wait_finalized(survivors, before + 3, timeout=30.0)
    tx_hash = _send_transfer(bft_network, survivors[1], "publisher")
    # Assert
    _assert_final_everywhere(survivors, tx_hash)
    assert not is_running(comet.pid, comet.home)


def test_killed_validator_restarts_catches_up_and_serves_again(bft_network: NetworkInfo):
    # Arrange: validator-4 killed (again, if the test above did not run first)
    _kill_validator_4(bft_network)
    urls = bft_network.http_urls
    _wait_finalized(urls[:3], (finalized_number(urls[0]) or 0) + 3, timeout=30.0)
    # Act: restart it; its application imports every block it missed
    bft_restart_validators(bft_network.dir, ["validator-4"], tie_to_caller=True)
    target = finalized_number(urls[0]) or 0
    _wait_finalized(urls, target, timeout=90.0)
    tx_hash = _send_transfer(bft_network, urls[3], "aggregator")
    # Assert: same finalized chain on all four, and a tx sent to it is final everywhere
    assert len({_block(u, target)["hash"] for u in urls}) == 1
    _assert_final_everywhere(urls, tx_hash)
