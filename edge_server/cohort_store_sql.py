"""Edge: the SQL steps of the edge cohort state machine, run inside one store transaction.

Each function takes the connection of an open :meth:`EdgeStore.transaction` and writes or reads
the cohort tables (``cohorts``, ``cohort_members``, ``cohort_shares``, ``cohort_reveals``);
:class:`edge_server.cohort_store.CohortStore` strings them together.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

import numpy as np

from edge_server.cohort_store_records import CohortTask, CohortView, Member, read_cohort
from edge_server.secagg import combine_shares, public_of
from fednode.errors import UpdateRejectedError

__all__ = [
    "insert_member",
    "masked_vectors",
    "open_cohort",
    "rebuild_secret",
    "require_state",
    "revealer_count",
    "set_member",
    "set_state",
    "set_survivors",
]


def open_cohort(db: sqlite3.Connection, task: CohortTask, first_state: str) -> CohortView:
    """The cohort of ``task``, created in ``first_state`` when none exists yet."""
    view = read_cohort(db, task.task_id, task.base_version)
    if view is not None:
        return view
    config = task.config
    db.execute(
        "INSERT INTO cohorts (task_id, base_version, size, secure, threshold, min_size, scale,"
        " state, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (task.task_id, task.base_version, config.size, int(config.secure), config.threshold,
         config.min_size, task.scale, first_state, time.time()),
    )  # fmt: skip
    view = read_cohort(db, task.task_id, task.base_version)
    assert view is not None
    return view


def require_state(view: CohortView, state: str) -> None:
    """Refuses (``cohort_state``) unless the cohort is in ``state``."""
    if view.state != state:
        detail = f"cohort of task {view.task_id} base {view.base_version} is {view.state}"
        raise UpdateRejectedError("cohort_state", f"{detail}, not {state}")


def insert_member(
    db: sqlite3.Connection, task: CohortTask, view: CohortView, device_id: str, examples: int
) -> str:
    """Adds a device at the next position; returns its reference (refuses a second join)."""
    if any(m.device_id == device_id for m in view.members):
        raise UpdateRejectedError("cohort_member", f"{device_id} is already in this cohort")
    ref = uuid.uuid4().hex
    db.execute(
        "INSERT INTO cohort_members (task_id, base_version, device_id, ref, position,"
        " num_examples, created_at) VALUES (?,?,?,?,?,?,?)",
        (task.task_id, task.base_version, device_id, ref, len(view.members), examples, time.time()),
    )
    return ref


def set_state(
    db: sqlite3.Connection, task: CohortTask, state: str, *, deadline: float | None = None,
    update_ref: str | None = None, error: str | None = None,
) -> None:  # fmt: skip
    """Moves the cohort to ``state`` with a new deadline (and its update or error)."""
    db.execute(
        "UPDATE cohorts SET state = ?, deadline = ?, update_ref = COALESCE(?, update_ref),"
        " error = ? WHERE task_id = ? AND base_version = ?",
        (state, deadline, update_ref, error, task.task_id, task.base_version),
    )


def set_member(
    db: sqlite3.Connection, task: CohortTask, device_id: str, assignment: str, *values: object
) -> None:
    """Applies one SQL ``assignment`` (with its ``?`` ``values``) to a member's row."""
    db.execute(
        f"UPDATE cohort_members SET {assignment}"
        " WHERE task_id = ? AND base_version = ? AND device_id = ?",
        (*values, task.task_id, task.base_version, device_id),
    )


def masked_vectors(db: sqlite3.Connection, task: CohortTask) -> dict[str, np.ndarray]:
    """The masked input vectors received so far, by device."""
    rows = db.execute(
        "SELECT device_id, masked FROM cohort_members WHERE task_id = ? AND base_version = ?"
        " AND masked IS NOT NULL",
        (task.task_id, task.base_version),
    ).fetchall()
    return {str(d): np.frombuffer(bytes(m), dtype="<u4").copy() for d, m in rows}


def set_survivors(db: sqlite3.Connection, task: CohortTask, survivors: list[str]) -> None:
    """Fixes the list of devices whose masked input the sum holds (the consistency round's)."""
    db.execute(
        "UPDATE cohorts SET survivors = ? WHERE task_id = ? AND base_version = ?",
        (json.dumps(sorted(survivors)), task.task_id, task.base_version),
    )


def revealer_count(db: sqlite3.Connection, task: CohortTask) -> int:
    """How many survivors have revealed their shares."""
    (count,) = db.execute(
        "SELECT COUNT(DISTINCT revealer) FROM cohort_reveals WHERE task_id = ?"
        " AND base_version = ?",
        (task.task_id, task.base_version),
    ).fetchone()
    return int(count)


def rebuild_secret(db: sqlite3.Connection, task: CohortTask, member: Member, kind: str) -> bytes:
    """Rebuilds a member's mask key (``kind="key"``, it dropped) or self-mask seed (``"seed"``)
    from the revealed shares; a rebuilt mask key must match the member's public key.

    Raises:
      UpdateRejectedError: ``bad_cohort_input`` when the shares do not rebuild the secret.
    """
    rows = db.execute(
        "SELECT x, share FROM cohort_reveals WHERE task_id = ? AND base_version = ?"
        " AND peer = ? AND kind = ?",
        (task.task_id, task.base_version, member.device_id, kind),
    ).fetchall()
    try:
        secret = combine_shares({int(x): int(share, 16) for x, share in rows})
    except ValueError:
        secret = b""
    wrong_key = kind == "key" and len(secret) == 32 and public_of(secret) != member.mask_public
    if len(secret) != 32 or wrong_key:
        raise UpdateRejectedError("bad_cohort_input", f"revealed {kind} shares of "
                                  f"{member.device_id} do not rebuild the secret")  # fmt: skip
    return secret
