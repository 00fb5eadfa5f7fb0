"""Edge + Chain: an edge server and its validator partitioned away on real geth (issue 7).

Four hospitals, each an edge server on its own validator of a 4-node Clique network; the
devices fetch the global model from their edge, train the heart task and post signed deltas.
Validator 3 (and so the edge of Switzerland) is cut off from the other three for at least
``MIN_PARTITION_BLOCKS`` blocks of the majority's chain: every side drops the other from its
static peers with ``admin_removePeer`` and nobody re-dials (``tests.chainkit``). Its edge keeps
accepting device updates, which stay queued in the edge's outbox.

* async task (FedBuff, K = 3): the other three hospitals keep training, the aggregator keeps
  committing versions and the task converges. After healing, the isolated validator re-syncs
  to the majority's chain (a block it sealed alone is dropped: 1 of 4 signers may seal one
  block, then must wait for the others), the update queued during the partition is refused on
  chain as ``UpdateLedgerStaleBase`` and recorded so by the edge, and the edge's next update
  lands and is aggregated. Every edge's committed rows match the ledger one to one.
* sync task: the round waits for the missing edge; the aggregator's timeout ends it with a
  ``ChainTimeoutError`` naming task, version and k/n distinct edges; the task stays at that version,
  and after healing the queued update lands and the round completes with all four.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest

from edge_server.service import EdgeServer
from edge_server.store import UpdateStatus
from fednode.aggregator.round import run_round
from fednode.auditor.replay import verify_task
from fednode.chain.connect import open_ledger
from fednode.chain.web3_ledger import Web3Ledger
from fednode.codec import decode_params
from fednode.device import evaluate, pool_test_sets
from fednode.device.data import SiteData, load_heart_disease, normalize, normalizer_from_stats
from fednode.device.normalization import combine_feature_stats, compute_feature_stats
from fednode.device.train import train_local
from fednode.errors import ChainTimeoutError
from fednode.network import NetworkInfo, load_network
from fednode.network.node import rpc_call
from fednode.site.device_client import EdgeClient
from fednode.tasks import heart_task_spec, initial_payload
from fednode.types import TaskSpec, TaskState
from tests.chainkit import (
    block_height,
    deployed_geth_network,
    heal_partition,
    partition_validator,
    peer_keys,
    start_edge_with_device,
    wait_for_height,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

log = logging.getLogger(__name__)

CUT = 2
"""Index of the partitioned validator, of its edge (edge-3) and of its hospital (Switzerland)."""
MIN_PARTITION_BLOCKS = 10
SYNC_TIMEOUT_S = 15


@dataclasses.dataclass(frozen=True)
class Hospital:
    """One edge server on its own validator, its operator's ledger view and one device."""

    server: EdgeServer
    ledger: Web3Ledger
    client: EdgeClient
    site: SiteData
    url: str


@pytest.fixture(scope="module")
def sites() -> list[SiteData]:
    raw = load_heart_disease()
    norm = normalizer_from_stats(combine_feature_stats([compute_feature_stats(s.x_train)
                                                        for s in raw]))
    return [dataclasses.replace(s, x_train=normalize(s.x_train, norm),
                                x_test=normalize(s.x_test, norm)) for s in raw]


@pytest.fixture
def network(geth_binary: Path, tmp_path: Path) -> Iterator[Path]:
    """A fresh deployed 4-validator network in ``tmp_path/net``, always torn down."""
    del geth_binary
    with deployed_geth_network(tmp_path / "net") as directory:
        yield directory


@contextlib.contextmanager
def _hospitals(network: Path, work: Path, sites: list[SiteData]) -> Iterator[list[Hospital]]:
    info = load_network(network)
    started: list[Hospital] = []
    try:
        for index, site in enumerate(sites):
            server, client, ledger = start_edge_with_device(network, work, index, node=index)
            started.append(Hospital(server, ledger, client, site, info.http_urls[index]))
        yield started
    finally:
        for hospital in started:
            hospital.client.close()
            hospital.server.stop()


