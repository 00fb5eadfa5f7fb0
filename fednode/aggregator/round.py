"""Aggregator: the round loop that turns ledger updates into committed global model versions.

``run_round`` is the one template (read updates -> verify -> aggregate -> commit -> metrics); it
reaches the chain only through the ``Ledger`` protocol, so it runs unchanged on a real chain and on
``InMemoryLedger``. ``run_task`` carries a ``RuleCheckpoint`` from round to round, so a round
replays only the versions it has not seen (none, when it committed the previous one itself).

A restarted aggregator may find the commit of the process it replaces still in flight;
``commit.commit_once`` waits for it instead of committing the version a second time.

With k-of-n aggregators, every honest one lists the same candidate set
(``candidates.select_candidates``): the version's first commit fixes its cut-off on chain, and
a commit refused because another aggregator fixed a different cut-off first
(``UpdateLedgerCutoffMismatch``) is rebuilt over that cut-off, so an update landing between two
aggregators' reads cannot split them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from fednode.aggregator.build import BuiltGlobalModel, build_global_model
from fednode.aggregator.candidates import (
    CandidateSet,
    consumed_update_ids,
    distinct_edges,
    fixed_cutoff,
    select_candidates,
)
from fednode.aggregator.checkpoint import (
    RuleCheckpoint,
    advance_checkpoint,
    replay_needed,
    resume_rule_state,
)
from fednode.aggregator.commit import await_quorum, commit_once
from fednode.aggregator.crash import crash_if_armed
from fednode.chain.ledger import Ledger
from fednode.chain.records import GlobalModelCommit
from fednode.errors import ChainTimeoutError, ContractRevertError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskRecord, TaskState

__all__ = [
    "RoundResult", "aggregated_update_ids", "run_round", "run_task", "select_round_updates",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundResult:
    """What one round produced: the committed record and the updates left out (with reasons).

    ``checkpoint`` is the rule state for the next round: after ``record`` when this round built
    it, else one at an earlier version (a prefix of the ledger; the next round replays the rest).
    """

    record: GlobalModelRecord
    rejected: tuple[tuple[int, str], ...]
    seconds: float
    checkpoint: RuleCheckpoint | None = None


def select_round_updates(
    task: TaskRecord, updates: list[LedgerUpdate], *, aggregated: frozenset[int] = frozenset()
) -> list[LedgerUpdate]:
    """The updates the next version may aggregate, in ledger order (a pre-filter).

    Eligible: based on a version within the task's staleness window and not aggregated into
    an earlier version (the contract refuses both). What a version actually lists, with the
    refused ones and the cut-off, is ``candidates.select_candidates`` (``run_round`` uses it).

    Example:
      >>> from fednode.types import TaskSpec, TaskState
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1)
      >>> task = TaskRecord(1, spec, spec.digest, "0x0", TaskState.OPEN, 0, 1)
      >>> select_round_updates(task, [])
      []
    """
    newest = task.latest_version
    oldest = newest - task.spec.max_staleness
    eligible = sorted(
        (
            u for u in updates
            if oldest <= u.base_version <= newest and u.update_id not in aggregated
        ),
        key=lambda u: u.update_id,
    )
    return eligible


def aggregated_update_ids(records: list[GlobalModelRecord]) -> frozenset[int]:
    """Ids of every update some committed version already aggregated.

    Example:
      >>> aggregated_update_ids([])
      frozenset()
    """
    return frozenset(i for record in records for i in record.update_ids)


_WINDOW_READS = 8
"""Most base versions read one by one; a wider staleness window reads the whole task once."""


def _read_window(ledger: Ledger, task: TaskRecord, *, full: bool = False) -> list[LedgerUpdate]:
    """The updates on the base versions the next version may aggregate, and on the one before
    (updates on it that no version consumed must be listed as rejected), in ledger order.

    Reading only this window (two base versions for a sync task) keeps a round's reads
    independent of how many versions the task already has; ``full`` reads every update (a
    commit refused as incomplete names an older unconsumed one).
    """
    newest = task.latest_version
    oldest = max(newest - task.spec.max_staleness - 1, 0)
    if full or newest - oldest + 1 > _WINDOW_READS:
        return ledger.read_updates(task.task_id)
    window = [u for base in range(oldest, newest + 1)
              for u in ledger.read_updates(task.task_id, base_version=base)]
    return sorted(window, key=lambda u: u.update_id)


def _may_be_ready(task: TaskRecord, updates: list[LedgerUpdate], consumed: frozenset[int]) -> bool:
    """Cheap pre-check before decoding payloads: fresh unconsumed updates of K distinct edges."""
    oldest = task.latest_version - task.spec.max_staleness
    fresh = [u for u in updates if u.update_id not in consumed and u.base_version >= oldest]
    return distinct_edges(fresh) >= task.spec.min_updates


def _wait_for_candidates(
    ledger: Ledger, task: TaskRecord, global_payload: bytes, consumed: frozenset[int], *,
    cutoff: int, full: bool, timeout: float, poll: float,
) -> CandidateSet:
    """The round's candidate set, once it is complete (see ``candidates.select_candidates``)."""
    deadline = time.monotonic() + timeout
    while True:
        updates = _read_window(ledger, task, full=full)
        if cutoff or _may_be_ready(task, updates, consumed):
            chosen = select_candidates(task, updates, global_payload, consumed=consumed,
                                       cutoff=cutoff)
            if chosen is not None:
                return chosen
        if time.monotonic() >= deadline:
            fresh = [u for u in updates if u.update_id not in consumed]
            raise ChainTimeoutError(
                f"task {task.task_id} version {task.latest_version + 1}: unconsumed updates of "
                f"{distinct_edges(fresh)}/{task.spec.min_updates} distinct edges (valid ones "
                f"needed) after {timeout:.0f}s, cut-off {cutoff or 'not fixed'}"
            )
        time.sleep(poll)


