"""Auditor: the numbers behind ``fednode audit report``, gathered from the ledger and its node.

:func:`collect_report_data` is the only reader (Ledger protocol + ``NodeReader`` for gas);
:func:`update_norms`, :func:`site_metrics` and friends are pure and turn records into per-site,
per-version series. Per-site metrics are the edges' signed evaluations (``EvaluationLedger``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fednode.aggregator.acceptance import VersionAcceptance, contributors, version_acceptance
from fednode.auditor.node import node_reader
from fednode.auditor.replay import AuditReport, verify_task
from fednode.codec import flatten_params
from fednode.errors import UpdateRejectedError
from fednode.types import (
    EPSILON_SCALE,
    EvaluationRecord,
    GlobalModelRecord,
    LedgerUpdate,
    TaskRecord,
)
from fednode.update import TensorSpec, check_payload, template_of

__all__ = ["ReportData", "collect_report_data", "privacy_series", "site_metrics", "update_norms"]


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows about one task (values only, no I/O)."""

    task: TaskRecord
    versions: tuple[GlobalModelRecord, ...]
    updates: tuple[LedgerUpdate, ...]
    audit: AuditReport
    gas: dict[str, int] = field(default_factory=dict)
    sealers: dict[int, str] = field(default_factory=dict)
    evaluations: tuple[EvaluationRecord, ...] = ()
    sites: tuple[str, ...] = ()

    def acceptance(self) -> list[VersionAcceptance]:
        """The acceptance gate of every version that has evaluations, in version order; it
        counts ``sites``, else the edges that contributed to the task and any that evaluated."""
        versions = sorted({e.version for e in self.evaluations})
        found = contributors(self.versions, self.updates)
        sites = self.sites or tuple(dict.fromkeys((*found, *(e.edge for e in self.evaluations))))
        spec = self.task.spec
        return [version_acceptance(spec, v, self.evaluations, sites=sites) for v in versions]


def _vector(
    payload: bytes, template: dict[str, TensorSpec], compression: Sequence[str]
) -> np.ndarray:
    """The decoded dense delta of a payload as one float64 vector (packed payloads unpacked)."""
    checked = check_payload(payload, template, max_norm=math.inf, compression=compression)
    flat = flatten_params(checked.delta)
    return np.concatenate([np.asarray(flat[k], np.float64).ravel() for k in sorted(flat)])


def update_norms(
    versions: tuple[GlobalModelRecord, ...], updates: tuple[LedgerUpdate, ...],
    *, compression: Sequence[str],
) -> dict[str, dict[int, tuple[float, float]]]:
    """Per edge, per version it contributed to: (L2 norm of its delta, L2 distance to the mean
    delta of that version).

    The norms are those of the *decoded* delta (``fednode.update.check_payload`` against the
    version's model layout and the task's ``compression``), never of the packed bytes: an
    int8 or top-k update counts with the values it stands for. A version with a payload that
    does not pass the check is skipped (the audit reports it).

    Example:
      >>> update_norms((), (), compression=())
      {}
    """
    by_id = {u.update_id: u for u in updates}
    series: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    for record in versions:
        listed = [by_id[i] for i in record.update_ids if i in by_id]
        try:
            template = template_of(record.payload)
            vectors = [_vector(u.payload, template, compression) for u in listed]
        except (UpdateRejectedError, ValueError):
            continue
        if not vectors:
            continue
        mean = np.mean(vectors, axis=0)
        for update, vector in zip(listed, vectors, strict=True):
            series[update.edge][record.version] = (float(np.linalg.norm(vector)),
                                                   float(np.linalg.norm(vector - mean)))
    return dict(series)


def site_metrics(
    evaluations: tuple[EvaluationRecord, ...],
) -> dict[str, dict[int, tuple[float, float | None]]]:
    """Per edge, per version it evaluated: (metric, second metric or None).

    Example:
      >>> from fednode.types import EvaluationRecord
      >>> site_metrics((EvaluationRecord(1, 1, 2, "0xA", 750_000, None, 9, 5),))
      {'0xA': {2: (0.75, None)}}
    """
    series: dict[str, dict[int, tuple[float, float | None]]] = defaultdict(dict)
    for record in evaluations:
        series[record.edge][record.version] = (record.metric, record.secondary)
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
    evaluations = tuple(ledger.read_evaluations(task_id))
    edges = getattr(ledger, "edges", None)  # registered edges: the sites the gate expects
    sites = tuple(edges()) if callable(edges) else ()
    return ReportData(task, versions, updates, verify_task(ledger, task_id), gas, sealers,
                      evaluations, sites)