def _publish(network: Path, spec: TaskSpec) -> int:
    publisher = open_ledger(network, "publisher", node=0)
    task_id = publisher.publish_task(spec, initial_payload(spec, key=jax.random.key(0)))
    urls = load_network(network).http_urls  # every edge reads the task on its own validator
    for url in urls[1:]:
        wait_for_height(url, block_height(urls[0]))
    return task_id


def _post(
    hospital: Hospital, task_id: int, spec: TaskSpec, key: jax.Array, *, version: int
) -> str:
    """The device pulls global model ``version`` from its edge, trains and posts its delta.

    Waits until the edge's validator has imported that version (blocks reach the validators
    a moment apart), so a device never trains twice on the same base.
    """
    _wait_until(lambda: hospital.ledger.latest_version(task_id) >= version,
                f"version {version} on {hospital.server.config.name}")
    version, params = hospital.client.fetch_global(task_id, version)
    update = train_local(params, hospital.site.train, key=key, spec=spec)
    return hospital.client.post_update(task_id, version, update.delta, update.num_examples)


def _train_round(
    hospitals: list[Hospital], task_id: int, spec: TaskSpec, key: jax.Array, *, version: int
) -> list[dict]:
    """One update on ``version`` from each hospital's device, each on chain one block deep."""
    refs = [_post(h, task_id, spec, k, version=version)
            for h, k in zip(hospitals, jax.random.split(key, len(hospitals)), strict=True)]
    return [h.client.wait_submitted(ref, timeout=120)
            for h, ref in zip(hospitals, refs, strict=True)]


def _block_hash(url: str, number: int) -> str | None:
    block = rpc_call(url, "eth_getBlockByNumber", [hex(number), False], timeout=10.0)
    return None if block is None else str(block["hash"])


def _fork_blocks(cut_chain: dict[int, str | None], url: str) -> int:
    """How many of the cut validator's blocks (hashes by height, read before healing) the
    majority's chain at ``url`` does not hold: blocks it sealed alone, dropped on re-sync."""
    return sum(_block_hash(url, number) != block for number, block in cut_chain.items())


def _wait_until(check, what: str, *, timeout: float = 120.0, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)
    return result


def _wait_resynced(info: NetworkInfo, heights: range, ledgers: list[Web3Ledger], task_id: int):
    """Waits until the cut validator holds the majority's blocks at ``heights`` and the
    cut edge (``ledgers[CUT]``) reads the same latest version as the others."""
    cut, ref = info.http_urls[CUT], info.http_urls[0]
    _wait_until(lambda: all(_block_hash(cut, n) == _block_hash(ref, n) for n in heights),
                f"validator {CUT} to re-sync blocks {heights.start}..{heights.stop - 1}")
    _wait_until(lambda: len({ledger.latest_version(task_id) for ledger in ledgers}) == 1,
                "the cut edge to read the latest version")


def _settled(hospital: Hospital, ref: str) -> dict:
    status = hospital.client.update_status(ref)
    return status if status["status"] in ("committed", "failed") else {}


def _assert_store_matches_ledger(hospitals: list[Hospital], auditor: Web3Ledger, task_id: int):
    """Each edge's committed rows are its updates on the ledger, one to one; the rest failed
    with a recorded contract error and are not on the ledger."""
    on_chain = auditor.read_updates(task_id)
    assert len({u.update_id for u in on_chain}) == len(on_chain)
    for hospital in hospitals:
        rows = hospital.server.store.list_updates()
        mine = [u for u in on_chain if u.edge.lower() == hospital.ledger.sender.lower()]
        committed = [r for r in rows if r.status == UpdateStatus.COMMITTED]
        assert sorted((r.chain_update_id, r.digest) for r in committed) == sorted(
            (u.update_id, u.digest) for u in mine)
        for row in rows:
            assert row.status in (UpdateStatus.COMMITTED, UpdateStatus.FAILED), row
            if row.status == UpdateStatus.FAILED:
                assert row.error and row.error.startswith("UpdateLedger"), row.error
                assert row.digest not in {u.digest for u in mine}


