"""Chain: InMemoryLedger logs every role and edge-registration change, like the contract."""

from __future__ import annotations

import pytest

from fednode.chain import AGGREGATOR_ROLE, EDGE_ROLE, InMemoryLedger
from fednode.chain.constants import DEFAULT_ADMIN_ROLE
from fednode.chain.records import ProposalAction
from fednode.chain.roles import REGISTERED_EDGE, RoleChange
from fednode.errors import ContractRevertError

ADMIN = "0x" + "aa" * 20
EDGES = tuple("0x" + f"{10 + i:02x}" * 20 for i in range(3))
VALIDATORS = tuple("0x" + f"{20 + i:02x}" * 20 for i in range(3))
AGGREGATOR = "0x" + "0C" * 20


def _ledger() -> InMemoryLedger:
    ledger = InMemoryLedger(ADMIN)
    for i, (edge, validator) in enumerate(zip(EDGES, VALIDATORS, strict=True)):
        ledger.register_edge(edge, validator, f"hospital-{i}")
    return ledger


def _checksum(address: str) -> str:
    return InMemoryLedger(address).sender


def test_registration_logs_the_role_grant_then_the_registration_in_its_block():
    # Act
    changes = _ledger().role_changes()
    # Assert
    admin = RoleChange(0, 0, 0, DEFAULT_ADMIN_ROLE, _checksum(ADMIN), True)
    first = _checksum(EDGES[0])
    assert changes[0] == admin
    assert changes[1:3] == [RoleChange(1, 0, 0, EDGE_ROLE, first, True),
                            RoleChange(1, 0, 1, REGISTERED_EDGE, first, True)]
    assert [c.block for c in changes[1:]] == [1, 1, 2, 2, 3, 3]


def test_removal_by_vote_logs_revocation_then_unregistration():
    # Arrange
    ledger = _ledger()
    ledger.end_bootstrap()
    e0, e1 = (ledger.as_sender(e) for e in EDGES[:2])
    # Act
    proposal = e0.propose_member(ProposalAction.REMOVE, EDGE_ROLE, EDGES[2])
    e1.vote(proposal)
    # Assert
    gone = _checksum(EDGES[2])
    block = ledger._chain.block
    # as Consortium._revokeRole: RoleRevoked, then EdgeRemoved, in the same transaction
    assert ledger.role_changes()[-2:] == [RoleChange(block, 0, 0, EDGE_ROLE, gone, False),
                                          RoleChange(block, 0, 1, REGISTERED_EDGE, gone, False)]


def test_has_role_at_answers_for_every_past_block():
    # Arrange
    ledger = _ledger()
    ledger.grant_role(AGGREGATOR_ROLE, AGGREGATOR)
    granted = ledger._chain.block
    ledger.revoke_role(AGGREGATOR_ROLE, AGGREGATOR)
    revoked = ledger._chain.block
    # Act
    held = [ledger.has_role_at(AGGREGATOR_ROLE, AGGREGATOR, b) for b in range(revoked + 2)]
    # Assert
    assert held == [granted <= b < revoked for b in range(revoked + 2)]
    assert not ledger.has_role(AGGREGATOR_ROLE, AGGREGATOR)


def test_a_grant_of_a_role_already_held_logs_nothing():
    # Arrange
    ledger = _ledger()
    ledger.grant_role(AGGREGATOR_ROLE, AGGREGATOR)
    before = ledger.role_changes()
    # Act
    ledger.grant_role(AGGREGATOR_ROLE, AGGREGATOR)
    ledger.revoke_role(AGGREGATOR_ROLE, EDGES[0].replace("10", "77"))
    # Assert
    assert ledger.role_changes() == before


def test_refused_grant_logs_nothing():
    # Arrange
    ledger = _ledger()
    before = ledger.role_changes()
    # Act
    with pytest.raises(ContractRevertError) as refused:
        ledger.as_sender(EDGES[0]).grant_role(AGGREGATOR_ROLE, AGGREGATOR)
    # Assert
    assert refused.value.name == "AccessControlUnauthorizedAccount"
    assert ledger.role_changes() == before


def test_admin_transfer_by_vote_logs_the_founder_then_the_move():
    # Arrange
    ledger = _ledger()
    ledger.end_bootstrap()
    e0, e1 = (ledger.as_sender(e) for e in EDGES[:2])
    successor = _checksum(AGGREGATOR)
    # Act
    e1.vote(e0.propose_admin_transfer(successor))
    # Assert: the founder held the role from block 0 until the vote's block
    block = ledger._chain.block
    admin_changes = [c for c in ledger.role_changes() if c.role == DEFAULT_ADMIN_ROLE]
    assert admin_changes == [RoleChange(0, 0, 0, DEFAULT_ADMIN_ROLE, _checksum(ADMIN), True),
                             RoleChange(block, 0, 0, DEFAULT_ADMIN_ROLE, _checksum(ADMIN), False),
                             RoleChange(block, 0, 1, DEFAULT_ADMIN_ROLE, successor, True)]
    assert ledger.has_role_at(DEFAULT_ADMIN_ROLE, ADMIN, block - 1)
    assert not ledger.has_role_at(DEFAULT_ADMIN_ROLE, ADMIN, block)


def test_renouncing_edge_logs_the_revocation_then_the_unregistration():
    # Arrange
    ledger = _ledger()
    # Act
    ledger.as_sender(EDGES[1]).renounce_role(EDGE_ROLE, EDGES[1])
    # Assert
    gone, block = _checksum(EDGES[1]), ledger._chain.block
    assert ledger.role_changes()[-2:] == [RoleChange(block, 0, 0, EDGE_ROLE, gone, False),
                                          RoleChange(block, 0, 1, REGISTERED_EDGE, gone, False)]
    assert ledger.edges() == [_checksum(EDGES[0]), _checksum(EDGES[2])]
