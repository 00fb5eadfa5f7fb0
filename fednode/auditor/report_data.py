"""Auditor: the numbers behind ``fednode audit report``, gathered from the ledger and its node.

:func:`collect_report_data` is the only reader (Ledger protocol + ``NodeReader`` for gas);
:func:`update_norms` and friends are pure and turn records into per-site, per-version series.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fednode.auditor.node import node_reader
from fednode.auditor.replay import AuditReport, verify_task
from fednode.codec import decode_params, flatten_params
from fednode.types import EPSILON_SCALE, GlobalModelRecord, LedgerUpdate, TaskRecord

__all__ = ["ReportData", "collect_report_data", "privacy_series", "update_norms"]


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows about one task (values only, no I/O)."""

    task: TaskRecord
    versions: tuple[GlobalModelRecord, ...]
    updates: tuple[LedgerUpdate, ...]
    audit: AuditReport
    gas: dict[str, int] = field(default_factory=dict)
    sealers: dict[int, str] = field(default_factory=dict)
    evaluations: tuple[dict[str, Any], ...] = ()


def _vector(payload: bytes) -> np.ndarray:
    flat = flatten_params(decode_params(payload))
    return np.concatenate([np.asarray(flat[k], np.float64).ravel() for k in sorted(flat)])


def update_norms(
    versions: tuple[GlobalModelRecord, ...], updates: tuple[LedgerUpdate, ...]
) -> dict[str, dict[int, tuple[float, float]]]:
    """Per edge, per version it contributed to: (L2 norm of its delta, L2 distance to the mean
    delta of that version). Undecodable payloads are skipped.

    Example:
      >>> update_norms((), ())
      {}
    """
    by_id = {u.update_id: u for u in updates}
    series: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    for record in versions:
        listed = [by_id[i] for i in record.update_ids if i in by_id]
        try:
            vectors = [_vector(u.payload) for u in listed]
        except ValueError:
            continue
        if not vectors:
            continue
        mean = np.mean(vectors, axis=0)
        for update, vector in zip(listed, vectors, strict=True):
            series[update.edge][record.version] = (float(np.linalg.norm(vector)),
                                                   float(np.linalg.norm(vector - mean)))
    return dict(series)


def privacy_series(updates: tuple[LedgerUpdate, ...]) -> dict[str, list[tuple[int, float]]]:
    """Per edge: (block, cumulative epsilon spent) after each of its updates, in ledger order.

    Example:
      >>> privacy_series(())
      {}
    """
    spent: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for update in sorted(updates, key=lambda u: u.update_id):
        total = (spent[update.edge][-1][1] if spent[update.edge] else 0.0)
        total += update.epsilon_micro / EPSILON_SCALE
        spent[update.edge].append((update.block_number, total))
    return dict(spent)


def collect_report_data(ledger: Any, task_id: int) -> ReportData:
    """Reads a task, its versions, updates, audit verdicts, gas per transaction and sealers."""
    task = ledger.get_task(task_id)
    versions = tuple(ledger.read_global_models(task_id))
    updates = tuple(ledger.read_updates(task_id))
    node = node_reader(ledger)
    gas, sealers = {}, {}
    if node is not None:
        for item in (*versions, *updates):
            gas["0x" + item.tx_hash.hex()] = node.gas_of(item.block_number, item.tx_hash)
            sealers[item.block_number] = node.sealer_of(item.block_number)
    read = getattr(ledger, "read_evaluations", None)
    rows = read(task_id) if read else ()
    evaluations = tuple(r if isinstance(r, dict) else vars(r) for r in rows)
    return ReportData(task, versions, updates, verify_task(ledger, task_id), gas, sealers,
                      evaluations)
