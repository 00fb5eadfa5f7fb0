"""Aggregator: a real ``fednode aggregate`` process killed mid-round and restarted, on geth.

One heart task (FedAdam, so the server moments must be replayed from the ledger), 3 versions,
4 edges training on the UCI hospitals. The aggregator process dies three times:

1. after it read round 1's updates (crash hook ``after_read:1``);
2. after it built version 2, before it signed its commit (``after_build:2``);
3. SIGKILLed while its commit of version 2 is in flight: two validators are down, so sealing
   has halted and the transaction waits in the pool of the validator it was sent to.

The fourth process starts while that commit is still pending. It must wait for it, not send a
second commit (which would revert once the first lands), and then finish the task. Checked:
the task finishes, every version is committed exactly once (3 commits, 3 transactions from the
aggregator account in total), the digests equal an uninterrupted run's on the same updates, and
the audit passes.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import pytest

from fednode.aggregator.crash import CRASH_ENV, CRASH_EXIT_CODE
from fednode.aggregator.round import run_round
from fednode.auditor.replay import verify_task
from fednode.chain.connect import open_ledger
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import decode_params, encode_params
from fednode.device.data import load_heart_disease, normalize, normalizer_from_stats
from fednode.device.normalization import combine_feature_stats, compute_feature_stats
from fednode.device.train import train_local
from fednode.network import load_network
from fednode.network.node import rpc_call
from fednode.tasks import heart_task_spec, initial_payload
from fednode.types import TaskState
from tests.chainkit import (
    block_height,
    deployed_geth_network,
    kill_validators,
    restart_validators,
    wait_for_height,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = heart_task_spec(normalization_task=0, rounds=3, server_optimizer="adam",
                       server_learning_rate=0.1)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def network(geth_binary: Path, tmp_path: Path) -> Iterator[Path]:
    """A fresh deployed 4-validator network in ``tmp_path/net``, always torn down."""
    del geth_binary
    with deployed_geth_network(tmp_path / "net") as directory:
        yield directory


@pytest.fixture(scope="module")
def sites():
    raw = load_heart_disease()
    norm = normalizer_from_stats(combine_feature_stats([compute_feature_stats(s.x_train)
                                                        for s in raw]))
    return [dataclasses.replace(s, x_train=normalize(s.x_train, norm)) for s in raw]


def _submit_round(edges, task_id: int, sites, version: int) -> None:
    """Each hospital trains on the latest global model and its edge submits the delta."""
    latest = edges[0].read_global_models(task_id)[-1]
    assert latest.version == version
    params = decode_params(latest.payload)

    def submit(index: int) -> int:
        key = jax.random.fold_in(jax.random.key(version), index)
        update = train_local(params, sites[index].train, key=key, spec=SPEC)
        return edges[index].submit_update(task_id, version, encode_params(update.delta),
                                          num_examples=update.num_examples)

    with ThreadPoolExecutor(len(edges)) as pool:
        list(pool.map(submit, range(len(edges))))


def _start_aggregator(network: Path, task_id: int, log: Path, *, crash: str = ""):
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    if crash:
        env[CRASH_ENV] = crash
    command = [sys.executable, "-m", "fednode.cli.main", "aggregate", "--network-dir",
               str(network), "--task", str(task_id), "--timeout", "300"]
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_for(condition, what: str, *, timeout: float = 240.0, process=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"aggregator exited with {process.returncode} while waiting for {what}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _nonce(url: str, address: str, block: str) -> int:
    return int(rpc_call(url, "eth_getTransactionCount", [address, block], timeout=10.0), 16)


def _wait_until_sealing_halts(url: str) -> int:
    """Waits until ``url`` sees no new block for 4 s (2 of 4 Clique signers are down)."""
    while True:
        height = block_height(url)
        time.sleep(4.0)
        if block_height(url) == height:
            return height


def _uninterrupted_digests(ledger, task_id: int) -> list[bytes]:
    """An uninterrupted aggregator fed the same payloads, in memory."""
    updates = ledger.read_updates(task_id)
    memory = InMemoryLedger()
    edges = sorted({u.edge for u in updates})
    for index, edge in enumerate(edges):
        memory.register_edge(edge, f"0x{index + 100:040x}", f"edge-{index + 1}")
    memory.grant_role(PUBLISHER_ROLE, "0x" + "a" * 40)
    memory.grant_role(AGGREGATOR_ROLE, "0x" + "b" * 40)
    initial = ledger.read_global_models(task_id)[0].payload
    memory_task = memory.as_sender("0x" + "a" * 40).publish_task(SPEC, initial)
    for version in range(SPEC.rounds):
        for u in (u for u in updates if u.base_version == version):
            memory.as_sender(u.edge).submit_update(memory_task, version, u.payload,
                                                   num_examples=u.num_examples)
        run_round(memory.as_sender("0x" + "b" * 40), memory_task, timeout=1, poll=0.01)
    return [r.digest for r in memory.read_global_models(memory_task)]


def test_killed_and_restarted_aggregator_commits_every_version_once(network, sites, tmp_path):
    # Arrange
    info = load_network(network)
    url = info.http_urls[0]  # the aggregator's validator (``--node 0``)
    aggregator = info.accounts["aggregator"].address
    publisher = open_ledger(network, "publisher")
    task_id = publisher.publish_task(SPEC, initial_payload(SPEC, key=jax.random.key(0)))
    edges = [open_ledger(network, f"edge-{i + 1}", node=i % 2) for i in range(4)]
    auditor = open_ledger(network, "auditor", node=1)
    wait_for_height(info.http_urls[1], block_height(url))  # node 1's edges estimate on it

    def latest() -> int:
        return auditor.latest_version(task_id)

    def everywhere(version: int) -> bool:  # the edges train next from their own validators
        views = (auditor, *edges)
        return all(ledger.read_global_models(task_id)[-1].version == version for ledger in views)

    # Act 1: dies right after reading round 1's updates
    _submit_round(edges, task_id, sites, 0)
    first = _start_aggregator(network, task_id, tmp_path / "aggregator-1.log",
                              crash="after_read:1")
    assert first.wait(240) == CRASH_EXIT_CODE and latest() == 0
    # Act 2: commits version 1, dies after building version 2
    second = _start_aggregator(network, task_id, tmp_path / "aggregator-2.log",
                               crash="after_build:2")
    _wait_for(lambda: everywhere(1), "version 1 on every validator", process=second)
    _submit_round(edges, task_id, sites, 1)
    assert second.wait(240) == CRASH_EXIT_CODE and latest() == 1
    # Act 3: sealing halts; SIGKILLed once its commit of version 2 is in the pool
    kill_validators(network, [2, 3])
    halted_at = _wait_until_sealing_halts(url)
    third = _start_aggregator(network, task_id, tmp_path / "aggregator-3.log")
    _wait_for(lambda: _nonce(url, aggregator, "pending") > _nonce(url, aggregator, "latest"),
              "the commit transaction in the pool", process=third)
    third.send_signal(signal.SIGKILL)
    third.wait(30)
    in_flight = _nonce(url, aggregator, "pending") - _nonce(url, aggregator, "latest")
    # Act 4: restarted while that commit is pending; then the chain comes back
    fourth_log = tmp_path / "aggregator-4.log"
    fourth = _start_aggregator(network, task_id, fourth_log)
    _wait_for(lambda: "waiting for 1 transaction(s)" in fourth_log.read_text(),
              "the restarted aggregator to wait for the pending commit", process=fourth)
    stalled = block_height(url) == halted_at and latest() == 1
    restart_validators(network, [2, 3])
    _wait_for(lambda: everywhere(2), "version 2 from the killed run's commit on every validator",
              process=fourth)
    _submit_round(edges, task_id, sites, 2)
    assert fourth.wait(300) == 0, fourth_log.read_text()
    # Assert
    wait_for_height(info.http_urls[1], block_height(url))
    records = auditor.read_global_models(task_id)
    commits = auditor.read_commits(task_id)
    assert in_flight == 1 and stalled
    assert auditor.get_task(task_id).state == TaskState.FINISHED
    assert [(c.version, c.aggregator) for c in commits] == [(v, aggregator) for v in (1, 2, 3)]
    assert _nonce(url, aggregator, "latest") == 3  # 3 commits in all: none twice, none reverted
    assert [r.digest for r in records] == _uninterrupted_digests(auditor, task_id)
    assert verify_task(auditor, task_id).ok
