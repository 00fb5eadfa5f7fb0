"""Edge: what the one transaction outbox needs of each kind of row the edge account signs.

A kind (updates, evaluations) brings its store, its ledger calls and its slot lookup through a
:class:`TxKind` adapter; :class:`edge_server.tx_outbox.TxOutbox` runs the state machine.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple, Protocol

__all__ = ["Landed", "OutboxRow", "OutboxStore", "TxKind"]


class OutboxRow(Protocol):
    """What the state machine reads of a stored row (``UpdateRow``, ``EvaluationRow``)."""

    @property
    def local_id(self) -> int: ...
    @property
    def ref(self) -> str: ...
    @property
    def status(self) -> Any: ...
    @property
    def attempts(self) -> int: ...
    @property
    def tx_nonce(self) -> int | None: ...
    @property
    def raw_tx(self) -> bytes | None: ...
    @property
    def tx_hash(self) -> bytes | None: ...


class OutboxStore(Protocol):
    """The transitions every outbox store offers (``EdgeStore``, ``EvaluationStore``)."""

    def next_tx_nonce(self) -> int: ...
    def mark_attempt(self, local_id: int) -> None: ...
    def record_signed(
        self, local_id: int, *, nonce: int, raw_tx: bytes, tx_hash: bytes
    ) -> None: ...
    def mark_sent(self, local_id: int) -> None: ...
    def mark_failed(self, local_id: int, error: str) -> None: ...
    def reset_to_accepted(self, local_id: int, error: str) -> None: ...


class Landed(NamedTuple):
    """What the chain holds in a row's slot; ``same``: whether it is the row's content.

    Example:
      >>> Landed(chain_id=4, tx_hash=None, block=12, same=True).chain_id
      4
    """

    chain_id: int
    tx_hash: bytes | None
    block: int
    same: bool


class TxKind[RowT: OutboxRow](Protocol):
    """The per-kind adapter: what really differs between updates and evaluations.

    ``statuses`` is the kind's status enum (members ``SIGNED``, ``SENT``, ``COMMITTED``,
    ``FAILED``); ``noun`` names a row in log lines; ``clash`` explains a failure when other
    content holds the row's slot; ``logger`` is the kind module's logger.
    """

    @property
    def noun(self) -> str: ...
    @property
    def duplicate_error(self) -> str: ...
    @property
    def clash(self) -> str: ...
    @property
    def statuses(self) -> Any: ...
    @property
    def logger(self) -> logging.Logger: ...
    @property
    def store(self) -> OutboxStore: ...
    @property
    def ledger(self) -> Any: ...
    def in_flight(self) -> list[RowT]: ...
    def pending(self) -> list[RowT]: ...
    def reload(self, row: RowT) -> RowT: ...
    def sign(self, row: RowT, *, nonce: int) -> Any: ...
    def chain_id_from_receipt(self, receipt: Any) -> int: ...
    def landed(self, row: RowT) -> Landed | None: ...
    def mark_committed(
        self, row: RowT, chain_id: int, tx_hash: bytes | None, block: int | None
    ) -> None: ...
