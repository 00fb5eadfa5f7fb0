"""Auditor: recomputes every global model version of a task from the ledger alone.

The replay is pure (:func:`replay_versions` takes ledger records and returns verdicts); only
:func:`verify_task` reads, and it reads through the ``Ledger`` protocol. It reuses the aggregator's
pure ``build_global_model`` but none of its I/O, so the recomputation is independent of the
process that published the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fednode.aggregator.build import build_global_model, check_update_payload
from fednode.chain.ledger import Ledger
from fednode.codec import decode_params, digest_bytes, flatten_params
from fednode.errors import CodecError, UpdateRejectedError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskSpec

__all__ = ["AuditReport", "VersionVerdict", "replay_versions", "verify_task"]


@dataclass(frozen=True)
class VersionVerdict:
    """The audit result of one global model version."""

    version: int
    committed_digest: str
    recomputed_digest: str
    match: bool
    update_ids: tuple[int, ...]
    detail: str = ""
    first_differing_tensor: str | None = None
    at_fault: str | None = None


@dataclass(frozen=True)
class AuditReport:
    """All verdicts of one task; ``ok`` only if every version matches bit for bit."""

    task_id: int
    verdicts: tuple[VersionVerdict, ...]

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.match for v in self.verdicts)

    def to_dict(self) -> dict:
        return {"task_id": self.task_id, "ok": self.ok, "versions": [asdict(v) for v in self.verdicts]}


def _first_differing_tensor(recomputed: bytes, committed: bytes) -> str | None:
    try:
        left, right = flatten_params(decode_params(recomputed)), flatten_params(decode_params(committed))
    except CodecError:
        return "<committed payload is not canonical>"
    for key in sorted(set(left) | set(right)):
        if key not in left or key not in right:
            return key
        a, b = left[key], right[key]
        if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
            return key
    return None


def _verify_initial(record: GlobalModelRecord) -> VersionVerdict:
    recomputed = digest_bytes(record.payload).hex()
    match = recomputed == record.digest.hex()
    detail = "" if match else "initial model payload does not hash to the published digest"
    return VersionVerdict(0, record.digest.hex(), recomputed, match, (), detail,
                          at_fault=None if match else "task publication")


def _listed_updates(
    record: GlobalModelRecord, by_id: dict[int, LedgerUpdate]
) -> tuple[list[LedgerUpdate], str]:
    missing = [i for i in record.update_ids if i not in by_id]
    if missing:
        return [], f"update ids {missing} are not updates of this task"
    return [by_id[i] for i in record.update_ids], ""


def _faulty_update(updates: Sequence[LedgerUpdate], base_payload: bytes) -> str | None:
    for update in updates:
        try:
            check_update_payload(update, base_payload)
        except UpdateRejectedError as exc:
            return f"update {update.update_id} from {update.edge}: {exc.reason}"
    return None


def _verify_version(
    spec: TaskSpec, previous: GlobalModelRecord, record: GlobalModelRecord,
    by_id: dict[int, LedgerUpdate], rule_state: Any,
) -> tuple[VersionVerdict, Any]:
    committed = record.digest.hex()
    if digest_bytes(record.payload).hex() != committed:
        return VersionVerdict(record.version, committed, digest_bytes(record.payload).hex(), False,
                              record.update_ids, "committed payload does not hash to its digest",
                              at_fault=f"commit by {record.aggregator}"), rule_state
    updates, problem = _listed_updates(record, by_id)
    fault = problem or _faulty_update(updates, previous.payload)
    if fault:
        return VersionVerdict(record.version, committed, "", False, record.update_ids,
                              "an aggregated update fails verification", at_fault=fault), rule_state
    built = build_global_model(spec, previous.payload, updates, rule_state=rule_state)
    match = built.digest == record.digest
    return VersionVerdict(
        record.version, committed, built.digest.hex(), match, record.update_ids,
        "" if match else "recomputed model differs from the committed one",
        None if match else _first_differing_tensor(built.payload, record.payload),
        None if match else f"commit by {record.aggregator}",
    ), built.rule_state


def replay_versions(
    spec: TaskSpec, records: Sequence[GlobalModelRecord], updates: Sequence[LedgerUpdate]
) -> list[VersionVerdict]:
    """Recomputes each version from the previous committed one and the listed updates.

    Example:
      >>> replay_versions.__name__
      'replay_versions'
    """
    by_id = {u.update_id: u for u in updates}
    ordered = sorted(records, key=lambda r: r.version)
    verdicts = [_verify_initial(ordered[0])] if ordered else []
    rule_state = None
    for previous, record in zip(ordered, ordered[1:], strict=False):
        verdict, rule_state = _verify_version(spec, previous, record, by_id, rule_state)
        verdicts.append(verdict)
    return verdicts


def verify_task(ledger: Ledger, task_id: int) -> AuditReport:
    """Reads a task's global models and updates from the ledger and replays them."""
    task = ledger.get_task(task_id)
    records = ledger.read_global_models(task_id)
    updates = ledger.read_updates(task_id)
    return AuditReport(task_id, tuple(replay_versions(task.spec, records, updates)))

