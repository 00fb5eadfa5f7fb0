"""Aggregator: the candidate set every honest aggregator lists, and the round that follows a
cut-off another aggregator fixed (in-memory ledger, same rules as the contract)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fednode.aggregator.build import build_global_model
from fednode.aggregator.candidates import fixed_cutoff, select_candidates
from fednode.aggregator.round import run_round
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import digest_bytes, encode_params
from fednode.errors import ContractRevertError, UpdateRejectedError
from fednode.types import LedgerUpdate, TaskRecord, TaskSpec, TaskState

GLOBAL = encode_params({"w": np.zeros(2, np.float32)})
DELTA = encode_params({"w": np.ones(2, np.float32)})
WRONG_LAYOUT = encode_params({"v": np.ones(3, np.float32)})
SPEC = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=2, max_staleness=1)


def _task(latest: int = 1, **changes: object) -> TaskRecord:
    spec = dataclasses.replace(SPEC, **changes)
    return TaskRecord(1, spec, spec.digest, "0x0", TaskState.TRAINING, latest, 1)


def _update(update_id: int, edge: str, base: int = 1, payload: bytes = DELTA) -> LedgerUpdate:
    return LedgerUpdate(update_id, 1, base, edge, digest_bytes(payload), 5, 0, payload, 1, b"")


def _ids(chosen) -> tuple[tuple[int, ...], tuple[tuple[int, str], ...], int]:
    return tuple(u.update_id for u in chosen.accepted), chosen.rejected, chosen.cutoff


def test_sync_lists_every_unconsumed_update_seen_stale_and_invalid_ones_as_rejected():
    updates = [_update(1, "a", base=0), _update(2, "b", base=0), _update(3, "c"),
               _update(4, "d", payload=WRONG_LAYOUT), _update(5, "a")]
    task = _task(latest=2)  # versions based on 0 are stale for version 3 (staleness 1)
    chosen = select_candidates(task, updates, GLOBAL, consumed=frozenset())
    accepted, rejected, cutoff = _ids(chosen)
    assert (accepted, cutoff) == ((3, 5), 5)
    assert [i for i, _ in rejected] == [1, 2, 4]
    assert (dict(rejected)[1], dict(rejected)[2]) == ("stale", "stale")


def test_sync_waits_until_valid_updates_come_from_min_updates_distinct_edges():
    one_edge = [_update(1, "a", base=0), _update(2, "a")]
    assert select_candidates(_task(), one_edge, GLOBAL, consumed=frozenset()) is None


def test_async_stops_at_the_update_that_completes_k_distinct_edges():
    updates = [_update(1, "a", base=0), _update(2, "a"), _update(3, "b"), _update(4, "c")]
    chosen = select_candidates(_task(mode="async"), updates, GLOBAL, consumed=frozenset())
    assert _ids(chosen) == ((1, 2, 3), (), 3)


def test_a_fixed_cutoff_is_followed_and_a_lagging_view_waits():
    updates = [_update(1, "a"), _update(2, "b"), _update(3, "c")]
    lagging = select_candidates(_task(), updates[:1], GLOBAL, consumed=frozenset(), cutoff=2)
    assert lagging is None
    followed = select_candidates(_task(), updates, GLOBAL, consumed=frozenset(), cutoff=2)
    assert _ids(followed) == ((1, 2), (), 2)


def test_a_fixed_cutoff_without_enough_valid_edges_is_named():
    updates = [_update(1, "a"), _update(2, "b", payload=WRONG_LAYOUT)]
    with pytest.raises(UpdateRejectedError, match="too_few_valid"):
        select_candidates(_task(), updates, GLOBAL, consumed=frozenset(), cutoff=2)


def test_fixed_cutoff_is_the_largest_id_of_the_first_commit():
    class Commit:
        version, update_ids, rejected_ids = 1, (3, 4), (7,)

    assert (fixed_cutoff([Commit()], 1), fixed_cutoff([Commit()], 2)) == (7, 0)


# ---- on the in-memory ledger: quorum, late updates, conflicts -------------------------------

AGGREGATORS = ("0x" + "a1" * 20, "0x" + "a2" * 20, "0x" + "a3" * 20)
EDGES = ("0x" + "e1" * 20, "0x" + "e2" * 20, "0x" + "e3" * 20)


@pytest.fixture
def ledger() -> InMemoryLedger:
    admin = InMemoryLedger()
    admin.grant_role(PUBLISHER_ROLE, admin.sender)
    for aggregator in AGGREGATORS:
        admin.grant_role(AGGREGATOR_ROLE, aggregator)
    for i, edge in enumerate(EDGES):
        admin.register_edge(edge, f"0x{i + 200:040x}", f"edge-{i}")
    return admin


def test_a_round_follows_the_cutoff_another_aggregator_fixed(ledger):
    # Arrange: quorum 2; aggregator 1 committed over updates 1-2, then update 3 landed
    task_id = ledger.publish_task(dataclasses.replace(SPEC, aggregator_quorum=2), GLOBAL)
    ids = [ledger.as_sender(e).submit_update(task_id, 0, DELTA, num_examples=5) for e in EDGES[:2]]
    first = build_global_model(ledger.get_task(task_id).spec, GLOBAL, ledger.read_updates(task_id))
    ledger.as_sender(AGGREGATORS[0]).commit_global_model(task_id, 1, first.payload, ids)
    ledger.as_sender(EDGES[2]).submit_update(task_id, 0, DELTA, num_examples=5)
    # Act: aggregator 2 sees three updates but lists the two below the cut-off
    result = run_round(ledger.as_sender(AGGREGATORS[1]), task_id, timeout=1, poll=0.01)
    # Assert
    assert result.record.update_ids == tuple(ids)
    assert result.record.digest == first.digest
    assert not ledger.conflicted(task_id, 1)


def test_a_conflicted_version_finalizes_once_a_quorum_agrees(ledger):
    # Arrange: quorum 2 of 3; the first commit carries a wrong digest
    task_id = ledger.publish_task(dataclasses.replace(SPEC, aggregator_quorum=2), GLOBAL)
    ids = [ledger.as_sender(e).submit_update(task_id, 0, DELTA, num_examples=5) for e in EDGES[:2]]
    ledger.as_sender(AGGREGATORS[2]).commit_global_model(task_id, 1, WRONG_LAYOUT, ids)
    honest = encode_params({"w": np.full(2, 0.5, np.float32)})
    # Act
    ledger.as_sender(AGGREGATORS[0]).commit_global_model(task_id, 1, honest, ids)
    ledger.as_sender(AGGREGATORS[1]).commit_global_model(task_id, 1, honest, ids)
    # Assert
    assert ledger.read_global_models(task_id)[1].digest == digest_bytes(honest)
    assert ledger.conflicted(task_id, 1)
    assert [c.final for c in ledger.read_commits(task_id)] == [False, True, True]
    with pytest.raises(ContractRevertError, match="UpdateLedgerUnexpectedVersion"):
        ledger.as_sender(AGGREGATORS[2]).commit_global_model(task_id, 1, honest, ids)