def test_async_task_converges_while_an_edge_is_partitioned_and_its_queue_settles_once(
    network: Path, tmp_path: Path, sites: list[SiteData]
):
    # Arrange: an async FedBuff task, one version with all four hospitals
    spec = heart_task_spec(normalization_task=0, rounds=10, min_updates=3, mode="async",
                           max_staleness=1)
    info = load_network(network)
    task_id = _publish(network, spec)
    aggregator = open_ledger(network, "aggregator", node=0)
    keys = iter(jax.random.split(jax.random.key(0), 32))
    with _hospitals(network, tmp_path, sites) as hospitals:
        cut, live = hospitals[CUT], [h for i, h in enumerate(hospitals) if i != CUT]
        _train_round(hospitals, task_id, spec, next(keys), version=0)
        run_round(aggregator, task_id, timeout=120)
        _wait_until(lambda: cut.ledger.latest_version(task_id) == 1, "version 1 on the cut node")
        # Act 1: the partition; the cut edge accepts an update it cannot get on chain
        partition_validator(info, CUT)
        started = time.monotonic()
        majority_start, cut_start = block_height(info.http_urls[0]), block_height(cut.url)
        queued_ref = _post(cut, task_id, spec, next(keys), version=1)
        while (block_height(info.http_urls[0]) < majority_start + MIN_PARTITION_BLOCKS
               or aggregator.latest_version(task_id) < 1 + spec.max_staleness + 1):
            latest = aggregator.latest_version(task_id)
            _train_round(live, task_id, spec, next(keys), version=latest)
            run_round(aggregator, task_id, timeout=120)
            assert not peer_keys(info.ipc_paths[CUT]), "the cut validator found a peer"
        queued = cut.client.update_status(queued_ref)["status"]
        partition_blocks = block_height(info.http_urls[0]) - majority_start
        cut_end = block_height(cut.url)
        cut_chain = {n: _block_hash(cut.url, n) for n in range(cut_start - 3, cut_end + 1)}
        versions_during = aggregator.latest_version(task_id) - 1
        partition_s = time.monotonic() - started
        # Act 2: heal; the cut validator re-syncs and the edge's queue settles
        healed = time.monotonic()
        heal_partition(info, CUT)
        _wait_resynced(info, range(cut_start - 3, cut_end + 1), [h.ledger for h in hospitals],
                       task_id)
        resync_s = time.monotonic() - healed
        dropped = _fork_blocks(cut_chain, info.http_urls[0])
        refused = _wait_until(lambda: _settled(cut, queued_ref), "the queued update to settle")
        latest = aggregator.latest_version(task_id)
        rejoined = cut.client.wait_submitted(
            _post(cut, task_id, spec, next(keys), version=latest), timeout=120)
        while (task := aggregator.get_task(task_id)).state != TaskState.FINISHED:
            _train_round(live, task_id, spec, next(keys), version=task.latest_version)
            run_round(aggregator, task_id, timeout=120)
        # Assert
        auditor = open_ledger(network, "auditor", node=CUT)
        _assert_store_matches_ledger(hospitals, auditor, task_id)
    records = auditor.read_global_models(task_id)
    aggregated = [i for r in records for i in r.update_ids]
    final = decode_params(records[-1].payload)
    pooled = evaluate(final, *pool_test_sets(sites))
    log.info("async partition: %d majority blocks in %.1fs, %d versions committed meanwhile, "
             "cut validator's head grew %d block(s), %d of its blocks dropped on re-sync "
             "%.1fs after healing; queued update %s %s; accuracy %.3f AUC %.3f",
             partition_blocks, partition_s, versions_during, cut_end - cut_start, dropped,
             resync_s, refused["status"], refused["error"], pooled.accuracy, pooled.auc)
    assert queued in ("accepted", "signed", "sent")  # queued, not lost, during the partition
    assert partition_blocks >= MIN_PARTITION_BLOCKS and versions_during >= 2
    assert cut_end - cut_start <= 1  # 1 of 4 signers: at most one block alone
    assert refused["status"] == "failed" and refused["error"] == "UpdateLedgerStaleBase"
    assert aggregated.count(rejoined["chain_update_id"]) == 1
    assert len(aggregated) == len(set(aggregated))
    assert auditor.get_task(task_id).state == TaskState.FINISHED
    assert pooled.accuracy > 0.75 and np.isfinite(pooled.auc) and pooled.auc > 0.8
    assert verify_task(auditor, task_id).ok


