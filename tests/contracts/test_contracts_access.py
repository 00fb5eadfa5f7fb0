"""Chain: every role gate of Consortium, TaskRegistry and UpdateLedger refuses outsiders."""

from __future__ import annotations

import pytest

from fednode.chain.constants import (
    AGGREGATOR_ROLE,
    AUDITOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    EDGE_ROLE,
    PUBLISHER_ROLE,
)
from tests.contracts.contract_helpers import events, expect_revert, publish, send, submit


def test_contracts_role_ids_match_python_constants(contracts):
    consortium = contracts.consortium.functions
    assert consortium.PUBLISHER_ROLE().call() == PUBLISHER_ROLE
    assert consortium.EDGE_ROLE().call() == EDGE_ROLE
    assert consortium.AGGREGATOR_ROLE().call() == AGGREGATOR_ROLE
    assert consortium.AUDITOR_ROLE().call() == AUDITOR_ROLE
    assert consortium.DEFAULT_ADMIN_ROLE().call() == DEFAULT_ADMIN_ROLE


def test_contracts_deployment_granted_every_role(contracts, accounts):
    has_role = contracts.consortium.functions.hasRole
    assert has_role(DEFAULT_ADMIN_ROLE, accounts.admin.address).call()
    assert has_role(PUBLISHER_ROLE, accounts.publisher.address).call()
    assert has_role(AGGREGATOR_ROLE, accounts.aggregator.address).call()
    assert has_role(AUDITOR_ROLE, accounts.auditor.address).call()
    assert all(has_role(EDGE_ROLE, edge.address).call() for edge in accounts.edges)
    assert not has_role(EDGE_ROLE, accounts.outsider.address).call()


@pytest.mark.parametrize(
    ("role", "who"),
    [
        (PUBLISHER_ROLE, "publisher"),
        (EDGE_ROLE, "edge"),
        (AGGREGATOR_ROLE, "aggregator"),
        (AUDITOR_ROLE, "auditor"),
    ],
    ids=["publisher", "edge", "aggregator", "auditor"],
)
def test_contracts_only_admin_grants_roles(contracts, accounts, role, who):
    # Arrange
    holder = accounts.edges[0] if who == "edge" else getattr(accounts, who)
    # Act / Assert: a role holder cannot grant its own role onward
    expect_revert(
        holder,
        contracts.consortium,
        "grantRole",
        (role, accounts.outsider.address),
        "AccessControlUnauthorizedAccount",
        account=holder.address,
        neededRole=DEFAULT_ADMIN_ROLE,
    )


def test_contracts_admin_grants_and_revokes_roles_with_events(contracts, accounts):
    # Act
    granted = send(
        accounts.admin, contracts.consortium, "grantRole", AUDITOR_ROLE, accounts.outsider.address
    )
    revoked = send(
        accounts.admin, contracts.consortium, "revokeRole", AUDITOR_ROLE, accounts.outsider.address
    )
    # Assert
    assert events(contracts.consortium, "RoleGranted", granted) == [
        {
            "role": AUDITOR_ROLE,
            "account": accounts.outsider.address,
            "sender": accounts.admin.address,
        }
    ]
    assert events(contracts.consortium, "RoleRevoked", revoked) == [
        {
            "role": AUDITOR_ROLE,
            "account": accounts.outsider.address,
            "sender": accounts.admin.address,
        }
    ]


def test_contracts_admin_role_is_never_granted_directly(contracts, accounts):
    expect_revert(
        accounts.admin,
        contracts.consortium,
        "grantRole",
        (DEFAULT_ADMIN_ROLE, accounts.outsider.address),
        "AccessControlEnforcedDefaultAdminRules",
    )


def test_contracts_roles_are_renounced_only_by_their_holder(contracts, accounts):
    expect_revert(
        accounts.publisher,
        contracts.consortium,
        "renounceRole",
        (PUBLISHER_ROLE, accounts.outsider.address),
        "AccessControlBadConfirmation",
    )
    receipt = send(
        accounts.publisher,
        contracts.consortium,
        "renounceRole",
        PUBLISHER_ROLE,
        accounts.publisher.address,
    )
    assert events(contracts.consortium, "RoleRevoked", receipt) == [
        {
            "role": PUBLISHER_ROLE,
            "account": accounts.publisher.address,
            "sender": accounts.publisher.address,
        }
    ]


def test_contracts_publish_needs_publisher_role(contracts, accounts):
    for account in (accounts.outsider, accounts.aggregator, accounts.edges[0], accounts.admin):
        expect_revert(
            account,
            contracts.registry,
            "publishTask",
            (b"{}", (1, 1, 0, 0, 0, 1, 100), b"m"),
            "AccessControlUnauthorizedAccount",
            account=account.address,
            neededRole=PUBLISHER_ROLE,
        )


def test_contracts_submit_needs_edge_role(contracts, accounts):
    task_id = publish(accounts.publisher, contracts.registry)
    for account in (accounts.outsider, accounts.publisher, accounts.aggregator, accounts.auditor):
        expect_revert(
            account,
            contracts.ledger,
            "submitUpdate",
            (task_id, 0, 1, 0, b"u"),
            "AccessControlUnauthorizedAccount",
            account=account.address,
            neededRole=EDGE_ROLE,
        )


def test_contracts_commit_needs_aggregator_role(contracts, accounts):
    task_id = publish(accounts.publisher, contracts.registry)
    update_id = submit(accounts.edges[0], contracts.ledger, task_id)
    for account in (accounts.outsider, accounts.publisher, accounts.edges[0], accounts.auditor):
        expect_revert(
            account,
            contracts.ledger,
            "commitGlobalModel",
            (task_id, 1, [update_id], [], b"g"),
            "AccessControlUnauthorizedAccount",
            account=account.address,
            neededRole=AGGREGATOR_ROLE,
        )


def test_contracts_revoked_edge_can_no_longer_submit(contracts, accounts):
    # Arrange
    task_id = publish(accounts.publisher, contracts.registry)
    edge = accounts.edges[1]
    # Act
    send(accounts.admin, contracts.consortium, "revokeRole", EDGE_ROLE, edge.address)
    # Assert
    expect_revert(
        edge,
        contracts.ledger,
        "submitUpdate",
        (task_id, 0, 1, 0, b"u"),
        "AccessControlUnauthorizedAccount",
        account=edge.address,
        neededRole=EDGE_ROLE,
    )


def test_contracts_set_ledger_needs_admin_role(contracts, accounts):
    expect_revert(
        accounts.publisher,
        contracts.registry,
        "setLedger",
        (accounts.outsider.address,),
        "AccessControlUnauthorizedAccount",
        account=accounts.publisher.address,
        neededRole=DEFAULT_ADMIN_ROLE,
    )


def test_contracts_register_edge_needs_admin_role(contracts, accounts):
    expect_revert(
        accounts.edges[0],
        contracts.consortium,
        "registerEdge",
        (accounts.outsider.address, accounts.outsider.address, "x"),
        "AccessControlUnauthorizedAccount",
        account=accounts.edges[0].address,
        neededRole=DEFAULT_ADMIN_ROLE,
    )
