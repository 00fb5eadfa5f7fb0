"""Edge: the update records of the edge store (outbox rows) and their statuses.

An update moves ``accepted -> signed -> sent -> committed`` (or ``failed`` with the decoded
contract error); :class:`UpdateRow` is one row of the ``updates`` table as Python sees it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["IN_FLIGHT", "UPDATE_COLUMNS", "UpdateRow", "UpdateStatus", "update_row_from"]

UPDATE_COLUMNS = (
    "local_id, ref, device_id, task_id, base_version, digest, num_examples, epsilon_micro, "
    "payload, status, attempts, tx_nonce, raw_tx, tx_hash, chain_update_id, block_number, "
    "error, created_at, updated_at"
)
"""The columns of ``updates`` in the order :func:`update_row_from` reads them."""


class UpdateStatus(enum.StrEnum):
    """Where an accepted update is on its way to the chain."""

    ACCEPTED = "accepted"
    SIGNED = "signed"
    SENT = "sent"
    COMMITTED = "committed"
    FAILED = "failed"


IN_FLIGHT = (UpdateStatus.SIGNED, UpdateStatus.SENT)
"""Statuses whose row holds a signed transaction that must reach the chain."""


@dataclass(frozen=True)
class UpdateRow:
    """One update as the edge holds it (``raw_tx`` and ``tx_nonce`` once signed)."""

    local_id: int
    ref: str
    device_id: str
    task_id: int
    base_version: int
    digest: bytes
    num_examples: int
    epsilon_micro: int
    payload: bytes
    status: UpdateStatus
    attempts: int
    tx_nonce: int | None
    raw_tx: bytes | None
    tx_hash: bytes | None
    chain_update_id: int | None
    block_number: int | None
    error: str | None
    created_at: float
    updated_at: float


def _optional(value: object, convert: type) -> object:
    return None if value is None else convert(value)


def update_row_from(row: tuple[object, ...]) -> UpdateRow:
    """Converts one ``SELECT {UPDATE_COLUMNS}`` result into an :class:`UpdateRow`.

    Example:
      >>> row = update_row_from((1, "r", "dev", 2, 0, "ab", 10, 0, b"p", "accepted", 0,
      ...                        None, None, None, None, None, None, 1.0, 1.0))
      >>> row.digest, row.status, row.tx_hash
      (b'\\xab', <UpdateStatus.ACCEPTED: 'accepted'>, None)
    """
    (local_id, ref, device_id, task_id, base_version, digest_hex, num_examples, epsilon_micro,
     payload, status, attempts, tx_nonce, raw_tx, tx_hash, chain_update_id, block_number,
     error, created_at, updated_at) = row  # fmt: skip
    return UpdateRow(
        local_id=int(local_id), ref=str(ref), device_id=str(device_id), task_id=int(task_id),
        base_version=int(base_version), digest=bytes.fromhex(str(digest_hex)),
        num_examples=int(num_examples), epsilon_micro=int(epsilon_micro), payload=bytes(payload),
        status=UpdateStatus(status), attempts=int(attempts),
        tx_nonce=_optional(tx_nonce, int), raw_tx=_optional(raw_tx, bytes),
        tx_hash=None if tx_hash is None else bytes.fromhex(str(tx_hash)),
        chain_update_id=_optional(chain_update_id, int),
        block_number=_optional(block_number, int), error=_optional(error, str),
        created_at=float(created_at), updated_at=float(updated_at),
    )  # type: ignore[arg-type]  # fmt: skip
