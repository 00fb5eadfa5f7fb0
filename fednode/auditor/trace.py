"""Auditor: the provenance of one global model, traced back through the ledger.

Given a model digest, finds the task and version that committed it and lists every update that
went into it (edge server, base version, examples, privacy spend, block, transaction, the validator
that sealed the block), back to the task's initial model, with each edge's cumulative privacy
spend, each version's signed per-site evaluations (``EvaluationLedger``) and the acceptance state
the task's per-site gate derives from them (``fednode.aggregator.acceptance``).
Sealers come from an optional ``sealer_of(block_number)`` callable (see ``auditor/node.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from fednode.aggregator.acceptance import (
    VersionAcceptance,
    contributors,
    describe_rule,
    version_acceptance,
)
from fednode.chain.ledger import Ledger
from fednode.errors import AuditError
from fednode.types import (
    EPSILON_SCALE,
    EvaluationRecord,
    GlobalModelRecord,
    LedgerUpdate,
    TaskRecord,
)

__all__ = ["ProvenanceTrace", "SealerOf", "render_trace", "trace_digest"]

SealerOf = Callable[[int], str]
"""Block number -> address of the validator that sealed it."""


@dataclass(frozen=True)
class UpdateProvenance:
    """One contributing update, as the ledger records it."""

    update_id: int
    edge: str
    base_version: int
    num_examples: int
    epsilon_micro: int
    digest: str
    payload_bytes: int
    block_number: int
    tx_hash: str
    sealer: str = ""


@dataclass(frozen=True)
class EvaluationProvenance:
    """One edge's signed evaluation of a version, as the ledger records it."""

    evaluation_id: int
    edge: str
    metric: float
    secondary: float | None
    num_examples: int
    block_number: int


@dataclass(frozen=True)
class VersionProvenance:
    """One global model version and the updates it aggregates."""

    version: int
    digest: str
    aggregator: str
    block_number: int
    tx_hash: str
    updates: tuple[UpdateProvenance, ...]
    sealer: str = ""
    evaluations: tuple[EvaluationProvenance, ...] = ()
    acceptance: str = "pending"


@dataclass(frozen=True)
class ProvenanceTrace:
    """The lineage of one model: its task and every version up to and including it."""

    digest: str
    task_id: int
    task_name: str
    spec_digest: str
    publisher: str
    version: int
    lineage: tuple[VersionProvenance, ...]
    privacy_spent: dict[str, float] | None = None
    epsilon_budget: float = 0.0
    evaluations: tuple[dict[str, Any], ...] = ()
    metric_floor: float = 0.0
    acceptance_rule: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def edges(self) -> list[str]:
        """Every edge that contributed to this model, in order of first contribution."""
        return list(dict.fromkeys(u.edge for v in self.lineage for u in v.updates))

    @property
    def validators(self) -> list[str]:
        """Every validator that sealed a block of this lineage (empty when unknown)."""
        blocks = [s for v in self.lineage for s in (v.sealer, *(u.sealer for u in v.updates))]
        return sorted({s for s in blocks if s})


def _update_provenance(update: LedgerUpdate, sealer_of: SealerOf) -> UpdateProvenance:
    return UpdateProvenance(
        update.update_id, update.edge, update.base_version, update.num_examples,
        update.epsilon_micro, "0x" + update.digest.hex(), len(update.payload),
        update.block_number, "0x" + update.tx_hash.hex(), sealer_of(update.block_number),
    )


def _version_provenance(
    record: GlobalModelRecord,
    by_id: dict[int, LedgerUpdate],
    sealer_of: SealerOf,
    gate: Callable[[int], VersionAcceptance],
    evaluations: list[EvaluationRecord],
) -> VersionProvenance:
    updates = tuple(
        _update_provenance(by_id[i], sealer_of) for i in record.update_ids if i in by_id
    )
    rows = tuple(
        EvaluationProvenance(e.evaluation_id, e.edge, e.metric, e.secondary, e.num_examples,
                             e.block_number)
        for e in evaluations if e.version == record.version
    )  # fmt: skip
    return VersionProvenance(
        record.version, "0x" + record.digest.hex(), record.aggregator, record.block_number,
        "0x" + record.tx_hash.hex(), updates, sealer_of(record.block_number), rows,
        gate(record.version).state.value,
    )


