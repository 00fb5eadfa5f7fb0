"""Auditor: withdrawal tracing, every global model version that holds one edge's contributions.

A version contains an edge's updates *directly* when it aggregates them, and *by descent* when
it builds on a version that did (every version is the previous version plus a delta, so a
contribution never leaves a task's later versions). :func:`affected_versions` is pure;
:func:`find_affected` reads every task through the ``Ledger`` protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from eth_utils import is_address, to_checksum_address

from fednode.chain.ledger import Ledger
from fednode.errors import FednodeValueError
from fednode.types import GlobalModelRecord, LedgerUpdate

__all__ = ["AffectedVersion", "affected_versions", "find_affected", "render_affected"]


@dataclass(frozen=True)
class AffectedVersion:
    """One version holding the edge's contribution.

    ``how`` is ``"direct"`` (``update_ids`` are the edge's updates it aggregates) or
    ``"descent"`` (it builds on ``inherited_from``, the first version that aggregated them).
    """

    task_id: int
    version: int
    digest: str
    how: str
    update_ids: tuple[int, ...]
    inherited_from: int

    def to_dict(self) -> dict:
        return asdict(self)


def _task_affected(
    edge: str, records: Sequence[GlobalModelRecord], updates: Sequence[LedgerUpdate],
    from_version: int,
) -> list[AffectedVersion]:
    mine = {u.update_id for u in updates if u.edge == edge}
    found: list[AffectedVersion] = []
    first: int | None = None
    for record in sorted(records, key=lambda r: r.version):
        direct = tuple(i for i in record.update_ids if i in mine)
        if record.version < from_version:
            continue
        if direct and first is None:
            first = record.version
        if first is None:
            continue
        how = "direct" if direct else "descent"
        found.append(AffectedVersion(record.task_id, record.version, "0x" + record.digest.hex(),
                                     how, direct, first))
    return found


def affected_versions(
    edge: str,
    tasks: Sequence[tuple[Sequence[GlobalModelRecord], Sequence[LedgerUpdate]]],
    *,
    from_version: int = 0,
) -> list[AffectedVersion]:
    """Versions (over all tasks) that contain ``edge``'s updates, directly or by descent.

    Args:
      edge: the contributor's edge address.
      tasks: per task, its global model records and its updates.
      from_version: only the edge's updates aggregated into versions >= this count (a
        withdrawal that applies from a version on); earlier versions are not listed.

    Example:
      >>> r = [GlobalModelRecord(1, v, b"", ids, "0xA", b"", v, b"")
      ...      for v, ids in ((0, ()), (1, (1,)), (2, (2,)))]
      >>> u = [LedgerUpdate(1, 1, 0, "0xE", b"", 1, 0, b"", 1, b"")]
      >>> [(a.version, a.how) for a in affected_versions("0xE", [(r, u)])]
      [(1, 'direct'), (2, 'descent')]
    """
    if from_version < 0:
        raise FednodeValueError(f"from_version must be >= 0, got {from_version}")
    found: list[AffectedVersion] = []
    for records, updates in tasks:
        found += _task_affected(edge, records, updates, from_version)
    return found


def find_affected(ledger: Ledger, edge: str, *, from_version: int = 0) -> list[AffectedVersion]:
    """Reads every task from the ledger and lists the versions holding ``edge``'s updates.

    Raises:
      FednodeValueError: if ``edge`` is not an address.
    """
    if not is_address(edge):
        raise FednodeValueError(f"--edge must be a 0x address, got {edge!r}")
    tasks = [(ledger.read_global_models(t.task_id), ledger.read_updates(t.task_id))
             for t in ledger.list_tasks()]
    return affected_versions(to_checksum_address(edge), tasks, from_version=from_version)


def render_affected(edge: str, found: Sequence[AffectedVersion]) -> str:
    """One line per affected version, saying whether it is direct or by descent."""
    if not found:
        return f"no global model version contains updates of {edge}"
    lines = [f"{len(found)} global model versions contain updates of {edge}:"]
    for a in found:
        why = (f"aggregates its updates {list(a.update_ids)}" if a.how == "direct"
               else f"by descent from v{a.inherited_from}")
        lines.append(f"  task {a.task_id} v{a.version} {a.digest}: {a.how}, {why}")
    return "\n".join(lines)
