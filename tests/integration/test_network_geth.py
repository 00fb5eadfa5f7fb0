"""Chain: a local consortium of real geth 1.13 Clique validators comes up, seals, peers, stops."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from eth_account import Account

from fednode.errors import NetworkError
from fednode.network import (
    NetworkInfo,
    load_network,
    network_down,
    network_status,
    network_up,
    read_key_file,
)
from fednode.network.node import is_running, rpc_call
from tests.chainkit import block_height, running_geth_network

pytestmark = pytest.mark.integration


def _wait_for_receipt(url: str, tx_hash: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipt = rpc_call(url, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return receipt
        time.sleep(0.25)
    raise AssertionError(f"no receipt for {tx_hash} after {timeout} s")


# --- networks of their own, in tmp_path (run before the shared network starts) ---


def test_down_stops_every_validator_gracefully(geth_binary, tmp_path):
    # Arrange
    info = network_up(tmp_path / "net", validators=4, tie_to_caller=True)
    pids = [v.pid for v in info.validators]

    # Act
    results = network_down(tmp_path / "net")

    # Assert
    assert [r.outcome for r in results] == ["stopped"] * 4
    assert not any(is_running(v.pid, v.datadir) for v in info.validators)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert [v.pid for v in load_network(tmp_path / "net").validators] == [None] * 4


def test_restart_resumes_the_chain_where_it_stopped(geth_binary, tmp_path):
    # Arrange
    with running_geth_network(tmp_path / "net", validators=1) as first:
        stopped_at = block_height(first.http_urls[0])

    # Act
    with running_geth_network(tmp_path / "net", validators=None) as second:
        height = block_height(second.http_urls[0])

    # Assert
    assert second.signers == first.signers and second.chain_id == first.chain_id
    assert height > stopped_at


def test_restart_refuses_settings_that_contradict_the_folder(geth_binary, tmp_path):
    # Arrange
    with running_geth_network(tmp_path / "net", validators=1):
        pass

    # Act / Assert
    with pytest.raises(NetworkError, match="validators=2"):
        network_up(tmp_path / "net", validators=2)


def test_a_validator_that_dies_at_start_up_fails_with_its_log(geth_binary, tmp_path, monkeypatch):
    # Arrange: a geth that initialises datadirs but dies when started as a node
    fake = tmp_path / "geth"
    fake.write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do case "$a" in init|version) exec {geth_binary} "$@";; esac; done\n'
        'echo "Fatal: simulated start-up failure" >&2; exit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("FEDNODE_GETH", str(fake))

    # Act
    with pytest.raises(NetworkError) as failure:
        network_up(tmp_path / "net", validators=2, timeout=30.0)

    # Assert
    assert "exited during start-up" in str(failure.value)
    assert "Fatal: simulated start-up failure" in str(failure.value)
    assert [v.pid for v in load_network(tmp_path / "net").validators] == [None, None]


# --- the shared session network (tests/integration/conftest.py) ---


def test_validators_seal_new_blocks(geth_network: NetworkInfo):
    # Arrange
    before = [block_height(url) for url in geth_network.http_urls]

    # Act
    time.sleep(3 * geth_network.period + 1)
    after = [block_height(url) for url in geth_network.http_urls]

    # Assert
    assert all(b > a for a, b in zip(before, after, strict=True))


def test_every_validator_peers_with_all_others(geth_network: NetworkInfo):
    # Act
    peers = [len(rpc_call(url, "admin_peers")) for url in geth_network.ipc_paths]

    # Assert
    assert peers == [3, 3, 3, 3]


def test_every_validator_sees_all_four_signers(geth_network: NetworkInfo):
    # Arrange
    expected = sorted(s.lower() for s in geth_network.signers)

    # Act
    signer_sets = [rpc_call(url, "clique_getSigners", ["latest"]) for url in geth_network.http_urls]

    # Assert
    assert len(expected) == 4
    assert all(sorted(s) == expected for s in signer_sets)


def test_status_reports_every_validator_alive_and_in_the_signer_set(geth_network: NetworkInfo):
    # Act
    statuses = network_status(geth_network.dir)

    # Assert
    assert [s.name for s in statuses] == [f"validator-{i}" for i in range(1, 5)]
    assert all(s.alive and s.error is None and s.peers == 3 for s in statuses)
    assert all(s.signers and s.signer.lower() in s.signers for s in statuses)


def test_up_refuses_a_folder_whose_network_is_running(geth_network: NetworkInfo):
    # Act / Assert
    with pytest.raises(NetworkError, match="already running"):
        network_up(geth_network.dir)


def test_consortium_accounts_are_prefunded_with_owner_only_keys(geth_network: NetworkInfo):
    # Arrange
    url = geth_network.http_urls[0]

    # Act
    balances = {
        name: int(rpc_call(url, "eth_getBalance", [acct.address, "latest"]), 16)
        for name, acct in geth_network.accounts.items()
    }

    # Assert
    assert sorted(balances) == sorted(
        ["admin", "publisher", "aggregator", "auditor", "edge-1", "edge-2", "edge-3", "edge-4"]
    )
    assert all(balance >= 10**24 // 2 for balance in balances.values())
    for name, acct in geth_network.accounts.items():
        key_file = geth_network.key_file(name)
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        assert Account.from_key(read_key_file(key_file)).address == acct.address


def test_a_block_takes_several_near_limit_calldata_transactions(geth_network: NetworkInfo):
    # Arrange: three 120 KiB calldata transactions (geth's limit is 128 KiB per transaction)
    url = geth_network.http_urls[1]
    sender = Account.from_key(read_key_file(geth_network.key_file("auditor")))
    nonce = int(rpc_call(url, "eth_getTransactionCount", [sender.address, "pending"]), 16)
    payload = bytes(range(1, 256)) * (120 * 1024 // 255)
    txs = [
        sender.sign_transaction(
            {
                "chainId": geth_network.chain_id,
                "nonce": nonce + i,
                "to": sender.address,
                "value": 0,
                "data": payload,
                "gas": 21_000 + 16 * len(payload) + 10_000,
                "maxFeePerGas": 20 * 10**9,
                "maxPriorityFeePerGas": 2 * 10**9,
                "type": 2,
            }
        )
        for i in range(3)
    ]

    # Act
    hashes = [
        rpc_call(url, "eth_sendRawTransaction", ["0x" + bytes(tx.raw_transaction).hex()])
        for tx in txs
    ]
    receipts = [_wait_for_receipt(url, h) for h in hashes]

    # Assert
    assert all(int(r["status"], 16) == 1 for r in receipts)
    block = rpc_call(url, "eth_getBlockByNumber", [receipts[0]["blockNumber"], False])
    assert int(block["gasLimit"], 16) >= geth_network.gas_limit * 0.99
