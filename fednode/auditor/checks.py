"""Auditor: pure policy checks over ledger records (update lists, signers, privacy budget, quorum).

Each check takes records as read from the ledger and returns :class:`Finding` values; none of
them reads anything. What the consortium says about accounts (roles, registered edges) comes in
as an :class:`Authority`, and the commits of each version (for the k-of-n aggregator quorum) as
:class:`CommitRecord` values, so hand-built records exercise every check in unit tests. With a
:class:`~fednode.auditor.roles.RoleHistory` the roles are those in force at the block that
included each update or commit; without one, ``has_role`` answers for the present.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fednode.auditor.roles import RoleHistory
from fednode.chain.constants import AGGREGATOR_ROLE, EDGE_ROLE
from fednode.chain.roles import REGISTERED_EDGE, role_name
from fednode.types import EPSILON_SCALE, GlobalModelRecord, LedgerUpdate, TaskSpec

__all__ = [
    "FINDING_KINDS",
    "Authority",
    "CommitRecord",
    "Finding",
    "aggregated_in",
    "check_budgets",
    "check_conflicts",
    "check_quorum",
    "check_signers",
    "check_update_lists",
]

FINDING_KINDS = (
    "tampered_payload", "wrong_update_list", "forged_signer", "budget_overrun",
    "privacy_underdeclared", "quorum_violation", "digest_mismatch", "conflicting_commit",
    # the one update check re-made on aggregated updates (update_checks.py)
    "rejected_update", "too_many_examples", "global_model_not_finite",
)
"""Every kind of problem the auditor reports."""

RoleCheck = Callable[[bytes, str], bool]


@dataclass(frozen=True)
class Finding:
    """One problem: its kind, the version it taints (None: task-wide), who is at fault, why."""

    kind: str
    version: int | None
    at_fault: str
    detail: str


@dataclass(frozen=True)
class CommitRecord:
    """One aggregator's commit of a version's digest (a quorum needs k distinct ones)."""

    version: int
    aggregator: str
    digest: bytes
    block: int | None = None
    tx_hash: bytes = b""


@dataclass(frozen=True)
class Authority:
    """What the consortium says about accounts, as seen by the auditor.

    Args:
      has_role: ``(role, account) -> bool`` now; None skips role checks (unless ``history``).
      edges: registered edge addresses now (checksummed); None skips the registration check.
      history: roles and registrations over time; when given, every update and commit is
        checked against the roles in force at its block and ``has_role`` / ``edges`` are unused.
      tx_positions: tx hash -> index in its block, for transactions whose block also changed
        the sender's role (otherwise the role at the end of the block counts).
    """

    has_role: RoleCheck | None = None
    edges: frozenset[str] | None = None
    history: RoleHistory | None = None
    tx_positions: Mapping[bytes, int] = field(default_factory=dict)

    def holds(self, role: bytes, account: str, block: int | None, tx_hash: bytes = b"") -> bool:
        """Whether ``account`` held ``role`` at ``block`` (history) or holds it now; True when
        the authority cannot tell.

        Example:
          >>> Authority(has_role=lambda role, account: False).holds(EDGE_ROLE, "0xE", 3)
          False
        """
        if self.history is not None and block is not None:
            position = self.tx_positions.get(bytes(tx_hash))
            return self.history.held(role, account, block, tx_index=position)
        if role == REGISTERED_EDGE:
            return self.edges is None or account in self.edges
        return self.has_role is None or bool(self.has_role(role, account))


def _list_problems(
    spec: TaskSpec, record: GlobalModelRecord, by_id: Mapping[int, LedgerUpdate],
    used: Mapping[int, int],
) -> Iterable[str]:
    ids = record.update_ids
    edges = {by_id[i].edge for i in ids if i in by_id}
    if len(edges) < spec.min_updates and all(i in by_id for i in ids):
        yield (f"aggregates updates of {len(edges)} distinct edges, the task needs "
               f"{spec.min_updates}")
    if list(ids) != sorted(set(ids)):
        yield f"update ids {list(ids)} are not strictly increasing (ledger order)"
    for update_id in ids:
        update = by_id.get(update_id)
        if update is None:
            yield f"update {update_id} is not an update of task {record.task_id}"
        elif update_id in used:
            yield f"update {update_id} was already aggregated in v{used[update_id]}"
        elif not 0 < record.version - update.base_version <= spec.max_staleness + 1:
            yield (f"update {update_id} is based on v{update.base_version}, not allowed in "
                   f"v{record.version} (max staleness {spec.max_staleness})")


def check_update_lists(
    spec: TaskSpec, records: Sequence[GlobalModelRecord], updates: Sequence[LedgerUpdate]
) -> list[Finding]:
    """Each version lists known, fresh, unused updates of its task in ledger order.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1)
      >>> r = GlobalModelRecord(1, 1, b"", (9,), "0xA", b"", 1, b"")
      >>> [f.kind for f in check_update_lists(spec, [r], [])]
      ['wrong_update_list']
    """
    by_id = {u.update_id: u for u in updates}
    used: dict[int, int] = {}
    findings = []
    for record in sorted(records, key=lambda r: r.version):
        if record.version == 0:
            continue
        for problem in _list_problems(spec, record, by_id, used):
            findings.append(Finding("wrong_update_list", record.version,
                                    f"commit by {record.aggregator}", problem))
        used.update((i, record.version) for i in record.update_ids if i not in used)
    return findings


def aggregated_in(records: Sequence[GlobalModelRecord]) -> dict[int, int]:
    """update id -> the first version that aggregated it."""
    found: dict[int, int] = {}
    for record in sorted(records, key=lambda r: r.version):
        for update_id in record.update_ids:
            found.setdefault(update_id, record.version)
    return found


def check_signers(
    records: Sequence[GlobalModelRecord], updates: Sequence[LedgerUpdate], authority: Authority
) -> list[Finding]:
    """Updates come from registered edges holding EDGE_ROLE; commits from AGGREGATOR_ROLE holders.

    With ``authority.history`` each is checked at the block that included it (an edge revoked
    later still held its role then); without it, against the roles of today.

    Example:
      >>> u = LedgerUpdate(1, 1, 0, "0xE", b"", 1, 0, b"", 1, b"")
      >>> [f.at_fault for f in check_signers([], [u], Authority(edges=frozenset()))]
      ['update 1 from 0xE']
    """
    version_of = aggregated_in(records)
    findings = []
    for update in updates:
        problem = _signer_problem(authority, (REGISTERED_EDGE, EDGE_ROLE), update.edge,
                                  update.block_number, update.tx_hash)
        if problem:
            findings.append(Finding("forged_signer", version_of.get(update.update_id),
                                    f"update {update.update_id} from {update.edge}",
                                    f"signer {update.edge} {problem}"))
    for record in records:
        if record.version == 0:
            continue
        problem = _signer_problem(authority, (AGGREGATOR_ROLE,), record.aggregator,
                                  record.block_number, record.tx_hash)
        if problem:
            findings.append(Finding("forged_signer", record.version,
                                    f"commit by {record.aggregator}",
                                    f"aggregator {record.aggregator} {problem}"))
    return findings


def _signer_problem(
    authority: Authority, roles: Sequence[bytes], account: str, block: int, tx_hash: bytes
) -> str:
    """"" when ``account`` held every role; else what it lacked (and when, with a history)."""
    lacking = [r for r in roles if not authority.holds(r, account, block, tx_hash)]
    if not lacking:
        return ""
    history = authority.history
    if history is None:
        return " and ".join("is not a registered edge" if r == REGISTERED_EDGE
                            else f"lacks {role_name(r)}" for r in lacking)
    said = " and ".join("was not a registered edge" if r == REGISTERED_EDGE
                        else f"lacked {role_name(r)}" for r in lacking)
    shown = roles[-1]
    return (f"{said} at block {block}, the block that included it "
            f"({history.timeline(shown, account)})")


def check_budgets(
    spec: TaskSpec, records: Sequence[GlobalModelRecord], updates: Sequence[LedgerUpdate]
) -> list[Finding]:
    """No edge spends more than ``spec.epsilon_budget`` on a task (0 = no budget).

    The update that pushes an edge over the budget is at fault; the finding taints the version
    that aggregated it (None if none did yet).

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, epsilon_budget=1.0)
      >>> u = LedgerUpdate(1, 1, 0, "0xE", b"", 1, 1_500_000, b"", 1, b"")
      >>> [f.kind for f in check_budgets(spec, [], [u])]
      ['budget_overrun']
    """
    if spec.epsilon_budget <= 0:
        return []
    budget = round(spec.epsilon_budget * EPSILON_SCALE)
    version_of = aggregated_in(records)
    spent: Counter[str] = Counter()
    findings = []
    for update in sorted(updates, key=lambda u: u.update_id):
        spent[update.edge] += update.epsilon_micro
        if spent[update.edge] > budget:
            findings.append(Finding(
                "budget_overrun", version_of.get(update.update_id),
                f"update {update.update_id} from {update.edge}",
                f"edge {update.edge} has spent epsilon {spent[update.edge] / EPSILON_SCALE:g} "
                f"> budget {spec.epsilon_budget:g}",
            ))
    return findings


def check_conflicts(
    records: Sequence[GlobalModelRecord], commits: Sequence[CommitRecord]
) -> list[Finding]:
    """Commits that disagree with their version: with the final digest, or (for a version not
    final yet) with the version's first commit. The contract records such a commit and emits
    ``GlobalModelConflict``; the version still finalizes once a quorum agrees, and the
    aggregator that sent the other digest is reported here.

    Example:
      >>> r = GlobalModelRecord(1, 1, b"d", (1,), "0xA", b"", 1, b"")
      >>> bad = CommitRecord(1, "0xB", b"x", 5, b"\x01")
      >>> [f.at_fault for f in check_conflicts([r], [CommitRecord(1, "0xA", b"d"), bad])]
      ['commit by 0xB (tx 0x01)']
    """
    final = {r.version: r.digest for r in records}
    first: dict[int, bytes] = {}
    findings = []
    for commit in commits:
        expected = final.get(commit.version, first.setdefault(commit.version, commit.digest))
        if commit.digest == expected:
            continue
        state = "the final" if commit.version in final else "the first commit's"
        findings.append(Finding(
            "conflicting_commit", commit.version,
            f"commit by {commit.aggregator} (tx 0x{bytes(commit.tx_hash).hex()})",
            f"committed 0x{commit.digest.hex()[:16]}… for v{commit.version}, not {state} "
            f"digest 0x{expected.hex()[:16]}…",
        ))
    return findings


def check_quorum(
    spec: TaskSpec, records: Sequence[GlobalModelRecord], commits: Sequence[CommitRecord],
    authority: Authority | None = None,
) -> list[Finding]:
    """Each version's digest was committed by at least ``spec.aggregator_quorum`` distinct
    aggregators (holding AGGREGATOR_ROLE when ``authority`` can tell).

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, aggregator_quorum=2)
      >>> r = GlobalModelRecord(1, 1, b"d", (1,), "0xA", b"", 1, b"")
      >>> [f.kind for f in check_quorum(spec, [r], [CommitRecord(1, "0xA", b"d")])]
      ['quorum_violation']
    """
    agreeing: dict[int, set[str]] = defaultdict(set)
    digest_of = {r.version: r.digest for r in records}
    for commit in commits:
        if commit.digest != digest_of.get(commit.version):
            continue
        if authority is None or authority.holds(AGGREGATOR_ROLE, commit.aggregator, commit.block,
                                                commit.tx_hash):
            agreeing[commit.version].add(commit.aggregator)
    findings = []
    for record in records:
        count = len(agreeing[record.version])
        if record.version and count < spec.aggregator_quorum:
            findings.append(Finding(
                "quorum_violation", record.version, f"commit by {record.aggregator}",
                f"{count} of the required {spec.aggregator_quorum} aggregators committed "
                f"0x{record.digest.hex()[:16]}…",
            ))
    return findings
