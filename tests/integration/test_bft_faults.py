"""Consensus: the fault matrix of the CometBFT engine on 4 real validators (issue 15's Proof).

One deployed network serves the whole module (a network start costs tens of seconds on 2
shared cores); each test leaves it with 4 validators running, every fault being undone by a
restart that the test itself exercises:

* one validator's application proposes an invalid execution payload (the test-only
  ``fednode-bft --fault-propose-invalid``: a corrupted state root, every derived rule intact):
  the three honest validators reject it (geth's ``engine_newPayloadV3`` answers INVALID), no
  such block reaches any chain, and the chain goes on with the other proposers;
* 2 of 4 validators SIGKILLed: no block is finalized any more (CometBFT needs more than 2/3 of
  the voting power); the edge servers keep accepting device updates and their signed
  transactions wait in the surviving validators' pools; the two restarted, the chain resumes
  and every acknowledged update is on chain exactly once;
* all 4 SIGKILLed and the network brought up again on the same folder: the finalized head and
  every acknowledged update are still there, block for block.

Not here: the 2+2 partition (it needs the validators in network namespaces, see
tests/integration/test_netns_federation.py); 1 of 4 killed is in test_bft_engine.py.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jax
import numpy as np
import pytest

from edge_server.service import EdgeServer
from fednode.chain.connect import open_ledger
from fednode.codec import encode_params
from fednode.network.bft import bft_network_down, bft_network_status, bft_network_up, load_bft
from fednode.network.bft.manager import bft_restart_validators, finalized_number
from fednode.network.info import load_network
from fednode.network.node import log_tail, rpc_call
from fednode.network.process import is_running
from fednode.site.device_client import EdgeClient
from fednode.tasks import initial_payload
from fednode.types import TaskSpec
from tests.chainkit import start_edge_with_device
from tests.integration.bft_kit import (
    require_bft_binaries,
    send_transfer,
    sigkill,
    wait_finalized,
    wait_receipt,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = TaskSpec(name="bft-faults", data_schema="s", num_features=2, rounds=3, min_updates=4)
FAULT_FLAG = "--fault-propose-invalid"



@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """4 validators with the contracts deployed, shared by the module, stopped at its end."""
    require_bft_binaries()
    from fednode.cli.chain_cmd import deploy_network

    directory = tmp_path_factory.mktemp("bft-faults") / "net"
    bft_network_up(directory, validators=4, timeout=180.0, tie_to_caller=True)
    try:
        deploy_network(directory)
        yield directory
    finally:
        bft_network_down(directory)


# --- helpers --------------------------------------------------------------------------------


def _urls(directory: Path) -> list[str]:
    return load_network(directory).http_urls  # ports may change when the network restarts


def _finalized(urls: list[str]) -> list[int | None]:
    return [finalized_number(u) for u in urls]



def _block_hash(url: str, number: int) -> str | None:
    block = rpc_call(url, "eth_getBlockByNumber", [hex(number), False], timeout=10.0)
    return None if block is None else str(block["hash"])



def _kill(directory: Path, names: list[str]) -> None:
    """SIGKILLs both processes (fednode-bft, then geth) of the validators ``names``."""
    for comet in load_bft(directory).validators:
        if comet.name in names:
            sigkill(comet.pid, comet.home)
    for geth in load_network(directory).validators:
        if geth.name in names:
            sigkill(geth.pid, geth.datadir)




def _delta(edge_index: int, version: int) -> dict:
    fill = np.float32(0.01 * (edge_index + 1) + 0.001 * version)
    return {"output": {"bias": np.full((1,), fill, np.float32),
                       "kernel": np.full((2, 1), fill, np.float32)}}


def _publish(directory: Path) -> int:
    """Publishes a task through validator 1 and waits until every validator finalized it and
    two blocks on top (an edge reads the task at its confirmation depth)."""
    publisher = open_ledger(directory, "publisher", node=0)
    task_id = publisher.publish_task(SPEC, initial_payload(SPEC, key=jax.random.key(0)))
    urls = _urls(directory)
    wait_finalized(urls, (finalized_number(urls[0]) or 0) + 2, timeout=90.0)
    return task_id


# --- an invalid proposer --------------------------------------------------------------------

_HASH = re.compile(r"hash=(0x[0-9a-f]{64})")


def _fault_hashes(log: Path) -> set[str]:
    """The execution blocks a faulty validator proposed (its TEST FAULT log lines)."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return {m.group(1) for line in lines if "TEST FAULT: proposing" in line
            for m in [_HASH.search(line)] if m}


