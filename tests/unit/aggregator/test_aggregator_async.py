"""Aggregator: FedBuff (async) versions on the in-memory ledger, staleness-weighted and audited."""

from __future__ import annotations

import numpy as np
import pytest

from fednode.aggregator.build import build_global_model
from fednode.aggregator.pipeline import staleness_factor
from fednode.aggregator.round import run_round
from fednode.auditor.replay import verify_task
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import decode_params, digest_bytes, encode_params
from fednode.types import LedgerUpdate, TaskSpec

EDGES = [f"0x{i:040x}" for i in range(1, 4)]


def _ledger():
    admin = InMemoryLedger()
    for index, edge in enumerate(EDGES):
        admin.register_edge(edge, f"0x{index + 100:040x}", f"edge-{index + 1}")
    admin.grant_role(PUBLISHER_ROLE, admin.sender)
    admin.grant_role(AGGREGATOR_ROLE, admin.sender)
    return admin


def _ones(value: float) -> bytes:
    return encode_params({"w": np.full(2, value, np.float32)})


def test_staleness_factor_is_one_over_sqrt_one_plus_s() -> None:
    assert [staleness_factor(s) for s in (0, 3, 8)] == [1.0, 0.5, 1.0 / 3.0]
    assert staleness_factor(5, weighting="constant") == 1.0


def test_async_versions_do_not_wait_for_the_slow_edge() -> None:
    # Arrange: K = 2; edge 3 trains on version 0 but is slow
    ledger = _ledger()
    spec = TaskSpec(name="t", data_schema="s", num_features=2, rounds=5, min_updates=2,
                    mode="async", max_staleness=2)
    task_id = ledger.publish_task(spec, _ones(0.0))
    fast_a, fast_b, slow = (ledger.as_sender(e) for e in EDGES)
    # Act: two fast edges build version 1, then version 2; the slow edge lands late
    fast_a.submit_update(task_id, 0, _ones(1.0), num_examples=1)
    fast_b.submit_update(task_id, 0, _ones(1.0), num_examples=1)
    v1 = run_round(ledger, task_id, timeout=1).record
    fast_a.submit_update(task_id, 1, _ones(1.0), num_examples=1)
    slow.submit_update(task_id, 0, _ones(1.0), num_examples=1)  # staleness 1 at version 2
    v2 = run_round(ledger, task_id, timeout=1).record
    # Assert
    assert v1.version == 1 and v2.version == 2
    assert v2.update_ids == (3, 4)
    w = decode_params(v2.payload)["w"]
    expected = np.float32(1.0) + np.float32((1.0 + 1.0 / np.sqrt(2.0)) / 2.0)
    np.testing.assert_allclose(w, [expected] * 2, rtol=1e-6)
    assert verify_task(ledger, task_id).ok


def test_async_buffer_takes_exactly_k_and_keeps_the_rest() -> None:
    # Arrange
    ledger = _ledger()
    spec = TaskSpec(name="t", data_schema="s", num_features=2, rounds=5, min_updates=2,
                    mode="async", max_staleness=1)
    task_id = ledger.publish_task(spec, _ones(0.0))
    for edge in EDGES:
        ledger.as_sender(edge).submit_update(task_id, 0, _ones(1.0), num_examples=1)
    # Act
    first = run_round(ledger, task_id, timeout=1).record
    ledger.as_sender(EDGES[0]).submit_update(task_id, 1, _ones(1.0), num_examples=1)
    second = run_round(ledger, task_id, timeout=1).record
    # Assert
    assert first.update_ids == (1, 2)
    assert second.update_ids == (3, 4)
    assert verify_task(ledger, task_id).ok


def test_negative_staleness_is_refused() -> None:
    spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1, mode="async",
                    max_staleness=2)
    payload = _ones(1.0)
    update = LedgerUpdate(1, 1, 3, "0x0", digest_bytes(payload), 1, 0, payload, 1, b"")
    with pytest.raises(ValueError, match="staleness"):
        build_global_model(spec, _ones(0.0), [update])
