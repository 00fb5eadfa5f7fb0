"""Chain: validator faults on real geth Clique validators (each test has its own 4-node network).

* 1 of 4 validators SIGKILLed mid-task: 3 signers still seal (Clique needs floor(N/2)+1), the
  task finishes and every update that got a receipt is aggregated exactly once.
* 2 of 4 SIGKILLed: sealing halts; edge servers keep accepting device updates and queue them;
  once the two come back everything drains, each update on chain exactly once.
* all 4 SIGKILLed and the network restarted (``network_up`` on the same folder): the chain
  height and every committed update survive (archive gc mode); blocks rewound are counted.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
import pytest

from edge_server.service import EdgeServer
from fednode.aggregator.round import run_round
from fednode.auditor.replay import verify_task
from fednode.chain.connect import open_ledger
from fednode.codec import encode_params
from fednode.network import NetworkInfo, load_network, network_up
from fednode.network.node import rpc_call
from fednode.site.device_client import EdgeClient
from fednode.tasks import initial_payload
from fednode.types import TaskSpec, TaskState
from tests.chainkit import (
    block_height,
    deployed_geth_network,
    kill_validators,
    restart_validators,
    start_edge_with_device,
    wait_for_height,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = TaskSpec(name="faults", data_schema="s", num_features=2, rounds=3, min_updates=4)


@pytest.fixture
def network(geth_binary: Path, tmp_path: Path) -> Iterator[Path]:
    """A fresh deployed 4-validator network in ``tmp_path/net``, always torn down."""
    del geth_binary
    with deployed_geth_network(tmp_path / "net") as directory:
        yield directory


def _block_hash(url: str, number: int) -> str:
    return str(rpc_call(url, "eth_getBlockByNumber", [hex(number), False], timeout=10.0)["hash"])


def _delta(edge_index: int, version: int) -> dict:
    fill = np.float32(0.01 * (edge_index + 1) + 0.001 * version)
    return {"output": {"bias": np.full((1,), fill, np.float32),
                       "kernel": np.full((2, 1), fill, np.float32)}}


def _publish(directory: Path) -> int:
    """Publishes the task and waits until every validator holds it (edges estimate their
    submissions on their own validators)."""
    publisher = open_ledger(directory, "publisher", node=0)
    task_id = publisher.publish_task(SPEC, initial_payload(SPEC, key=jax.random.key(0)))
    info = load_network(directory)
    _catch_up(info, block_height(info.http_urls[0]), nodes=len(info.http_urls))
    return task_id


def _submit_all(edges, task_id: int, version: int) -> list[int]:
    def submit(indexed):
        index, edge = indexed
        return edge.submit_update(task_id, version, encode_params(_delta(index, version)),
                                  num_examples=10 + index)

    with ThreadPoolExecutor(len(edges)) as pool:
        return list(pool.map(submit, enumerate(edges)))


def _catch_up(info: NetworkInfo, height: int, *, nodes: int = 3) -> None:
    """Waits until validators 1..``nodes`` hold what validator 1 wrote (an edge estimates its
    transaction on its own validator, which may not have imported the block yet)."""
    for url in info.http_urls[:nodes]:
        wait_for_height(url, height)


def test_one_of_four_validators_killed_mid_task_loses_nothing(network: Path):
    # Arrange: edges 1-4 submit through validators 1-3 (edge-4's operator fails over)
    info = load_network(network)
    task_id = _publish(network)
    edges = [open_ledger(network, f"edge-{i + 1}", node=min(i, 2)) for i in range(4)]
    aggregator = open_ledger(network, "aggregator", node=0)
    accepted: list[int] = []
    # Act
    accepted += _submit_all(edges, task_id, 0)
    run_round(aggregator, task_id, timeout=180)
    _catch_up(info, block_height(info.http_urls[0]))
    with ThreadPoolExecutor(1) as pool:  # validator-4 dies while round 2 is being submitted
        in_flight = pool.submit(_submit_all, edges, task_id, 1)
        kill_validators(network, [3])
        accepted += in_flight.result()
    height = block_height(info.http_urls[0])
    run_round(aggregator, task_id, timeout=180)
    _catch_up(info, block_height(info.http_urls[0]))
    accepted += _submit_all(edges, task_id, 2)
    run_round(aggregator, task_id, timeout=180)
    # Assert
    ledger = open_ledger(network, "auditor", node=1)
    records = ledger.read_global_models(task_id)
    aggregated = [i for r in records for i in r.update_ids]
    assert ledger.get_task(task_id).state == TaskState.FINISHED
    assert sorted(aggregated) == sorted(accepted) and len(set(aggregated)) == 12
    assert block_height(info.http_urls[0]) > height  # still sealing with 3 of 4
    assert verify_task(ledger, task_id).ok


@contextlib.contextmanager
def _edge_servers(
    network: Path, work: Path, count: int
) -> Iterator[list[tuple[EdgeServer, EdgeClient]]]:
    started = []
    try:
        for index in range(count):
            server, client, _ = start_edge_with_device(network, work, index, node=index % 2)
            started.append((server, client))
        yield started
    finally:
        for server, _ in started:
            server.stop()


def test_two_of_four_killed_halts_sealing_and_edges_queue_until_restart(network: Path, tmp_path):
    # Arrange: edges talk to validators 1 and 2, which stay up
    info = load_network(network)
    task_id = _publish(network)
    url = info.http_urls[0]
    with _edge_servers(network, tmp_path, 4) as edges:
        # Act 1: half the signers die; the chain stops
        kill_validators(network, [2, 3])
        time.sleep(4.0)  # a signer may still seal its one allowed block
        halted_at = block_height(url)
        time.sleep(6.0)
        stalled = block_height(url)
        refs = [client.post_update(task_id, 0, _delta(i, 0), num_examples=10 + i)
                for i, (_, client) in enumerate(edges)]
        time.sleep(3.0)
        queued = [client.update_status(ref)["status"]
                  for ref, (_, client) in zip(refs, edges, strict=True)]
        # Act 2: they come back; the queue drains
        restart_validators(network, [2, 3])
        statuses = [client.wait_submitted(ref, timeout=180)
                    for ref, (_, client) in zip(refs, edges, strict=True)]
    # Assert: a restarted validator catches up with the ones that stayed up
    ledger = open_ledger(network, "auditor", node=2)
    deadline = time.monotonic() + 120
    while len(updates := ledger.read_updates(task_id)) < 4 and time.monotonic() < deadline:
        time.sleep(1.0)
    assert stalled == halted_at  # no block for 6 s with 2 of 4 signers
    assert all(status != "committed" for status in queued), queued
    assert sorted(s["chain_update_id"] for s in statuses) == [u.update_id for u in updates]
    assert len(updates) == 4 and len({u.edge for u in updates}) == 4
    assert block_height(url) > stalled


def test_sigkill_of_every_validator_keeps_height_and_committed_updates(network: Path):
    # Arrange: one committed version, a few blocks on top
    info = load_network(network)
    task_id = _publish(network)
    edges = [open_ledger(network, f"edge-{i + 1}", node=i) for i in range(4)]
    accepted = _submit_all(edges, task_id, 0)
    record = run_round(open_ledger(network, "aggregator", node=0), task_id, timeout=180).record
    wait_for_height(info.http_urls[0], record.block_number + 3)
    before = open_ledger(network, "auditor", node=0).read_updates(task_id)
    killed_at = min(block_height(u) for u in info.http_urls)
    hashes = {n: _block_hash(info.http_urls[0], n) for n in range(killed_at - 5, killed_at + 1)}
    # Act
    kill_validators(network, [0, 1, 2, 3])
    network_up(network, timeout=180.0, tie_to_caller=True)
    restarted: NetworkInfo = load_network(network)
    heads = [block_height(u) for u in restarted.http_urls]
    # Assert
    auditor = open_ledger(network, "auditor", node=1)
    after = auditor.read_updates(task_id)
    rewound = sum(_block_hash(restarted.http_urls[1], n) != h for n, h in hashes.items())
    assert min(heads) >= killed_at
    assert rewound == 0
    assert [(u.update_id, u.digest) for u in after] == [(u.update_id, u.digest) for u in before]
    assert sorted(u.update_id for u in after) == sorted(accepted)
    assert auditor.read_global_models(task_id)[1].digest == record.digest
    assert verify_task(auditor, task_id).ok