def _rejected(log: Path, hashes: set[str]) -> set[str]:
    """Which of ``hashes`` an honest validator's application rejected in ProcessProposal
    because its geth found the payload INVALID (not for a rule it derives alone)."""
    text = log.read_text(encoding="utf-8", errors="replace")
    rejections = [line for line in text.splitlines()
                  if "rejecting proposal" in line and "status INVALID" in line]
    return {h for h in hashes if any(h in line for line in rejections)}


def _proposers(rpc_url: str, heights: range) -> dict[int, str]:
    """CometBFT's proposer address of each committed height."""
    found = {}
    for height in heights:
        reply = httpx.get(f"{rpc_url}/block", params={"height": height}, timeout=10.0).json()
        found[height] = reply["result"]["block"]["header"]["proposer_address"].upper()
    return found


def test_invalid_payload_from_one_proposer_is_rejected_and_the_chain_goes_on(network: Path):
    # Arrange: validator-4's application turns faulty (restarted with the test-only flag)
    _kill(network, ["validator-4"])
    bft_restart_validators(network, ["validator-4"], tie_to_caller=True,
                           extra_flags=(FAULT_FLAG,))
    info, bft = load_network(network), load_bft(network)
    faulty, honest = bft.validators[3], bft.validators[:3]
    time.sleep(1.0)  # a binary without the flag exits at once on it
    assert is_running(faulty.pid, faulty.home), log_tail(faulty.log_path, 20)
    wait_finalized(info.http_urls, (finalized_number(info.http_urls[0]) or 0) + 1, timeout=120)
    start = int(httpx.get(f"{honest[0].rpc_url}/status", timeout=10.0)
                .json()["result"]["sync_info"]["latest_block_height"])
    # Act: 12 heights go by, in which validator-4 is the first proposer of about 3; meanwhile
    # a transfer is sent to the faulty validator's own geth
    tx_hash = send_transfer(info, info.http_urls[3], "edge-4")
    wait_finalized(info.http_urls, (finalized_number(info.http_urls[0]) or 0) + 12, timeout=180)
    end = int(httpx.get(f"{honest[0].rpc_url}/status", timeout=10.0)
              .json()["result"]["sync_info"]["latest_block_height"])
    # Assert: it did propose corrupted blocks, every honest validator rejected them, none is on
    # any chain, every committed block since has another proposer, and the chain went on
    bad = _fault_hashes(faulty.log_path)
    assert bad, f"validator-4 never proposed (is {FAULT_FLAG} in the binary?)"
    for node in honest:
        assert _rejected(node.log_path, bad), f"{node.name} did not reject {sorted(bad)}"
    for url in info.http_urls:
        assert all(rpc_call(url, "eth_getBlockByHash", [h, False], timeout=10.0) is None
                   for h in bad)
    proposers = _proposers(honest[0].rpc_url, range(start + 1, end + 1))
    assert faulty.address.upper() not in proposers.values()
    assert len(set(proposers.values())) == 3
    receipt = wait_receipt(info.http_urls[0], tx_hash, timeout=90.0)
    number = int(receipt["blockNumber"], 16)
    wait_finalized(info.http_urls, number, timeout=90.0)
    assert len({_block_hash(u, number) for u in info.http_urls}) == 1
    assert receipt["status"] == "0x1"


# --- 2 of 4 down: the chain halts, the edges queue ------------------------------------------


@contextlib.contextmanager
def _edge_servers(network: Path, work: Path) -> Iterator[list[tuple[EdgeServer, EdgeClient]]]:
    """edge-1..edge-4 with one device each, on validators 1 and 2 (the ones that stay up)."""
    started = []
    try:
        for index in range(4):
            server, client, _ = start_edge_with_device(network, work, index, node=index % 2)
            started.append((server, client))
        yield started
    finally:
        for server, _ in started:
            server.stop()


def _pending(url: str) -> int:
    return int(rpc_call(url, "txpool_status", [], timeout=10.0)["pending"], 16)


