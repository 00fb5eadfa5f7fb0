"""Chain: InMemoryLedger passes the shared Ledger behaviour suite and its own extras."""

from __future__ import annotations

import numpy as np
import pytest

from fednode.chain import (
    AGGREGATOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    EDGE_ROLE,
    PUBLISHER_ROLE,
    InMemoryLedger,
    Ledger,
)
from fednode.codec import encode_params
from fednode.errors import ContractRevertError, FednodeValueError
from fednode.types import TaskState
from tests.behaviours.ledger_behaviour import LEDGER_BEHAVIOURS, LedgerActors, make_spec

ADMIN = "0x" + "aa" * 20
PUBLISHER = "0x" + "0b" * 20
AGGREGATOR = "0x" + "0c" * 20
OUTSIDER = "0x" + "0d" * 20
EDGES = tuple("0x" + f"{10 + i:02x}" * 20 for i in range(3))
VALIDATORS = tuple("0x" + f"{20 + i:02x}" * 20 for i in range(3))


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000)


@pytest.fixture
def admin(clock: FakeClock) -> InMemoryLedger:
    ledger = InMemoryLedger(ADMIN, clock=clock)
    ledger.grant_role(PUBLISHER_ROLE, PUBLISHER)
    ledger.grant_role(AGGREGATOR_ROLE, AGGREGATOR)
    for i, (edge, validator) in enumerate(zip(EDGES, VALIDATORS, strict=True)):
        ledger.register_edge(edge, validator, f"hospital-{i}")
    return ledger


@pytest.fixture
def actors(admin: InMemoryLedger) -> LedgerActors:
    return LedgerActors(
        publisher=admin.as_sender(PUBLISHER),
        edges=tuple(admin.as_sender(edge) for edge in EDGES),
        aggregator=admin.as_sender(AGGREGATOR),
        outsider=admin.as_sender(OUTSIDER),
    )


def _model() -> bytes:
    return encode_params({"w": np.zeros(2, np.float32)})


@pytest.mark.parametrize("behaviour", LEDGER_BEHAVIOURS, ids=lambda b: b.__name__)
def test_memory_ledger_behaves_like_a_ledger(behaviour, actors):
    behaviour(actors)


def test_memory_ledger_satisfies_the_ledger_protocol(admin):
    assert isinstance(admin, Ledger)


def test_memory_ledger_views_share_state_but_not_sender(admin):
    # Arrange
    view = admin.as_sender(OUTSIDER.upper().replace("0X", "0x"))
    # Act
    admin.grant_role(EDGE_ROLE, OUTSIDER)
    # Assert
    assert view.has_role(EDGE_ROLE, view.sender)
    assert view.sender != admin.sender
    assert [edge.lower() for edge in view.edges()] == list(EDGES)


def test_memory_ledger_register_edge_records_validator_and_grants_role(admin):
    assert admin.validator_of(EDGES[1]).lower() == VALIDATORS[1]
    assert all(admin.has_role(EDGE_ROLE, edge) for edge in EDGES)
    assert int(admin.validator_of(OUTSIDER), 16) == 0


@pytest.mark.parametrize(
    ("edge", "validator", "name", "args"),
    [
        ("0x" + "00" * 20, "0x" + "99" * 20, "ConsortiumInvalidEdge", {"edge": "0x" + "00" * 20}),
        (OUTSIDER, "0x" + "00" * 20, "ConsortiumInvalidValidator", {"validator": "0x" + "00" * 20}),
        (EDGES[0], "0x" + "99" * 20, "ConsortiumEdgeAlreadyRegistered", {"edge": EDGES[0]}),
        (
            OUTSIDER,
            VALIDATORS[2],
            "ConsortiumValidatorAlreadyRegistered",
            {"validator": VALIDATORS[2], "edge": EDGES[2]},
        ),
    ],
)
def test_memory_ledger_register_edge_refuses_bad_edges(admin, edge, validator, name, args):
    with pytest.raises(ContractRevertError) as info:
        admin.register_edge(edge, validator, "x")
    assert info.value.name == name
    assert {k: v.lower() for k, v in info.value.args_by_name.items()} == args


