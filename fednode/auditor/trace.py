"""Auditor: the provenance of one global model, traced back through the ledger.

Given a model digest, finds the task and version that committed it and lists every update that
went into it (edge server, base version, examples, privacy spend, block, transaction), back to the
task's initial model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fednode.chain.ledger import Ledger
from fednode.errors import AuditError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskRecord

__all__ = ["ProvenanceTrace", "render_trace", "trace_digest"]


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


@dataclass(frozen=True)
class VersionProvenance:
    """One global model version and the updates it aggregates."""

    version: int
    digest: str
    aggregator: str
    block_number: int
    tx_hash: str
    updates: tuple[UpdateProvenance, ...]


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

    def to_dict(self) -> dict:
        return asdict(self)


def _update_provenance(update: LedgerUpdate) -> UpdateProvenance:
    return UpdateProvenance(
        update.update_id, update.edge, update.base_version, update.num_examples,
        update.epsilon_micro, "0x" + update.digest.hex(), len(update.payload),
        update.block_number, "0x" + update.tx_hash.hex(),
    )


def _version_provenance(
    record: GlobalModelRecord, by_id: dict[int, LedgerUpdate]
) -> VersionProvenance:
    updates = tuple(_update_provenance(by_id[i]) for i in record.update_ids if i in by_id)
    return VersionProvenance(
        record.version, "0x" + record.digest.hex(), record.aggregator, record.block_number,
        "0x" + record.tx_hash.hex(), updates,
    )


def _find_version(ledger: Ledger, digest: bytes) -> tuple[TaskRecord, list[GlobalModelRecord], int]:
    for task in ledger.list_tasks():
        records = ledger.read_global_models(task.task_id)
        for record in records:
            if record.digest == digest:
                return task, records, record.version
    raise AuditError(f"no global model with digest 0x{digest.hex()} on this ledger")


def trace_digest(ledger: Ledger, digest: bytes | str) -> ProvenanceTrace:
    """Traces a global model digest to its task, versions, updates, edges, blocks and txs.

    Raises:
      AuditError: if no committed global model has this digest.
    """
    wanted = bytes.fromhex(digest.removeprefix("0x")) if isinstance(digest, str) else digest
    task, records, version = _find_version(ledger, wanted)
    by_id = {u.update_id: u for u in ledger.read_updates(task.task_id)}
    lineage = tuple(_version_provenance(r, by_id) for r in records if r.version <= version)
    return ProvenanceTrace(
        "0x" + wanted.hex(), task.task_id, task.spec.name, "0x" + task.spec_digest.hex(),
        task.publisher, version, lineage,
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
                     f"(block {v.block_number}, tx {v.tx_hash})")
        for u in v.updates:
            lines.append(
                f"    │   ├── update {u.update_id} from edge {u.edge} on v{u.base_version}: "
                f"{u.num_examples} examples, eps {u.epsilon_micro / 1e6:g}, {u.payload_bytes} B, "
                f"block {u.block_number}, tx {u.tx_hash}"
            )
    return "\n".join(lines)
