"""Edge: the records of an edge cohort (task facts, members, state) read from the store.

A :class:`CohortView` is one ``cohorts`` row with its ``cohort_members``; in secure mode a
:class:`Member` carries public keys, the device's signatures and flags only, never a delta or
a mask.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_server.cohort import CohortConfig
from edge_server.intake import TensorSpec
from fednode.errors import UpdateRejectedError

__all__ = ["CohortTask", "CohortView", "Member", "read_cohort"]

_MEMBER_COLUMNS = (
    "device_id, ref, position, num_examples, epsilon_micro, mask_public, enc_public, "
    "advert_sig, check_sig, payload IS NOT NULL, masked IS NOT NULL, shared, dropped"
)


@dataclass(frozen=True)
class CohortTask:
    """What the edge knows about the task a cohort trains (from the ledger)."""

    task_id: int
    base_version: int
    config: CohortConfig
    template: Mapping[str, TensorSpec]
    scale: float
    max_norm: float
    max_payload_bytes: int


@dataclass(frozen=True)
class Member:
    """One cohort member as the edge holds it (no delta, no mask: just flags)."""

    device_id: str
    ref: str
    position: int
    num_examples: int
    epsilon_micro: int
    mask_public: bytes | None
    enc_public: bytes | None
    advert_sig: bytes | None
    check_sig: bytes | None
    has_delta: bool
    has_masked: bool
    shared: bool
    dropped: bool


@dataclass(frozen=True)
class CohortView:
    """A cohort's state and members; ``survivors`` (sorted ids that sent masked input) is set
    when the masking round closes."""

    task_id: int
    base_version: int
    size: int
    secure: bool
    threshold: int
    min_size: int
    scale: float
    state: str
    deadline: float | None
    update_ref: str | None
    error: str | None
    survivors: tuple[str, ...] | None
    members: tuple[Member, ...]

    @property
    def min_inputs(self) -> int:
        """Fewest masked inputs, consistency signatures and reveals this cohort needs."""
        return max(self.threshold, self.min_size)

    def member(self, device_id: str) -> Member:
        """The member with this id.

        Raises:
          UpdateRejectedError: ``cohort_member`` when the device is not in the cohort.
        """
        for member in self.members:
            if member.device_id == device_id:
                return member
        raise UpdateRejectedError("cohort_member", f"{device_id} is not in this cohort")


def read_cohort(db: sqlite3.Connection, task_id: int, base_version: int) -> CohortView | None:
    """The cohort of a task and base version with its members by position, or None."""
    row = db.execute(
        "SELECT size, secure, threshold, min_size, scale, state, deadline, update_ref, error,"
        " survivors FROM cohorts"
        " WHERE task_id = ? AND base_version = ?",
        (task_id, base_version),
    ).fetchone()
    if row is None:
        return None
    members = db.execute(
        f"SELECT {_MEMBER_COLUMNS} FROM cohort_members WHERE task_id = ? AND base_version = ?"
        " ORDER BY position",
        (task_id, base_version),
    ).fetchall()
    survivors = None if row[9] is None else tuple(str(d) for d in json.loads(row[9]))
    return CohortView(
        task_id, base_version, int(row[0]), bool(row[1]), int(row[2]), int(row[3]),
        float(row[4]), str(row[5]), None if row[6] is None else float(row[6]), row[7], row[8],
        survivors, tuple(_member(m) for m in members),
    )  # fmt: skip


def _member(row: tuple[Any, ...]) -> Member:
    device_id, ref, position, examples, eps, mask, enc, advert, check = row[:9]
    delta, masked, shared, dropped = row[9:]
    return Member(
        str(device_id), str(ref), int(position), int(examples), int(eps),
        _blob(mask), _blob(enc), _blob(advert), _blob(check), bool(delta), bool(masked),
        bool(shared), bool(dropped),
    )  # fmt: skip


def _blob(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # type: ignore[call-overload]
