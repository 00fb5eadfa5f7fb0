"""Chain: Web3Ledger's batched reads and its cache of final versions on anvil, reorgs included.

A reorg is simulated with ``evm_snapshot`` / ``evm_revert``: the chain goes back to the
snapshot and grows again with different blocks at the same heights.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from fednode.chain import Web3Ledger
from fednode.chain.deploy import Deployment
from fednode.codec import encode_params
from tests.behaviours.ledger_behaviour import make_spec
from tests.chainkit import AnvilNode


class CountingProvider(HTTPProvider):
    """HTTPProvider that counts HTTP round trips and JSON-RPC methods (batched ones included)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.round_trips = 0
        self.methods: Counter[str] = Counter()

    def make_request(self, method, params):
        self.round_trips += 1
        self.methods[method] += 1
        return super().make_request(method, params)

    def make_batch_request(self, requests):
        self.round_trips += 1
        self.methods.update(method for method, _ in requests)
        return super().make_batch_request(requests)

    def reset(self) -> None:
        self.round_trips = 0
        self.methods.clear()


def _ledger(url: str, deployment: Deployment, account: LocalAccount, **options) -> Web3Ledger:
    return Web3Ledger(Web3(CountingProvider(url)), deployment, account, timeout=30.0, **options)


def _counter(ledger: Web3Ledger) -> CountingProvider:
    provider = ledger.w3.provider
    assert isinstance(provider, CountingProvider)
    provider.reset()
    return provider


def _model(value: float) -> bytes:
    return encode_params({"w": np.full(4, value, np.float32), "b": np.zeros(1, np.float32)})


def _round(edges: list[Web3Ledger], task_id: int, base: int) -> list[int]:
    return [
        edge.submit_update(task_id, base, _model(base + i), num_examples=10 + i)
        for i, edge in enumerate(edges)
    ]


def _actors(anvil_url, deployment, accounts):
    publisher = _ledger(anvil_url, deployment, accounts.publisher)
    edges = [_ledger(anvil_url, deployment, edge) for edge in accounts.edges]
    aggregator = _ledger(anvil_url, deployment, accounts.aggregator)
    task_id = publisher.publish_task(make_spec(rounds=5, max_staleness=1), _model(0.0))
    return edges, aggregator, task_id


def test_read_updates_takes_the_same_round_trips_for_three_and_six_updates(
    anvil_url, deployment, accounts
):
    # Arrange
    edges, aggregator, task_id = _actors(anvil_url, deployment, accounts)
    reader = _ledger(anvil_url, deployment, accounts.auditor)
    first = _round(edges, task_id, 0)
    counter = _counter(reader)
    three = reader.read_updates(task_id)
    trips_for_three = counter.round_trips
    aggregator.commit_global_model(task_id, 1, _model(9.0), first)
    second = _round(edges, task_id, 1)
    # Act
    counter = _counter(reader)
    six = reader.read_updates(task_id)
    # Assert: storage structs and transactions go out as one batch each, whatever the count
    assert [u.update_id for u in six] == first + second
    assert six[:3] == three
    assert [u.payload for u in six] == [_model(b + i) for b in (0, 1) for i in range(3)]
    assert counter.round_trips == trips_for_three
    assert counter.methods["eth_getTransactionByHash"] == 3  # the first three are remembered


def test_final_versions_are_read_once_and_only_new_ones_after(
    anvil_node: AnvilNode, anvil_url, deployment, accounts
):
    # Arrange
    edges, aggregator, task_id = _actors(anvil_url, deployment, accounts)
    reader = _ledger(anvil_url, deployment, accounts.auditor, finality_depth=2)
    aggregator.commit_global_model(task_id, 1, _model(1.0), _round(edges, task_id, 0))
    anvil_node.mine(3)
    before = (reader.read_global_models(task_id), reader.read_commits(task_id))
    aggregator.commit_global_model(task_id, 2, _model(2.0), _round(edges, task_id, 1))
    anvil_node.mine(3)
    # Act
    counter = _counter(reader)
    models, commits = reader.read_global_models(task_id), reader.read_commits(task_id)
    new_reads = +counter.methods
    counter = _counter(reader)
    again = (reader.read_global_models(task_id), reader.read_commits(task_id))
    # Assert: the second read fetched version 2 only, the third nothing but storage and hashes
    assert (models[:2], commits[:1]) == before
    assert [m.payload for m in models] == [_model(0.0), _model(1.0), _model(2.0)]
    assert [(c.version, c.final) for c in commits] == [(1, True), (2, True)]
    # one commit transaction (its calldata then remembered), one log scan in each of the 2 reads
    assert new_reads["eth_getTransactionByHash"] == 1 and new_reads["eth_getLogs"] == 2
    assert again == (models, commits)
    assert counter.methods["eth_getTransactionByHash"] == counter.methods["eth_getLogs"] == 0
    fresh = _ledger(anvil_url, deployment, accounts.outsider)
    assert (fresh.read_global_models(task_id), fresh.read_commits(task_id)) == again


def test_a_reorg_deeper_than_the_guard_never_returns_cached_versions(
    anvil_node: AnvilNode, w3, anvil_url, deployment, accounts
):
    # Arrange: version 1 = model A, final 3 blocks deep, cached with a guard of 1 block
    edges, aggregator, task_id = _actors(anvil_url, deployment, accounts)
    update_ids = _round(edges, task_id, 0)
    reader = _ledger(anvil_url, deployment, accounts.auditor, finality_depth=1)
    snapshot_id = w3.provider.make_request("evm_snapshot", [])["result"]
    aggregator.commit_global_model(task_id, 1, _model(10.0), update_ids)
    anvil_node.mine(3)
    assert reader.read_global_models(task_id)[1].payload == _model(10.0)
    assert reader.read_commits(task_id)[0].payload == _model(10.0)
    counter = _counter(reader)
    reader.read_global_models(task_id)
    assert counter.methods["eth_getTransactionByHash"] == 0  # served from the cache
    # Act: a 4-block reorg replaces the commit with one of model B over fewer updates
    w3.provider.make_request("evm_revert", [snapshot_id])
    replacement = _ledger(anvil_url, deployment, accounts.aggregator)
    replacement.commit_global_model(task_id, 1, _model(20.0), update_ids[:2])
    anvil_node.mine(3)
    models, commits = reader.read_global_models(task_id), reader.read_commits(task_id)
    # Assert
    assert models[1].payload == _model(20.0) and models[1].update_ids == tuple(update_ids[:2])
    assert [(c.payload, c.update_ids, c.final) for c in commits] == [
        (_model(20.0), tuple(update_ids[:2]), True)
    ]
    fresh = _ledger(anvil_url, deployment, accounts.outsider)
    assert (fresh.read_global_models(task_id), fresh.read_commits(task_id)) == (models, commits)
