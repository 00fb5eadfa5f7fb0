"""Auditor: a small audited task on a real geth Clique consortium, shared by the auditor and
dashboard integration tests (imported rootdir-relative, like the edge server harness).

Three edges, two global model versions: edge-3 contributes only to v1 (so v2 holds it by
descent), edges 1 and 2 to both. Each update spends 0.5 epsilon of a 5.0 budget. Each edge that
contributed (edge-4 of the shared network did not, so EvaluationLedger would refuse it) then
signs an evaluation of v2 (``EVALUATIONS``); with the 0.7 floor v2 is accepted.
The contracts are deployed into a folder of their own (a copy of the running network's
``network.json`` plus its own ``deployment.json``), so the shared ``geth_network`` keeps the
deployment other tests wrote.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from fednode.aggregator.build import build_global_model
from fednode.chain.connect import open_ledger
from fednode.cli.chain_cmd import deploy_network
from fednode.codec import decode_params, encode_params
from fednode.tasks import initial_payload
from fednode.types import TaskSpec

SPEC = TaskSpec(name="audit-demo", data_schema="heart-v1", num_features=3, rounds=3,
                min_updates=2, epsilon_budget=5.0, seed=7, metric_floor=0.7)
EVALUATIONS = {"edge-1": 0.75, "edge-2": 0.8125, "edge-3": 0.9}
"""Accuracy each edge reports for v2 (on chain in micro units)."""
ROUNDS = (("edge-1", "edge-2", "edge-3"), ("edge-1", "edge-2"))


@dataclass(frozen=True)
class AuditedChain:
    network_dir: Path
    task_id: int
    digests: tuple[str, ...]
    edges: dict[str, str]


def _delta(payload: bytes, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    params = decode_params(payload)
    flat = jax.tree_util.tree_map(lambda a: (rng.standard_normal(a.shape) * 0.1).astype(a.dtype),
                                  params)
    return encode_params(flat)


def build_audited_chain(network_dir: Path) -> AuditedChain:
    """Deploys on a running network folder and runs the task (about 15 s at 1 s blocks)."""
    deploy_network(network_dir)
    publisher = open_ledger(network_dir, "publisher")
    aggregator = open_ledger(network_dir, "aggregator")
    task_id = publisher.publish_task(SPEC, initial_payload(SPEC, key=jax.random.key(SPEC.seed)))
    current = aggregator.read_global_models(task_id)[-1]
    digests = ["0x" + current.digest.hex()]
    edges = {}
    for version, names in enumerate(ROUNDS, start=1):
        for index, name in enumerate(names):
            edge = open_ledger(network_dir, name)
            edges[name] = edge.sender
            edge.submit_update(task_id, version - 1, _delta(current.payload, 10 * version + index),
                               num_examples=10 + index, epsilon_micro=500_000)
        updates = aggregator.read_updates(task_id, base_version=version - 1)
        built = build_global_model(SPEC, current.payload, updates)
        current = aggregator.commit_global_model(task_id, version, built.payload, built.update_ids)
        digests.append("0x" + current.digest.hex())
    for name, metric in EVALUATIONS.items():
        open_ledger(network_dir, name).submit_evaluation(task_id, 2, metric=metric, num_examples=40)
    return AuditedChain(network_dir, task_id, tuple(digests), edges)


def audited_chain_on(network_dir: Path, work: Path) -> AuditedChain:
    """Runs :func:`build_audited_chain` in ``work``, a view of the network at ``network_dir``."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(network_dir) / "network.json", work / "network.json")
    return build_audited_chain(work)