def _privacy_spent(lineage: tuple[VersionProvenance, ...]) -> dict[str, float]:
    spent: Counter[str] = Counter()
    for version in lineage:
        for update in version.updates:
            spent[update.edge] += update.epsilon_micro
    return {edge: micro / EPSILON_SCALE for edge, micro in spent.items()}


def _sites(
    records: list[GlobalModelRecord], updates: Iterable[LedgerUpdate],
    evaluations: list[EvaluationRecord],
) -> tuple[str, ...]:
    """The edges the gate counts: those that contributed to the task (only they may evaluate
    it), plus any other edge that evaluated it."""
    found = contributors(records, updates)
    return tuple(dict.fromkeys((*found, *(e.edge for e in evaluations))))


def _find_version(ledger: Ledger, digest: bytes) -> tuple[TaskRecord, list[GlobalModelRecord], int]:
    for task in ledger.list_tasks():
        records = ledger.read_global_models(task.task_id)
        for record in records:
            if record.digest == digest:
                return task, records, record.version
    raise AuditError(f"no global model with digest 0x{digest.hex()} on this ledger")


def trace_digest(
    ledger: Ledger, digest: bytes | str, *, sealer_of: SealerOf | None = None
) -> ProvenanceTrace:
    """Traces a global model digest to its task, versions, updates, edges, blocks and txs.

    Args:
      ledger: read through the ``Ledger`` protocol.
      digest: the global model digest (bytes or 0x hex).
      sealer_of: block number -> sealing validator; None leaves ``sealer`` empty.

    Raises:
      AuditError: if no committed global model has this digest.
    """
    wanted = bytes.fromhex(digest.removeprefix("0x")) if isinstance(digest, str) else digest
    task, records, version = _find_version(ledger, wanted)
    by_id = {u.update_id: u for u in ledger.read_updates(task.task_id)}
    seal = sealer_of or (lambda number: "")
    evaluations = [e for e in ledger.read_evaluations(task.task_id) if e.version <= version]
    sites = _sites(records, by_id.values(), evaluations)

    def gate(v: int) -> VersionAcceptance:
        return version_acceptance(task.spec, v, evaluations, sites=sites)

    lineage = tuple(
        _version_provenance(r, by_id, seal, gate, evaluations)
        for r in records
        if r.version <= version
    )
    return ProvenanceTrace(
        "0x" + wanted.hex(), task.task_id, task.spec.name, "0x" + task.spec_digest.hex(),
        task.publisher, version, lineage, _privacy_spent(lineage), task.spec.epsilon_budget,
        tuple(asdict(e) for e in evaluations), task.spec.metric_floor, describe_rule(task.spec),
    )


def render_trace(trace: ProvenanceTrace) -> str:
    """Renders a trace as an indented text tree."""
    lines = [
        f"model {trace.digest}",
        f"└── task {trace.task_id} '{trace.task_name}' (spec {trace.spec_digest}, "
        f"publisher {trace.publisher}), version {trace.version}",
    ]
    for v in reversed(trace.lineage):
        lines.append(f"    ├── v{v.version} {v.digest} by {v.aggregator} "
                     f"(block {v.block_number}{_sealed(v.sealer)}, tx {v.tx_hash}), "
                     f"gate {v.acceptance} ({trace.acceptance_rule})")
        for e in v.evaluations:
            second = "" if e.secondary is None else f", second metric {e.secondary:.4f}"
            lines.append(f"    │   ├── evaluation {e.evaluation_id} by edge {e.edge}: metric "
                         f"{e.metric:.4f}{second} on {e.num_examples} examples, "
                         f"block {e.block_number}")
        for u in v.updates:
            lines.append(
                f"    │   ├── update {u.update_id} from edge {u.edge} on v{u.base_version}: "
                f"{u.num_examples} examples, eps {u.epsilon_micro / 1e6:g}, {u.payload_bytes} B, "
                f"block {u.block_number}{_sealed(u.sealer)}, tx {u.tx_hash}"
            )
    budget = f" of budget {trace.epsilon_budget:g}" if trace.epsilon_budget else ""
    for edge, spent in (trace.privacy_spent or {}).items():
        lines.append(f"    privacy: edge {edge} spent epsilon {spent:g}{budget}")
    if trace.validators:
        lines.append(f"    sealed by validators: {', '.join(trace.validators)}")
    return "\n".join(lines)


def _sealed(sealer: str) -> str:
    return f", sealed by {sealer}" if sealer else ""
