"""Aggregator: the round loop that turns ledger updates into committed global model versions.

``run_round`` is the one template (read updates -> verify -> aggregate -> commit -> metrics); it
reaches the chain only through the ``Ledger`` protocol, so it runs unchanged on a real chain and on
``InMemoryLedger``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from fednode.aggregator.build import build_global_model, check_update_payload, replay_rule_state
from fednode.chain.ledger import Ledger
from fednode.errors import ChainTimeoutError, UpdateRejectedError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskRecord, TaskState

__all__ = [
    "RoundResult", "aggregated_update_ids", "run_round", "run_task", "select_round_updates",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundResult:
    """What one round produced: the committed record and the updates left out (with reasons)."""

    record: GlobalModelRecord
    rejected: tuple[tuple[int, str], ...]
    seconds: float


def select_round_updates(
    task: TaskRecord, updates: list[LedgerUpdate], *, aggregated: frozenset[int] = frozenset()
) -> list[LedgerUpdate]:
    """Picks the updates the next version may aggregate, in ledger order.

    Eligible: based on a version within the task's staleness window and not aggregated into
    an earlier version (the contract refuses both). A sync task aggregates every valid one; an
    async task (FedBuff) the first ``min_updates`` valid ones (its buffer size K, see
    ``run_round``), so a version is built as soon as K updates arrived, whoever sent them.

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


def _wait_for_updates(
    ledger: Ledger, task: TaskRecord, aggregated: frozenset[int], *, timeout: float, poll: float
) -> tuple[list[LedgerUpdate], list[LedgerUpdate]]:
    """The round's candidates and every update of the task read in the same pass."""
    deadline = time.monotonic() + timeout
    while True:
        updates = ledger.read_updates(task.task_id)
        candidates = select_round_updates(task, updates, aggregated=aggregated)
        if len(candidates) >= task.spec.min_updates:
            return candidates, updates
        if time.monotonic() >= deadline:
            raise ChainTimeoutError(
                f"task {task.task_id} version {task.latest_version}: "
                f"{len(candidates)}/{task.spec.min_updates} updates after {timeout:.0f}s"
            )
        time.sleep(poll)


def _verify(updates: list[LedgerUpdate], global_payload: bytes):
    accepted, rejected = [], []
    for update in updates:
        try:
            check_update_payload(update, global_payload)
            accepted.append(update)
        except UpdateRejectedError as exc:
            rejected.append((update.update_id, exc.reason))
    return accepted, rejected


def _final_record(ledger: Ledger, task_id: int, version: int) -> GlobalModelRecord | None:
    records = ledger.read_global_models(task_id)
    return records[version] if len(records) > version else None


def _own_pending_commit(ledger: Ledger, task_id: int, version: int) -> bool:
    """Whether this aggregator already committed ``version`` (then it must not commit again)."""
    commits = getattr(ledger, "read_commits", None)
    if commits is None:
        return False
    return any(c.version == version and c.aggregator == ledger.sender for c in commits(task_id))


def _await_quorum(
    ledger: Ledger, task_id: int, version: int, *, timeout: float, poll: float
) -> GlobalModelRecord:
    """Waits until ``version`` is final (k of n aggregators agreed)."""
    deadline = time.monotonic() + timeout
    while (record := _final_record(ledger, task_id, version)) is None:
        if time.monotonic() >= deadline:
            raise ChainTimeoutError(
                f"task {task_id} version {version}: committed, but the aggregator quorum "
                f"did not finalize it within {timeout:.0f}s"
            )
        time.sleep(poll)
    return record


def _rejected_so_far(ledger: Ledger, task_id: int) -> frozenset[int]:
    commits = getattr(ledger, "read_commits", None)
    if commits is None:
        return frozenset()
    return frozenset(i for c in commits(task_id) if c.final for i in c.rejected_ids)


def run_round(
    ledger: Ledger, task_id: int, *, timeout: float = 600.0, poll: float = 0.5
) -> RoundResult:
    """Builds and commits the next global model version of a task.

    With an aggregator quorum k > 1 (``spec.aggregator_quorum``) the version is final only
    once k aggregators committed the same digest over the same update list: this aggregator
    commits once and then waits for the others; a restarted aggregator that already committed
    only waits.

    Raises:
      ChainTimeoutError: if too few updates arrive, or the quorum does not finalize in time.
      ContractRevertError: if the chain refuses the commit.
    """
    started = time.monotonic()
    task = ledger.get_task(task_id)
    records = ledger.read_global_models(task_id)
    current = records[-1]
    version = current.version + 1
    if _own_pending_commit(ledger, task_id, version):
        record = _await_quorum(ledger, task_id, version, timeout=timeout, poll=poll)
        return RoundResult(record, (), time.monotonic() - started)
    # ---- stage 1: read updates -------------------------------------------------------------
    aggregated = aggregated_update_ids(records) | _rejected_so_far(ledger, task_id)
    candidates, updates = _wait_for_updates(ledger, task, aggregated, timeout=timeout, poll=poll)
    # ---- stage 2: verify -------------------------------------------------------------------
    accepted, rejected = _verify(candidates, current.payload)
    if task.spec.mode == "async":
        accepted = accepted[: task.spec.min_updates]
    if len(accepted) < task.spec.min_updates:
        raise UpdateRejectedError("too_few_valid", f"{len(accepted)} valid, rejected {rejected}")
    # ---- stage 3: aggregate ----------------------------------------------------------------
    rule_state = replay_rule_state(task.spec, records, updates)
    built = build_global_model(task.spec, current.payload, accepted, rule_state=rule_state)
    # ---- stage 4: commit global ------------------------------------------------------------
    record = ledger.commit_global_model(
        task_id, version, built.payload, built.update_ids,
        rejected_ids=tuple(update_id for update_id, _ in rejected),
    )
    if task.spec.aggregator_quorum > 1:
        record = _await_quorum(ledger, task_id, version, timeout=timeout, poll=poll)
    # ---- stage 5: emit metrics -------------------------------------------------------------
    seconds = time.monotonic() - started
    log.info(
        "task %d version %d committed: %d updates (%d rejected), digest %s, %.1fs",
        task_id, record.version, len(built.update_ids), len(rejected), record.digest.hex(),
        seconds,
    )
    return RoundResult(record, tuple(rejected), seconds)


def run_task(
    ledger: Ledger,
    task_id: int,
    *,
    timeout: float = 600.0,
    poll: float = 0.5,
    on_round: Callable[[RoundResult], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[RoundResult]:
    """Runs rounds until the task is finished, cancelled or expired (or ``should_stop()``)."""
    results = []
    while not should_stop():
        state = ledger.get_task(task_id).state
        if state not in (TaskState.OPEN, TaskState.TRAINING):
            break
        result = run_round(ledger, task_id, timeout=timeout, poll=poll)
        results.append(result)
        if on_round is not None:
            on_round(result)
    return results
