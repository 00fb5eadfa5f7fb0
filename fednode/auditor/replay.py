"""Auditor: recomputes every global model version of a task from the ledger alone.

The replay is pure (:func:`audit_records` takes ledger records and returns an
:class:`AuditReport`); only :func:`verify_task` reads, and it reads through the ``Ledger``
protocol (plus the optional ``role_changes`` / ``has_role`` / ``edges`` / ``read_commits`` /
``transaction_index`` methods a ledger may have): roles are rebuilt once from the role events
and each update and commit is checked against the roles in force at its block. It reuses the
aggregator's pure ``build_global_model`` but none of its I/O, so the recomputation is
independent of the process that published the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from fednode.aggregator.build import build_global_model, check_update_payload
from fednode.auditor.checks import (
    Authority,
    CommitRecord,
    Finding,
    check_budgets,
    check_conflicts,
    check_quorum,
    check_signers,
    check_update_lists,
)
from fednode.auditor.privacy_checks import check_privacy_declarations
from fednode.auditor.roles import RoleHistory, role_history
from fednode.auditor.update_checks import check_aggregated_updates, check_finite_models
from fednode.chain.constants import AGGREGATOR_ROLE, EDGE_ROLE
from fednode.chain.ledger import Ledger
from fednode.chain.roles import REGISTERED_EDGE
from fednode.codec import decode_params, digest_bytes, flatten_params
from fednode.errors import CodecError, GlobalModelNotFiniteError, UpdateRejectedError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskSpec

__all__ = [
    "AuditReport",
    "VersionVerdict",
    "audit_records",
    "ledger_authority",
    "ledger_commits",
    "replay_versions",
    "verify_task",
]


@dataclass(frozen=True)
class VersionVerdict:
    """The audit result of one global model version.

    ``match`` is the bit-for-bit recomputation; ``findings`` are policy problems (wrong update
    list, forged signer, budget overrun, quorum violation). ``ok`` needs both clean.
    """

    version: int
    committed_digest: str
    recomputed_digest: str
    match: bool
    update_ids: tuple[int, ...]
    detail: str = ""
    first_differing_tensor: str | None = None
    at_fault: str | None = None
    findings: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        return self.match and not self.findings


@dataclass(frozen=True)
class AuditReport:
    """All verdicts of one task; ``ok`` only if every version matches and nothing was found."""

    task_id: int
    verdicts: tuple[VersionVerdict, ...]
    findings: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.ok for v in self.verdicts) and not self.findings

    def to_dict(self) -> dict:
        versions = [{**asdict(v), "ok": v.ok} for v in self.verdicts]
        return {"task_id": self.task_id, "ok": self.ok, "versions": versions,
                "findings": [asdict(f) for f in self.findings]}


def _first_differing_tensor(recomputed: bytes, committed: bytes) -> str | None:
    try:
        left = flatten_params(decode_params(recomputed))
        right = flatten_params(decode_params(committed))
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
    detail = "" if match else "tampered_payload: initial model does not hash to its digest"
    return VersionVerdict(0, record.digest.hex(), recomputed, match, (), detail,
                          at_fault=None if match else "task publication")


def _listed_updates(
    record: GlobalModelRecord, by_id: dict[int, LedgerUpdate]
) -> tuple[list[LedgerUpdate], str]:
    missing = [i for i in record.update_ids if i not in by_id]
    if missing:
        return [], f"wrong_update_list: update ids {missing} are not updates of this task"
    if len(set(record.update_ids)) != len(record.update_ids):
        return [], f"wrong_update_list: update ids {list(record.update_ids)} repeat"
    return [by_id[i] for i in record.update_ids], ""


def _faulty_update(
    updates: Sequence[LedgerUpdate], base_payload: bytes, spec: TaskSpec
) -> str | None:
    for update in updates:
        try:
            check_update_payload(update, base_payload, spec)
        except UpdateRejectedError as exc:
            kind = "tampered_payload" if exc.reason == "digest_mismatch" else "bad_update"
            return f"{kind}: update {update.update_id} from {update.edge}: {exc.reason}"
    return None


def _verify_version(
    spec: TaskSpec, previous: GlobalModelRecord, record: GlobalModelRecord,
    by_id: dict[int, LedgerUpdate], rule_state: Any,
) -> tuple[VersionVerdict, Any]:
    committed = record.digest.hex()
    if digest_bytes(record.payload).hex() != committed:
        return VersionVerdict(record.version, committed, digest_bytes(record.payload).hex(), False,
                              record.update_ids,
                              "tampered_payload: committed payload does not hash to its digest",
                              at_fault=f"commit by {record.aggregator}"), rule_state
    updates, problem = _listed_updates(record, by_id)
    fault = problem or _faulty_update(updates, previous.payload, spec)
    if fault:
        return VersionVerdict(record.version, committed, "", False, record.update_ids,
                              "an aggregated update fails verification", at_fault=fault), rule_state
    try:
        built = build_global_model(spec, previous.payload, updates, rule_state=rule_state)
    except GlobalModelNotFiniteError as exc:
        return VersionVerdict(record.version, committed, "", False, record.update_ids,
                              f"global_model_not_finite: {exc}",
                              at_fault=f"commit by {record.aggregator}"), rule_state
    match = built.digest == record.digest
    return VersionVerdict(
        record.version, committed, built.digest.hex(), match, record.update_ids,
        "" if match else "digest_mismatch: recomputed model differs from the committed one",
        None if match else _first_differing_tensor(built.payload, record.payload),
        None if match else f"commit by {record.aggregator}",
    ), built.rule_state


def replay_versions(
    spec: TaskSpec, records: Sequence[GlobalModelRecord], updates: Sequence[LedgerUpdate]
) -> list[VersionVerdict]:
    """Recomputes each version from the previous committed one and the listed updates.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1)
      >>> replay_versions(spec, [], [])
      []
    """
    by_id = {u.update_id: u for u in updates}
    ordered = sorted(records, key=lambda r: r.version)
    verdicts = [_verify_initial(ordered[0])] if ordered else []
    rule_state = None
    for previous, record in zip(ordered, ordered[1:], strict=False):
        verdict, rule_state = _verify_version(spec, previous, record, by_id, rule_state)
        verdicts.append(verdict)
    return verdicts


def audit_records(
    task_id: int, spec: TaskSpec, records: Sequence[GlobalModelRecord],
    updates: Sequence[LedgerUpdate], *, authority: Authority | None = None,
    commits: Sequence[CommitRecord] | None = None,
) -> AuditReport:
    """Replays every version and runs every policy check; pure.

    Args:
      task_id: the task audited.
      spec: its spec (rule, min_updates, staleness, epsilon budget, aggregator quorum).
      records: its global model versions, version 0 first.
      updates: all its updates in ledger order.
      authority: roles and registered edges (None: signer checks are skipped).
      commits: every aggregator's commit (None: one commit per version, by ``aggregator``).

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1)
      >>> audit_records(1, spec, [], []).ok
      False
    """
    verdicts = replay_versions(spec, records, updates)
    if commits is None:
        commits = [CommitRecord(r.version, r.aggregator, r.digest, r.block_number, r.tx_hash)
                   for r in records if r.version]
    findings = [*check_update_lists(spec, records, updates), *check_budgets(spec, records, updates),
                *check_privacy_declarations(spec, records, updates),
                *check_aggregated_updates(spec, records, updates), *check_finite_models(records),
                *check_quorum(spec, records, commits, authority),
                *check_conflicts(records, commits)]
    if authority is not None:
        findings += check_signers(records, updates, authority)
    attached = tuple(
        replace(v, findings=tuple(f for f in findings if f.version == v.version)) for v in verdicts
    )
    return AuditReport(task_id, attached, tuple(f for f in findings if f.version is None))


_Signed = tuple[bytes, str, int, bytes]  # (role, account, block, tx hash)


def ledger_authority(ledger: Any, *, signed: Sequence[_Signed] = ()) -> Authority | None:
    """An Authority over the ledger: its role history (``role_changes``) when it has one, plus
    ``has_role`` / ``edges`` (cached) for the present; None without any of them.

    ``signed``: the (role, account, block, tx hash) to be checked; for those whose block also
    changed that role, the transaction's position is read (``transaction_index``).
    """
    has_role, edges = getattr(ledger, "has_role", None), getattr(ledger, "edges", None)
    changes = getattr(ledger, "role_changes", None)
    if has_role is None and edges is None and changes is None:
        return None
    cache: dict[tuple[bytes, str], bool] = {}

    def cached_role(role: bytes, account: str) -> bool:
        if (role, account) not in cache:
            cache[role, account] = bool(has_role(role, account))
        return cache[role, account]

    history = role_history(changes()) if changes else None
    positions = _positions(ledger, history, signed) if history else {}
    return Authority(cached_role if has_role else None, frozenset(edges()) if edges else None,
                     history, positions)


def _positions(ledger: Any, history: RoleHistory, signed: Sequence[_Signed]) -> dict[bytes, int]:
    index_of = getattr(ledger, "transaction_index", None)
    ambiguous = {tx for role, account, block, tx in signed
                 if history.changed_in(role, account, block)}
    return {tx: int(index_of(tx)) for tx in sorted(ambiguous)} if index_of else {}


def _signed_items(
    records: Sequence[GlobalModelRecord], updates: Sequence[LedgerUpdate],
    commits: Sequence[CommitRecord] | None,
) -> list[_Signed]:
    items = [(role, u.edge, u.block_number, u.tx_hash) for u in updates
             for role in (EDGE_ROLE, REGISTERED_EDGE)]
    items += [(AGGREGATOR_ROLE, r.aggregator, r.block_number, r.tx_hash) for r in records]
    items += [(AGGREGATOR_ROLE, c.aggregator, c.block, c.tx_hash) for c in commits or ()
              if c.block is not None]
    return items


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)


def ledger_commits(ledger: Any, task_id: int) -> list[CommitRecord] | None:
    """Every aggregator commit, via the ledger's ``read_commits(task_id)`` when it has one."""
    read_commits = getattr(ledger, "read_commits", None)
    if read_commits is None:
        return None
    return [CommitRecord(int(_field(c, "version")), str(_field(c, "aggregator")),
                         bytes(_field(c, "digest")), _optional(c, "block_number", int),
                         _optional(c, "tx_hash", bytes) or b"") for c in read_commits(task_id)]


def _optional(item: Any, name: str, kind: type) -> Any:
    has = name in item if isinstance(item, dict) else hasattr(item, name)
    return kind(_field(item, name)) if has else None


def verify_task(ledger: Ledger, task_id: int, *, check_roles: bool = True) -> AuditReport:
    """Reads a task's global models, updates, role history and commits and audits them.

    Roles are checked at the block of each update and commit (``check_roles=False`` skips them).
    """
    task = ledger.get_task(task_id)
    records = ledger.read_global_models(task_id)
    updates = ledger.read_updates(task_id)
    commits = ledger_commits(ledger, task_id)
    authority = None
    if check_roles:
        authority = ledger_authority(ledger, signed=_signed_items(records, updates, commits))
    return audit_records(task_id, task.spec, records, updates, authority=authority,
                         commits=commits)
