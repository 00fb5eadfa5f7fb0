"""Auditor: the dashboard's JSON views, built from the ledger (read-only) and its node.

Each view is a function of a :class:`DashboardSource` returning plain JSON-ready dicts, so the
FastAPI layer (app.py) stays thin and the views are tested on ``InMemoryLedger``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fednode.aggregator.acceptance import contributors, describe_rule, version_acceptance
from fednode.auditor.node import NodeReader, node_reader
from fednode.auditor.replay import verify_task
from fednode.auditor.report_data import site_metrics, update_norms
from fednode.auditor.trace import trace_digest
from fednode.chain.constants import ROLE_NAMES
from fednode.types import EPSILON_SCALE, TaskState

__all__ = ["DashboardSource", "consortium_view", "status_view", "task_view", "tasks_view",
           "trace_view"]


@dataclass
class DashboardSource:
    """What the dashboard reads: a ledger, the consortium's named accounts, a lock for both.

    Args:
      ledger: any Ledger (``has_role`` / ``edges`` / ``validator_of`` used when present).
      accounts: account name -> address (from the network folder), shown as members.
    """

    ledger: Any
    accounts: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _audits: dict[tuple[int, int], dict] = field(default_factory=dict)

    @property
    def node(self) -> NodeReader | None:
        return node_reader(self.ledger)


def _roles(ledger: Any, address: str) -> list[str]:
    has_role = getattr(ledger, "has_role", None)
    if has_role is None:
        return []
    return [name for role, name in ROLE_NAMES.items() if has_role(role, address)]


def consortium_view(source: DashboardSource) -> dict[str, Any]:
    """Members (named accounts and registered edges), their roles and validators."""
    ledger = source.ledger
    edges = list(getattr(ledger, "edges", lambda: [])())
    names = {address: name for name, address in source.accounts.items()}
    members = []
    for address in dict.fromkeys([*source.accounts.values(), *edges]):
        validator = ledger.validator_of(address) if address in edges else ""
        members.append({"name": names.get(address, ""), "address": address,
                        "roles": _roles(ledger, address), "validator": validator})
    node = source.node
    return {"members": members, "signers": node.signers() if node else []}


def _spent(updates: list[Any]) -> dict[str, float]:
    spent: Counter[str] = Counter()
    for update in updates:
        spent[update.edge] += update.epsilon_micro
    return {edge: micro / EPSILON_SCALE for edge, micro in spent.items()}


def _task_summary(ledger: Any, task: Any) -> dict[str, Any]:
    updates = ledger.read_updates(task.task_id)
    pending = [u for u in updates if u.base_version == task.latest_version]
    live = task.state in (TaskState.OPEN, TaskState.TRAINING)
    return {"task_id": task.task_id, "name": task.spec.name, "state": task.state.name,
            "model": task.spec.model, "aggregation": task.spec.aggregation,
            "rounds": task.spec.rounds, "latest_version": task.latest_version,
            "updates": len(updates), "publisher": task.publisher,
            "live_round": {"version": task.latest_version + 1, "submitted": len(pending),
                           "needed": task.spec.min_updates} if live else None,
            "epsilon_budget": task.spec.epsilon_budget, "privacy_spent": _spent(updates)}


def tasks_view(source: DashboardSource) -> dict[str, Any]:
    """Every task with its state, progress, live round and privacy spend."""
    return {"tasks": [_task_summary(source.ledger, t) for t in source.ledger.list_tasks()]}


def _audit(source: DashboardSource, task_id: int, latest: int) -> dict[str, Any]:
    key = (task_id, latest)
    if key not in source._audits:
        report = verify_task(source.ledger, task_id)
        source._audits[key] = {"ok": report.ok, "versions": {
            v.version: {"ok": v.ok, "detail": v.detail,
                        "findings": [f"{f.kind}: {f.detail}" for f in v.findings]}
            for v in report.verdicts}}
    return source._audits[key]


def _evaluations(
    ledger: Any, task: Any, versions: Any, updates: Any
) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """Per-site signed metrics ``{edge: {version: {...}}}`` and the gate of every version.

    The gate counts the edges that contributed to the task (only they may evaluate it).
    """
    records = ledger.read_evaluations(task.task_id)
    sites = contributors(versions, updates)
    metrics = {
        edge: {str(v): {"metric": m, "secondary": s} for v, (m, s) in rows.items()}
        for edge, rows in site_metrics(tuple(records)).items()
    }
    gates = {}
    for version in range(task.latest_version + 1):
        gate = version_acceptance(task.spec, version, records, sites=sites)
        gates[version] = {"acceptance": gate.state.value,
                          "failing_sites": list(gate.decision.failing_sites),
                          "missing_sites": list(gate.missing),
                          "sites_needed": gate.decision.needed}
    return metrics, gates


def task_view(source: DashboardSource, task_id: int) -> dict[str, Any]:
    """One task: versions (audit verdicts, acceptance state), updates, per-site metrics."""
    ledger = source.ledger
    task = ledger.get_task(task_id)
    versions = ledger.read_global_models(task_id)
    updates = ledger.read_updates(task_id)
    audit = _audit(source, task_id, task.latest_version)
    norms = update_norms(tuple(versions), tuple(updates), compression=task.spec.compression)
    metrics, gates = _evaluations(ledger, task, versions, updates)
    return {
        **_task_summary(ledger, task), "audit_ok": audit["ok"],
        "metric_floor": task.spec.metric_floor,
        "acceptance_rule": describe_rule(task.spec),
        "versions": [{"version": v.version, "digest": "0x" + v.digest.hex(),
                      "aggregator": v.aggregator, "block": v.block_number,
                      "updates": list(v.update_ids), **audit["versions"].get(v.version, {}),
                      **gates.get(v.version, {})}
                     for v in versions],
        "site_metrics": metrics,
        "update_norms": {edge: {str(k): {"norm": n, "distance": d} for k, (n, d) in rows.items()}
                         for edge, rows in norms.items()},
        "updates_list": [{"update_id": u.update_id, "edge": u.edge, "base_version": u.base_version,
                          "num_examples": u.num_examples,
                          "epsilon": u.epsilon_micro / EPSILON_SCALE,
                          "bytes": len(u.payload), "block": u.block_number} for u in updates],
    }


def trace_view(source: DashboardSource, digest: str) -> dict[str, Any]:
    """The provenance trace of one model digest (with sealers when the node is Clique)."""
    node = source.node
    return trace_digest(source.ledger, digest, sealer_of=node.sealer_of if node else None).to_dict()


def status_view(source: DashboardSource) -> dict[str, Any]:
    """Head block and its sealer (empty for ledgers without a node)."""
    node = source.node
    if node is None:
        return {"head": None, "sealer": ""}
    head = int(node.header_latest()["number"], 16)
    return {"head": head, "sealer": node.sealer_of(head)}
