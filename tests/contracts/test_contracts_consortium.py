"""Chain: Consortium records edges and their validators, and transfers admin in two steps."""

from __future__ import annotations

import pytest
from eth_account import Account

from fednode.chain.constants import DEFAULT_ADMIN_ROLE, EDGE_ROLE
from tests.contracts.contract_helpers import events, expect_revert, mine_after, send

ZERO = "0x" + "00" * 20


def test_consortium_lists_registered_edges_and_validators(contracts, accounts):
    functions = contracts.consortium.functions
    assert functions.edges().call() == [edge.address for edge in accounts.edges]
    for i, (edge, validator) in enumerate(zip(accounts.edges, accounts.validators, strict=True)):
        assert functions.validatorOf(edge.address).call() == validator.address
        assert functions.edgeOf(validator.address).call() == edge.address
        assert functions.edgeName(edge.address).call() == f"hospital-{i}"
    assert functions.validatorOf(accounts.outsider.address).call() == ZERO


def test_consortium_register_edge_grants_role_and_emits(contracts, accounts):
    # Arrange
    edge, validator = Account.create(), Account.create()
    # Act
    receipt = send(
        accounts.admin,
        contracts.consortium,
        "registerEdge",
        edge.address,
        validator.address,
        "clinic-x",
    )
    # Assert
    assert events(contracts.consortium, "EdgeRegistered", receipt) == [
        {"edge": edge.address, "validator": validator.address, "name": "clinic-x"}
    ]
    assert events(contracts.consortium, "RoleGranted", receipt) == [
        {"role": EDGE_ROLE, "account": edge.address, "sender": accounts.admin.address}
    ]
    assert contracts.consortium.functions.hasRole(EDGE_ROLE, edge.address).call()
    assert contracts.consortium.functions.edges().call()[-1] == edge.address


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("zero-edge", "ConsortiumInvalidEdge"),
        ("zero-validator", "ConsortiumInvalidValidator"),
        ("edge-taken", "ConsortiumEdgeAlreadyRegistered"),
        ("validator-taken", "ConsortiumValidatorAlreadyRegistered"),
    ],
)
def test_consortium_register_edge_refuses_bad_registrations(contracts, accounts, case, error):
    # Arrange
    fresh = Account.create().address
    edge0, validator0 = accounts.edges[0].address, accounts.validators[0].address
    edge, validator, expected = {
        "zero-edge": (ZERO, fresh, {"edge": ZERO}),
        "zero-validator": (fresh, ZERO, {"validator": ZERO}),
        "edge-taken": (edge0, fresh, {"edge": edge0}),
        "validator-taken": (fresh, validator0, {"validator": validator0, "edge": edge0}),
    }[case]
    # Act / Assert
    expect_revert(
        accounts.admin,
        contracts.consortium,
        "registerEdge",
        (edge, validator, "x"),
        error,
        **expected,
    )


def test_consortium_transfers_admin_in_two_steps(w3, contracts, accounts):
    # Arrange
    new_admin = accounts.auditor
    functions = contracts.consortium.functions
    # Act
    send(accounts.admin, contracts.consortium, "beginDefaultAdminTransfer", new_admin.address)
    mine_after(w3, 2)
    receipt = send(new_admin, contracts.consortium, "acceptDefaultAdminTransfer")
    # Assert
    assert functions.defaultAdmin().call() == new_admin.address
    assert not functions.hasRole(DEFAULT_ADMIN_ROLE, accounts.admin.address).call()
    assert events(contracts.consortium, "RoleGranted", receipt)[0]["account"] == new_admin.address


def test_consortium_only_the_pending_admin_accepts(contracts, accounts):
    send(
        accounts.admin,
        contracts.consortium,
        "beginDefaultAdminTransfer",
        accounts.auditor.address,
    )
    expect_revert(
        accounts.outsider,
        contracts.consortium,
        "acceptDefaultAdminTransfer",
        (),
        "AccessControlInvalidDefaultAdmin",
        defaultAdmin=accounts.outsider.address,
    )