def test_memory_ledger_admin_operations_need_admin_role(admin):
    outsider = admin.as_sender(OUTSIDER)
    for call in (
        lambda: outsider.grant_role(EDGE_ROLE, OUTSIDER),
        lambda: outsider.revoke_role(EDGE_ROLE, EDGES[0]),
        lambda: outsider.register_edge(OUTSIDER, "0x" + "99" * 20, "x"),
    ):
        with pytest.raises(ContractRevertError) as info:
            call()
        assert info.value.name == "AccessControlUnauthorizedAccount"
        assert info.value.args_by_name["neededRole"] == DEFAULT_ADMIN_ROLE


def test_memory_ledger_revoked_edge_cannot_submit(admin, actors):
    task_id = actors.publisher.publish_task(make_spec(), _model())
    admin.revoke_role(EDGE_ROLE, EDGES[0])
    with pytest.raises(ContractRevertError, match="AccessControlUnauthorizedAccount"):
        actors.edges[0].submit_update(task_id, 0, b"x", num_examples=1)


def test_memory_ledger_task_expires_after_its_deadline(actors, clock):
    # Arrange
    task_id = actors.publisher.publish_task(make_spec(deadline=clock.now + 10), _model())
    # Act
    clock.now += 11
    # Assert
    assert actors.outsider.get_task(task_id).state == TaskState.EXPIRED
    with pytest.raises(ContractRevertError) as info:
        actors.edges[0].submit_update(task_id, 0, b"x", num_examples=1)
    assert info.value.args_by_name == {"taskId": task_id, "current": int(TaskState.EXPIRED)}
    with pytest.raises(ContractRevertError, match="TaskRegistryUnexpectedState"):
        actors.publisher.cancel_task(task_id)


def test_memory_ledger_refuses_a_deadline_in_the_past(actors, clock):
    with pytest.raises(ContractRevertError) as info:
        actors.publisher.publish_task(make_spec(deadline=clock.now), _model())
    assert (info.value.name, info.value.args_by_name) == (
        "TaskRegistryInvalidDeadline",
        {"deadline": clock.now},
    )


def test_memory_ledger_refuses_an_empty_initial_model(actors):
    with pytest.raises(ContractRevertError, match="TaskRegistryInvalidInitialModelSize"):
        actors.publisher.publish_task(make_spec(), b"")


def test_memory_ledger_refuses_values_that_do_not_fit_solidity_types(actors):
    task_id = actors.publisher.publish_task(make_spec(), _model())
    with pytest.raises(FednodeValueError, match="num_examples"):
        actors.edges[0].submit_update(task_id, 0, b"x", num_examples=2**64)
    with pytest.raises(FednodeValueError, match="base_version"):
        actors.edges[0].submit_update(task_id, -1, b"x", num_examples=1)


def test_memory_ledger_tracks_submissions_and_counts(actors):
    task_id = actors.publisher.publish_task(make_spec(), _model())
    update_id = actors.edges[2].submit_update(task_id, 0, b"x", num_examples=1)
    assert actors.outsider.submission_of(task_id, 0, EDGES[2]) == update_id
    assert actors.outsider.submission_of(task_id, 0, EDGES[0]) == 0
    assert actors.outsider.update_count() == update_id
    assert actors.outsider.latest_version(task_id) == 0
    assert actors.outsider.task_state(task_id) == TaskState.OPEN


def test_memory_ledger_admin_role_is_never_granted_or_revoked_directly(admin):
    for call in (admin.grant_role, admin.revoke_role):
        with pytest.raises(ContractRevertError) as info:
            call(DEFAULT_ADMIN_ROLE, OUTSIDER)
        assert (info.value.name, info.value.args_by_name) == (
            "AccessControlEnforcedDefaultAdminRules",
            {},
        )
