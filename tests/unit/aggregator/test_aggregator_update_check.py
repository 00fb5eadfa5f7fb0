"""Aggregator: the one update check on every ledger update, and no non-finite global model."""

from __future__ import annotations

import numpy as np
import pytest

from fednode.aggregator.build import build_global_model
from fednode.aggregator.round import run_round
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import digest_bytes, encode_params
from fednode.errors import GlobalModelNotFiniteError
from fednode.types import LedgerUpdate, TaskSpec

EDGES = [f"0x{i:040x}" for i in range(1, 5)]
PUBLISHER, AGGREGATOR = "0x" + "a" * 40, "0x" + "b" * 40


def _consortium() -> InMemoryLedger:
    admin = InMemoryLedger()
    for index, edge in enumerate(EDGES):
        admin.register_edge(edge, f"0x{index + 100:040x}", f"edge-{index + 1}")
    admin.grant_role(PUBLISHER_ROLE, PUBLISHER)
    admin.grant_role(AGGREGATOR_ROLE, AGGREGATOR)
    return admin


def _params(value: float) -> bytes:
    return encode_params({"w": np.full(4, value, np.float32)})


def test_round_leaves_out_refused_updates_and_reports_them_on_chain() -> None:
    # Arrange: two honest updates, one NaN, one over the norm bound
    admin = _consortium()
    spec = TaskSpec(name="t", data_schema="s", num_features=4, rounds=2, min_updates=2,
                    max_update_norm=1.0, max_examples=100)
    task_id = admin.as_sender(PUBLISHER).publish_task(spec, _params(0.0))
    honest = [admin.as_sender(EDGES[i]).submit_update(task_id, 0, _params(0.1), num_examples=50)
              for i in range(2)]
    nan = admin.as_sender(EDGES[2]).submit_update(
        task_id, 0, encode_params({"w": np.array([np.nan, 0, 0, 0], np.float32)}),
        num_examples=50)
    huge = admin.as_sender(EDGES[3]).submit_update(task_id, 0, _params(1e3), num_examples=50)
    # Act
    result = run_round(admin.as_sender(AGGREGATOR), task_id, timeout=1, poll=0.01)
    # Assert
    assert result.record.update_ids == tuple(honest)
    assert result.rejected == ((nan, "not_finite"), (huge, "norm_too_large"))
    assert admin.read_commits(task_id)[0].rejected_ids == (nan, huge)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_build_refuses_a_global_model_that_is_not_finite() -> None:
    # Arrange: a finite initial model and a finite update (a bound it meets) whose sum overflows
    spec = TaskSpec(name="t", data_schema="s", num_features=4, min_updates=1,
                    max_update_norm=1e300)
    initial, delta = _params(3e38), _params(3e38)
    update = LedgerUpdate(1, 1, 0, EDGES[0], digest_bytes(delta), 1, 0, delta, 1, b"")
    # Act / Assert
    with pytest.raises(GlobalModelNotFiniteError, match="not committed"):
        build_global_model(spec, initial, [update])


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_round_commits_nothing_when_the_new_model_is_not_finite() -> None:
    # Arrange
    admin = _consortium()
    spec = TaskSpec(name="t", data_schema="s", num_features=4, rounds=2, min_updates=1,
                    max_update_norm=1e300)
    task_id = admin.as_sender(PUBLISHER).publish_task(spec, _params(3e38))
    admin.as_sender(EDGES[0]).submit_update(task_id, 0, _params(3e38), num_examples=1)
    # Act / Assert
    with pytest.raises(GlobalModelNotFiniteError):
        run_round(admin.as_sender(AGGREGATOR), task_id, timeout=1, poll=0.01)
    assert admin.read_commits(task_id) == [] and admin.latest_version(task_id) == 0
