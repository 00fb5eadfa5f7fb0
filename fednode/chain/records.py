"""Chain: governance records read back from the consortium contracts (frozen values).

``GlobalModelCommit`` is one aggregator's commit of a version (a version is final once the
task's ``aggregator_quorum`` commits agree); ``Reputation`` holds the ledger facts about an
edge; ``Proposal`` is a proposal the edge operators vote on (membership, quorum, admin), and
``ProposalState`` its derived lifecycle.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from eth_abi import encode as abi_encode
from eth_utils import keccak

from fednode.errors import FednodeValueError
from fednode.types import EPSILON_SCALE, METRIC_SCALE, NO_METRIC_MICRO, TaskSpec

__all__ = [
    "GlobalModelCommit",
    "Proposal",
    "ProposalAction",
    "ProposalState",
    "Reputation",
    "commit_hash",
    "epsilon_budget_micro",
    "metric_micro",
    "reputation_score",
    "secondary_micro",
]


class ProposalAction(enum.IntEnum):
    """What a proposal does; mirrors ``IConsortium.ProposalAction``."""

    ADD = 0
    REMOVE = 1
    SET_QUORUM = 2
    TRANSFER_ADMIN = 3
    RENOUNCE_ADMIN = 4


class ProposalState(enum.IntEnum):
    """Lifecycle of a proposal, derived from its flags and deadline; mirrors
    ``IConsortium.ProposalState``."""

    ACTIVE = 0
    EXECUTED = 1
    CANCELLED = 2
    EXPIRED = 3


@dataclass(frozen=True)
class GlobalModelCommit:
    """One aggregator's commit of global model ``version`` (payload from calldata)."""

    task_id: int
    version: int
    digest: bytes
    commit_hash: bytes
    aggregator: str
    update_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    payload: bytes
    block_number: int
    tx_hash: bytes
    final: bool


@dataclass(frozen=True)
class Reputation:
    """Ledger facts about one edge over all tasks, and the score derived from them."""

    submitted: int = 0
    accepted: int = 0
    rejected: int = 0
    late: int = 0

    @property
    def score_bps(self) -> int:
        """``reputation_score`` of these facts, as ``UpdateLedger.reputationScore``."""
        return reputation_score(self.accepted, self.rejected, self.late)


@dataclass(frozen=True)
class Proposal:
    """A proposal: add or remove ``role`` for ``account``, set the quorum to
    ``quorum_percent``, transfer the admin role to ``account`` or renounce it (``account`` is
    the admin to remove). Votes count until ``deadline`` (unix seconds, inclusive)."""

    proposal_id: int
    action: ProposalAction
    role: bytes
    account: str
    validator: str
    proposer: str
    executed: bool
    name: str
    voters: tuple[str, ...]
    cancelled: bool = False
    quorum_percent: int = 0
    deadline: int = 0

    def state(self, now: int) -> ProposalState:
        """The lifecycle state at block timestamp ``now``, as ``Consortium.state``.

        Example:
          >>> p = Proposal(1, ProposalAction.ADD, b"r", "a", "v", "p", False, "", (), deadline=9)
          >>> p.state(9).name, p.state(10).name
          ('ACTIVE', 'EXPIRED')
        """
        if self.executed:
            return ProposalState.EXECUTED
        if self.cancelled:
            return ProposalState.CANCELLED
        return ProposalState.EXPIRED if now > self.deadline else ProposalState.ACTIVE


def reputation_score(accepted: int, rejected: int, late: int) -> int:
    """Weight in basis points: 10000 * (accepted + 1) / (accepted + rejected + late + 1).

    Example:
      >>> reputation_score(0, 0, 0), reputation_score(3, 1, 0)
      (10000, 8000)
    """
    return (accepted + 1) * 10_000 // (accepted + rejected + late + 1)


def commit_hash(digest: bytes, update_ids: tuple[int, ...], rejected_ids: tuple[int, ...]) -> bytes:
    """``keccak256(abi.encode(digest, updateIds, rejectedIds))`` as the contract computes it.

    Example:
      >>> len(commit_hash(b"\\x00" * 32, (1, 2), ()))
      32
    """
    encoded = abi_encode(
        ["bytes32", "uint256[]", "uint256[]"], [digest, list(update_ids), list(rejected_ids)]
    )
    return keccak(encoded)


def epsilon_budget_micro(spec: TaskSpec) -> int:
    """The task's per-site privacy budget in micro-epsilon (0: unlimited).

    Example:
      >>> from fednode.types import TaskSpec
      >>> epsilon_budget_micro(TaskSpec("t", "s", 2, epsilon_budget=1.5))
      1500000
    """
    return round(spec.epsilon_budget * EPSILON_SCALE)


def metric_micro(value: float) -> int:
    """A metric as the contract's micro units, ``round(value * 1e6)``.

    The range [0, 1] is the contract's to enforce (``EvaluationLedgerMetricOutOfRange``); here
    only values that cannot be a ``uint32`` at all are refused.

    Raises:
      FednodeValueError: for a non-finite or negative value, or one above ``2**32 - 2`` micro.

    Example:
      >>> metric_micro(0.8125), metric_micro(1.0)
      (812500, 1000000)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FednodeValueError(f"a metric must be a finite number, got {value!r}")
    micro = round(value * METRIC_SCALE)
    if not 0 <= micro < NO_METRIC_MICRO:
        detail = f"a metric must be >= 0 and fit a uint32 in micro units, got {value!r}"
        raise FednodeValueError(detail)
    return micro


def secondary_micro(value: float | None) -> int:
    """The contract's ``secondaryMicro``: ``metric_micro(value)``, or NO_METRIC for None.

    Example:
      >>> secondary_micro(None) == NO_METRIC_MICRO, secondary_micro(0.5)
      (True, 500000)
    """
    return NO_METRIC_MICRO if value is None else metric_micro(value)