def _resume(
    ledger: Ledger, task: TaskRecord, records: list[GlobalModelRecord],
    checkpoint: RuleCheckpoint | None,
) -> RuleCheckpoint:
    """The rule state after the last version; reads the task's updates only to replay."""
    if replay_needed(task, records, checkpoint):
        return resume_rule_state(task, records, ledger.read_updates(task.task_id), checkpoint)
    return resume_rule_state(task, records, (), checkpoint)


def _next_checkpoint(
    resumed: RuleCheckpoint, record: GlobalModelRecord, built: BuiltGlobalModel
) -> RuleCheckpoint:
    """Advances the checkpoint when the final version is the one built here."""
    ours = (record.digest, tuple(record.update_ids)) == (built.digest, built.update_ids)
    if not ours:
        log.warning("version %d is final with digest %s, not this aggregator's %s",
                    record.version, record.digest.hex(), built.digest.hex())
        return resumed
    return advance_checkpoint(resumed, record, built.rule_state)


def run_round(
    ledger: Ledger, task_id: int, *, timeout: float = 600.0, poll: float = 0.5,
    checkpoint: RuleCheckpoint | None = None,
) -> RoundResult:
    """Builds and commits the next global model version of a task.

    With an aggregator quorum k > 1 (``spec.aggregator_quorum``) the version is final only
    once k aggregators committed the same digest over the same update list: this aggregator
    commits once and then waits for the others; a restarted aggregator that already committed
    only waits. A commit this account sent before (a killed run's) is waited for, never
    repeated.

    Args:
      ledger: the aggregator's ledger.
      task_id: the task.
      timeout: seconds to wait for updates, for own pending transactions and for the quorum.
      poll: seconds between ledger polls.
      checkpoint: the previous round's ``RoundResult.checkpoint`` (rule state after the
        version it built); the rule state is replayed from the ledger where it does not match.

    Raises:
      ChainTimeoutError: if too few updates arrive, or the quorum does not finalize in time.
      ContractRevertError: if the chain refuses the commit (other than a version that landed).
    """
    started = time.monotonic()
    task = ledger.get_task(task_id)
    records = ledger.read_global_models(task_id)
    version = records[-1].version + 1
    commits = ledger.read_commits(task_id)  # read once: own commits, rejected ids, cut-off
    if any(c.version == version and c.aggregator == ledger.sender for c in commits):
        record = await_quorum(ledger, task_id, version, timeout=timeout, poll=poll)
        return RoundResult(record, (), time.monotonic() - started, checkpoint)
    resumed = _resume(ledger, task, records, checkpoint)
    full_read = False
    for attempt in range(1, _COMMIT_ATTEMPTS + 1):
        try:
            return _build_and_commit(ledger, task, records, commits, resumed, started,
                                     full_read=full_read, timeout=timeout, poll=poll)
        except ContractRevertError as exc:
            if exc.name not in _RETRY_ERRORS or attempt == _COMMIT_ATTEMPTS:
                raise
            log.warning("version %d: commit refused (%s %s): re-reading the candidate set",
                        version, exc.name, exc.args_by_name)
            full_read = full_read or exc.name == "UpdateLedgerIncompleteCandidateSet"
            commits = ledger.read_commits(task_id)
    raise AssertionError("unreachable: the last attempt returns or raises")


