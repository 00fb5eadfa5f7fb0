"""Auditor: a small task run on InMemoryLedger, for the auditor's unit tests.

Edges 1-3 submit on v0, the aggregator commits v1 from all three; edges 1-2 submit on v1 and
v2 is committed from those two. ``tamper`` helpers return altered copies of the records.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fednode.aggregator.build import build_global_model
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import encode_params
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskSpec

EDGES = ("0x" + "e1" * 20, "0x" + "e2" * 20, "0x" + "e3" * 20)
AGGREGATOR = "0x" + "a9" * 20
SPEC = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=2, rounds=3,
                epsilon_budget=2.0)


@dataclass(frozen=True)
class Scenario:
    ledger: InMemoryLedger
    task_id: int
    records: list[GlobalModelRecord]
    updates: list[LedgerUpdate]
    edges: tuple[str, ...]


def _params(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_params({"w": rng.standard_normal(2).astype(np.float32),
                          "b": rng.standard_normal(1).astype(np.float32)})


def run_scenario(spec: TaskSpec = SPEC, *, epsilon_micro: int = 500_000) -> Scenario:
    """Runs the two-version task described in the module docstring."""
    admin = InMemoryLedger()
    admin.grant_role(PUBLISHER_ROLE, admin.sender)
    admin.grant_role(AGGREGATOR_ROLE, AGGREGATOR)
    for index, edge in enumerate(EDGES):
        admin.register_edge(edge, "0x" + f"{index + 1:02x}" * 20, f"edge-{index + 1}")
    task_id = admin.publish_task(spec, _params(0))
    aggregator = admin.as_sender(AGGREGATOR)
    current = admin.read_global_models(task_id)[0]
    for version, edges in enumerate((EDGES, EDGES[:2]), start=1):
        for index, edge in enumerate(edges):
            admin.as_sender(edge).submit_update(task_id, version - 1, _params(10 * version + index),
                                                num_examples=5 + index, epsilon_micro=epsilon_micro)
        built = build_global_model(spec, current.payload,
                                   admin.read_updates(task_id, base_version=version - 1))
        current = aggregator.commit_global_model(task_id, version, built.payload, built.update_ids)
    checksummed = tuple(admin.edges())
    return Scenario(admin, task_id, admin.read_global_models(task_id),
                    admin.read_updates(task_id), checksummed)


def with_update(updates: list[LedgerUpdate], update_id: int, **changes) -> list[LedgerUpdate]:
    """A copy of ``updates`` with one update's fields replaced."""
    return [replace(u, **changes) if u.update_id == update_id else u for u in updates]


def with_record(
    records: list[GlobalModelRecord], version: int, **changes
) -> list[GlobalModelRecord]:
    """A copy of ``records`` with one version's fields replaced."""
    return [replace(r, **changes) if r.version == version else r for r in records]
