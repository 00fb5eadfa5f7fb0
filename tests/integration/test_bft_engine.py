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
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fednode.cli.demo_cmd import run_demo
from fednode.network.bft import bft_network_down, bft_network_status, bft_network_up, load_bft
from fednode.network.bft.manager import bft_restart_validators, finalized_number
from fednode.network.info import NetworkInfo, load_network
from fednode.network.node import rpc_call
from fednode.network.process import is_running
from tests.integration.bft_kit import (
    require_bft_binaries,
    send_transfer,
    sigkill,
    wait_finalized,
    wait_receipt,
)

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
def bft_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetworkInfo]:
    """4 validators (geth 1.17 + fednode-bft each), stopped at the end of the module."""
    require_bft_binaries()
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





def _assert_final_everywhere(urls: list[str], tx_hash: str) -> None:
    """The transaction is in the same finalized block on every URL."""
    receipts = [wait_receipt(u, tx_hash, timeout=60.0) for u in urls]
    number = int(receipts[0]["blockNumber"], 16)
    wait_finalized(urls, number, timeout=60.0)
    blocks = [_block(u, number) for u in urls]
    assert {b["hash"] for b in blocks} == {receipts[0]["blockHash"]}
    assert all(tx_hash in b["transactions"] for b in blocks)
    assert all(r["status"] == "0x1" for r in receipts)


def test_demo_task_runs_end_to_end_on_cometbft(tmp_path: Path):
    # Arrange: the demo's own network (a fresh one), before the module's network starts
    require_bft_binaries()
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
    wait_finalized(urls, max(start) + 3, timeout=60.0)  # type: ignore[type-var]
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
    tx_hash = send_transfer(bft_network, urls[index], f"edge-{index + 1}")
    # Assert
    _assert_final_everywhere(urls, tx_hash)



def _kill_validator_4(info: NetworkInfo) -> None:
    """SIGKILLs both processes of validator-4 (no graceful shutdown)."""
    comet = load_bft(info.dir).validators[3]
    execution = [v for v in load_network(info.dir).validators if v.name == "validator-4"][0]
    sigkill(comet.pid, comet.home)
    sigkill(execution.pid, execution.datadir)


def test_kill_one_of_four_blocks_keep_being_finalized(bft_network: NetworkInfo):
    # Arrange: SIGKILL both processes of validator-4
    comet = load_bft(bft_network.dir).validators[3]
    _kill_validator_4(bft_network)
    survivors = bft_network.http_urls[:3]
    before = min(finalized_number(u) or 0 for u in survivors)
    # Act
    wait_finalized(survivors, before + 3, timeout=30.0)
    tx_hash = send_transfer(bft_network, survivors[1], "publisher")
    # Assert
    _assert_final_everywhere(survivors, tx_hash)
    assert not is_running(comet.pid, comet.home)


def test_killed_validator_restarts_catches_up_and_serves_again(bft_network: NetworkInfo):
    # Arrange: validator-4 killed (again, if the test above did not run first)
    _kill_validator_4(bft_network)
    urls = bft_network.http_urls
    wait_finalized(urls[:3], (finalized_number(urls[0]) or 0) + 3, timeout=30.0)
    # Act: restart it; its application imports every block it missed
    bft_restart_validators(bft_network.dir, ["validator-4"], tie_to_caller=True)
    target = finalized_number(urls[0]) or 0
    wait_finalized(urls, target, timeout=90.0)
    tx_hash = send_transfer(bft_network, urls[3], "aggregator")
    # Assert: same finalized chain on all four, and a tx sent to it is final everywhere
    assert len({_block(u, target)["hash"] for u in urls}) == 1
    _assert_final_everywhere(urls, tx_hash)