_COMMIT_ATTEMPTS = 3
_RETRY_ERRORS = ("UpdateLedgerCutoffMismatch", "UpdateLedgerIncompleteCandidateSet")
"""Refusals that mean "another aggregator fixed the cut-off" or "an older unconsumed update
exists": the round reads the candidate set again and rebuilds."""


def _build_and_commit(
    ledger: Ledger, task: TaskRecord, records: list[GlobalModelRecord],
    commits: list[GlobalModelCommit], resumed: RuleCheckpoint, started: float, *,
    full_read: bool, timeout: float, poll: float,
) -> RoundResult:
    """Stages 1-5 of one round over the candidate set the ledger allows now."""
    current = records[-1]
    version = current.version + 1
    # ---- stage 1: read updates (up to the cut-off a first commit fixed, if any) ------------
    consumed = consumed_update_ids(records, commits)
    cutoff = fixed_cutoff(commits, version)
    # ---- stage 2: verify (stale and invalid updates are listed as rejected) ----------------
    chosen = _wait_for_candidates(ledger, task, current.payload, consumed, cutoff=cutoff,
                                  full=full_read, timeout=timeout, poll=poll)
    crash_if_armed("after_read", version)
    # ---- stage 3: aggregate ----------------------------------------------------------------
    built = build_global_model(task.spec, current.payload, chosen.accepted,
                               rule_state=resumed.rule_state)
    crash_if_armed("after_build", version)
    # ---- stage 4: commit global ------------------------------------------------------------
    record = commit_once(ledger, task, version, built, chosen.rejected_ids,
                         timeout=timeout, poll=poll)
    # ---- stage 5: emit metrics -------------------------------------------------------------
    seconds = time.monotonic() - started
    log.info(
        "task %d version %d committed: %d updates (%d rejected, cut-off %d), digest %s, %.1fs",
        task.task_id, record.version, len(record.update_ids), len(chosen.rejected),
        chosen.cutoff, record.digest.hex(), seconds,
    )
    return RoundResult(record, chosen.rejected, seconds,
                       _next_checkpoint(resumed, record, built))


def run_task(
    ledger: Ledger,
    task_id: int,
    *,
    timeout: float = 600.0,
    poll: float = 0.5,
    on_round: Callable[[RoundResult], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[RoundResult]:
    """Runs rounds until the task is finished, cancelled or expired (or ``should_stop()``).

    The rule state after each version is kept in memory (``RuleCheckpoint``) and handed to
    the next round, so a round costs the same at version 100 as at version 2.
    """
    results: list[RoundResult] = []
    checkpoint: RuleCheckpoint | None = None
    while not should_stop():
        state = ledger.get_task(task_id).state
        if state not in (TaskState.OPEN, TaskState.TRAINING):
            break
        result = run_round(ledger, task_id, timeout=timeout, poll=poll, checkpoint=checkpoint)
        checkpoint = result.checkpoint
        results.append(result)
        if on_round is not None:
            on_round(result)
    return results
