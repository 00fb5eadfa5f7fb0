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

__all__ = ["RoundResult", "run_round", "run_task", "select_round_updates"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundResult:
    """What one round produced: the committed record and the updates left out (with reasons)."""

    record: GlobalModelRecord
    rejected: tuple[tuple[int, str], ...]
    seconds: float


def select_round_updates(
    task: TaskRecord, updates: list[LedgerUpdate]
) -> list[LedgerUpdate]:
    """Picks the updates a round may aggregate: bases within the task's staleness window.

    Example:
      >>> select_round_updates.__name__
      'select_round_updates'
    """
    newest = task.latest_version
    oldest = newest - task.spec.max_staleness
    return sorted(
        (u for u in updates if oldest <= u.base_version <= newest), key=lambda u: u.update_id
    )


def _wait_for_updates(
    ledger: Ledger, task: TaskRecord, *, timeout: float, poll: float
) -> list[LedgerUpdate]:
    deadline = time.monotonic() + timeout
    while True:
        candidates = select_round_updates(task, ledger.read_updates(task.task_id))
        if len(candidates) >= task.spec.min_updates:
            return candidates
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


def run_round(
    ledger: Ledger, task_id: int, *, timeout: float = 600.0, poll: float = 0.5
) -> RoundResult:
    """Builds and commits the next global model version of a task.

    Raises:
      ChainTimeoutError: if too few updates arrive within ``timeout`` seconds.
      ContractRevertError: if the chain refuses the commit.
    """
    started = time.monotonic()
    task = ledger.get_task(task_id)
    records = ledger.read_global_models(task_id)
    current = records[-1]
    # ---- stage 1: read updates -------------------------------------------------------------
    candidates = _wait_for_updates(ledger, task, timeout=timeout, poll=poll)
    # ---- stage 2: verify -------------------------------------------------------------------
    accepted, rejected = _verify(candidates, current.payload)
    if len(accepted) < task.spec.min_updates:
        raise UpdateRejectedError("too_few_valid", f"{len(accepted)} valid, rejected {rejected}")
    # ---- stage 3: aggregate ----------------------------------------------------------------
    rule_state = replay_rule_state(task.spec, records, ledger.read_updates(task_id))
    built = build_global_model(task.spec, current.payload, accepted, rule_state=rule_state)
    # ---- stage 4: commit global ------------------------------------------------------------
    record = ledger.commit_global_model(
        task_id, current.version + 1, built.payload, built.update_ids
    )
    # ---- stage 5: emit metrics -------------------------------------------------------------
    seconds = time.monotonic() - started
    log.info(
        "task %d version %d committed: %d updates, digest %s, %.1fs",
        task_id, record.version, len(built.update_ids), record.digest.hex(), seconds,
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
