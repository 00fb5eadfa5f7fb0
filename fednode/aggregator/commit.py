"""Aggregator: commits a built version exactly once, even across a killed and restarted process.

The chain decides what is final (``Ledger.read_global_models``); this module only makes sure an
aggregator never sends a second commit for a version it (or a process before it, with the same
account) already sent. Before committing it waits until the account has no transaction in flight,
then commits only if the version is still open. A commit the contract refuses because the version
landed meanwhile (``UpdateLedgerUnexpectedVersion`` / ``UpdateLedgerAlreadyCommitted``) resolves
to the version that landed. With an aggregator quorum k > 1 it then waits for the other
aggregators.
"""

from __future__ import annotations

import logging
import time

from fednode.aggregator.build import BuiltGlobalModel
from fednode.chain.ledger import Ledger
from fednode.errors import ChainTimeoutError, ContractRevertError
from fednode.types import GlobalModelRecord, TaskRecord

__all__ = ["await_quorum", "commit_once", "final_record", "own_pending_commit"]

log = logging.getLogger(__name__)


def final_record(ledger: Ledger, task_id: int, version: int) -> GlobalModelRecord | None:
    """Version ``version`` of a task if it is final, else None."""
    records = ledger.read_global_models(task_id)
    return records[version] if len(records) > version else None


def own_pending_commit(ledger: Ledger, task_id: int, version: int) -> bool:
    """Whether this aggregator already committed ``version`` (then it must not commit again)."""
    commits = ledger.read_commits(task_id)
    return any(c.version == version and c.aggregator == ledger.sender for c in commits)


def await_quorum(
    ledger: Ledger, task_id: int, version: int, *, timeout: float, poll: float
) -> GlobalModelRecord:
    """Waits until ``version`` is final (k of n aggregators agreed)."""
    deadline = time.monotonic() + timeout
    while (record := final_record(ledger, task_id, version)) is None:
        if time.monotonic() >= deadline:
            raise ChainTimeoutError(
                f"task {task_id} version {version}: committed, but the aggregator quorum "
                f"did not finalize it within {timeout:.0f}s"
            )
        time.sleep(poll)
    return record


def _await_own_writes(ledger: Ledger, version: int, *, timeout: float, poll: float) -> bool:
    """Waits until none of this account's transactions is in flight; True if it had to wait."""
    if not (pending := ledger.pending_writes()):
        return False
    log.warning("version %d: waiting for %d transaction(s) this aggregator account already "
                "sent (a previous run's commit?) before committing", version, pending)
    deadline = time.monotonic() + timeout
    while ledger.pending_writes():
        if time.monotonic() >= deadline:
            raise ChainTimeoutError(f"version {version}: own transactions still pending "
                                    f"after {timeout:.0f}s")
        time.sleep(poll)
    return True


def _landed(
    ledger: Ledger, task_id: int, version: int, *, timeout: float, poll: float
) -> GlobalModelRecord | None:
    """The version if it is final, or its quorum once this aggregator committed it; else None."""
    if (record := final_record(ledger, task_id, version)) is not None:
        return record
    if own_pending_commit(ledger, task_id, version):
        return await_quorum(ledger, task_id, version, timeout=timeout, poll=poll)
    return None


_LANDED_ERRORS = ("UpdateLedgerUnexpectedVersion", "UpdateLedgerAlreadyCommitted")


def commit_once(
    ledger: Ledger, task: TaskRecord, version: int, built: BuiltGlobalModel,
    rejected_ids: tuple[int, ...], *, timeout: float, poll: float,
) -> GlobalModelRecord:
    """Commits ``built`` as ``version`` unless that version landed meanwhile.

    Args:
      ledger: the aggregator's ledger.
      task: the task being aggregated.
      version: the version ``built`` is (latest final version + 1 when the round started).
      built: the global model to commit.
      rejected_ids: updates the robust filter dropped.
      timeout: seconds to wait for own pending transactions and for the quorum.
      poll: seconds between ledger polls.

    Returns:
      The final record of ``version``: this commit's, or the one that landed first (a commit
      of a killed run with the same account, or another aggregator's).

    Raises:
      ChainTimeoutError: if own transactions stay pending or the quorum does not finalize.
      ContractRevertError: if the chain refuses the commit and the version did not land.
    """
    if _await_own_writes(ledger, version, timeout=timeout, poll=poll):
        landed = _landed(ledger, task.task_id, version, timeout=timeout, poll=poll)
        if landed is not None:
            log.warning("version %d landed from a commit sent earlier: not committing again",
                        version)
            return landed
    try:
        record = ledger.commit_global_model(
            task.task_id, version, built.payload, built.update_ids, rejected_ids=rejected_ids
        )
    except ContractRevertError as exc:
        if exc.name not in _LANDED_ERRORS:
            raise
        landed = _landed(ledger, task.task_id, version, timeout=timeout, poll=poll)
        if landed is None:
            raise
        log.warning("version %d landed before this commit (%s): continuing", version, exc.name)
        return landed
    if task.spec.aggregator_quorum > 1:
        record = await_quorum(ledger, task.task_id, version, timeout=timeout, poll=poll)
    return record