def test_sync_round_times_out_clearly_while_an_edge_is_partitioned_then_completes(
    network: Path, tmp_path: Path, sites: list[SiteData]
):
    # Arrange: a sync task (all 4 hospitals per version), version 1 committed
    spec = heart_task_spec(normalization_task=0, rounds=2)
    info = load_network(network)
    task_id = _publish(network, spec)
    aggregator = open_ledger(network, "aggregator", node=0)
    keys = jax.random.split(jax.random.key(1), 4)
    with _hospitals(network, tmp_path, sites) as hospitals:
        cut, live = hospitals[CUT], [h for i, h in enumerate(hospitals) if i != CUT]
        _train_round(hospitals, task_id, spec, keys[0], version=0)
        run_round(aggregator, task_id, timeout=120)
        _wait_until(lambda: cut.ledger.latest_version(task_id) == 1, "version 1 on the cut node")
        # Act 1: partition; three of four updates arrive, the round times out
        partition_validator(info, CUT)
        started = time.monotonic()
        majority_start, cut_start = block_height(info.http_urls[0]), block_height(cut.url)
        queued_ref = _post(cut, task_id, spec, keys[1], version=1)
        _train_round(live, task_id, spec, keys[2], version=1)
        with pytest.raises(ChainTimeoutError) as timed_out:
            run_round(aggregator, task_id, timeout=SYNC_TIMEOUT_S)
        partition_end = majority_start + MIN_PARTITION_BLOCKS
        _wait_until(lambda: block_height(info.http_urls[0]) >= partition_end,
                    f"{MIN_PARTITION_BLOCKS} blocks of partition")
        during = aggregator.get_task(task_id)
        queued = cut.client.update_status(queued_ref)["status"]
        cut_end = block_height(cut.url)
        cut_chain = {n: _block_hash(cut.url, n) for n in range(cut_start - 3, cut_end + 1)}
        partition_blocks = block_height(info.http_urls[0]) - majority_start
        partition_s = time.monotonic() - started
        assert not peer_keys(info.ipc_paths[CUT]), "the cut validator found a peer"
        # Act 2: heal; the queued update lands and the round completes
        healed = time.monotonic()
        heal_partition(info, CUT)
        _wait_resynced(info, range(cut_start - 3, cut_end + 1), [h.ledger for h in hospitals],
                       task_id)
        resync_s = time.monotonic() - healed
        dropped = _fork_blocks(cut_chain, info.http_urls[0])
        landed = cut.client.wait_submitted(queued_ref, timeout=120)
        result = run_round(aggregator, task_id, timeout=120)
        auditor = open_ledger(network, "auditor", node=CUT)
        _assert_store_matches_ledger(hospitals, auditor, task_id)
    # Assert
    log.info("sync partition: %d majority blocks in %.1fs; %s; cut validator's head grew "
             "%d block(s), %d of its blocks dropped on re-sync %.1fs after healing",
             partition_blocks, partition_s, timed_out.value, cut_end - cut_start, dropped, resync_s)
    assert str(timed_out.value) == (  # building version 2 on base 1
        f"task {task_id} version 2: unconsumed updates of 3/4 distinct edges (valid ones "
        f"needed) after {SYNC_TIMEOUT_S}s, cut-off not fixed")
    assert during.state == TaskState.TRAINING and during.latest_version == 1
    assert queued in ("accepted", "signed", "sent")
    assert cut_end - cut_start <= 1
    assert result.record.version == 2 and len(result.record.update_ids) == 4
    assert landed["chain_update_id"] in result.record.update_ids
    assert auditor.get_task(task_id).state == TaskState.FINISHED
    assert verify_task(auditor, task_id).ok