def _wait_pending(urls: list[str], count: int, *, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (pending := [_pending(u) for u in urls]) and min(pending) < count:
        assert time.monotonic() < deadline, f"pools hold {pending}, wanted {count} each"
        time.sleep(0.5)
    return pending


def test_two_of_four_killed_halts_edges_queue_and_restart_lands_each_update_once(
    network: Path, tmp_path: Path
):
    # Arrange
    task_id = _publish(network)
    urls = _urls(network)
    with _edge_servers(network, tmp_path) as edges:
        # Act 1: half the voting power dies; nothing more is finalized
        _kill(network, ["validator-3", "validator-4"])
        time.sleep(2.0)  # a height whose votes were already cast may still commit
        halted_at = _finalized(urls[:2])
        refs = [client.post_update(task_id, 0, _delta(i, 0), num_examples=10 + i)
                for i, (_, client) in enumerate(edges)]
        pooled = _wait_pending(urls[:2], 4)  # the edges' signed transactions, gossiped
        time.sleep(5.0)
        stalled = _finalized(urls[:2])
        heads = [int(rpc_call(u, "eth_blockNumber", timeout=10.0), 16) for u in urls[:2]]
        queued = [client.update_status(ref)["status"]
                  for ref, (_, client) in zip(refs, edges, strict=True)]
        # Act 2: the two come back; the chain resumes and the queue drains
        bft_restart_validators(network, ["validator-3", "validator-4"], tie_to_caller=True)
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda pair: pair[1][1].wait_submitted(pair[0], timeout=180),
                                     zip(refs, edges, strict=True)))
    # Assert: halted (not one block) while 2 of 4 were down; each update on chain exactly once,
    # read from a restarted validator
    assert stalled == halted_at and heads == halted_at, (halted_at, stalled, heads)
    assert all(status != "committed" for status in queued), queued
    assert min(pooled) >= 4
    wait_finalized(urls, max(h or 0 for h in stalled) + 2, timeout=120)
    updates = open_ledger(network, "auditor", node=2).read_updates(task_id)
    assert sorted(s["chain_update_id"] for s in statuses) == sorted(u.update_id for u in updates)
    assert len(updates) == 4 and len({u.edge for u in updates}) == 4
    assert all(_pending(u) == 0 for u in urls[:2])


# --- all 4 down: same head, nothing lost ----------------------------------------------------


def _submit_all(directory: Path, task_id: int) -> list[int]:
    edges = [open_ledger(directory, f"edge-{i + 1}", node=i) for i in range(4)]

    def submit(index: int) -> int:
        return edges[index].submit_update(task_id, 0, encode_params(_delta(index, 0)),
                                          num_examples=10 + index)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(submit, range(4)))


def test_kill_all_four_and_restart_keeps_the_finalized_head_and_every_update(network: Path):
    # Arrange: a task with 4 acknowledged updates (receipts), a few final blocks on top
    task_id = _publish(network)
    accepted = _submit_all(network, task_id)
    urls = _urls(network)
    wait_finalized(urls, (finalized_number(urls[0]) or 0) + 2, timeout=90.0)
    before = open_ledger(network, "auditor", node=0).read_updates(task_id)
    killed_at = min(h or 0 for h in _finalized(urls))
    hashes = {n: _block_hash(urls[0], n) for n in range(max(1, killed_at - 8), killed_at + 1)}
    # Act: SIGKILL all 8 processes, then `network up` on the same folder
    _kill(network, [f"validator-{i}" for i in range(1, 5)])
    bft_network_up(network, timeout=180.0, tie_to_caller=True)
    urls = _urls(network)
    wait_finalized(urls, killed_at + 1, timeout=120)
    # Assert: every validator holds the same blocks as before the crash, and every update
    after = open_ledger(network, "auditor", node=3).read_updates(task_id)
    for url in urls:
        assert {n: _block_hash(url, n) for n in hashes} == hashes, url
    assert sorted(u.update_id for u in after) == sorted(accepted)
    assert [(u.update_id, u.digest) for u in after] == [(u.update_id, u.digest) for u in before]
    status = bft_network_status(network)
    assert all(p["alive"] for p in status["processes"]) and len(status["processes"]) == 8
    assert [m["voting_power"] for m in status["validator_set"]["validators"]] == [10] * 4
