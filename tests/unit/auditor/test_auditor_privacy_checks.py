"""Auditor: each edge's declared privacy spend is re-derived from the task's mechanism."""

from __future__ import annotations

import dataclasses

import pytest

from fednode.auditor.checks import FINDING_KINDS
from fednode.auditor.privacy_checks import check_privacy_declarations
from fednode.privacy import (
    declared_spend,
    dp_steps_per_round,
    epsilon_spent,
    site_privacy_spec,
)
from fednode.tasks import heart_task_spec, with_private_training
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskSpec

ROWS = {"0xC1": 199, "0xB2": 30}  # a large and a small site
SPEC = with_private_training(heart_task_spec(normalization_task=1, rounds=3), epsilon=1.0)


def _honest_updates(spec=SPEC, rounds: int = 3) -> list[LedgerUpdate]:
    """Updates declared exactly as the demo's devices declare them, round by round."""
    updates, steps_so_far = [], dict.fromkeys(ROWS, 0)
    for round_index in range(rounds):
        for edge, rows in ROWS.items():
            site = site_privacy_spec(spec, rows)
            _, steps = dp_steps_per_round(site, rows)
            micro = declared_spend(site, rows, steps_before=steps_so_far[edge], steps_now=steps)
            steps_so_far[edge] += steps
            updates.append(LedgerUpdate(len(updates) + 1, 1, round_index, edge, b"", rows, micro,
                                        b"", round_index + 1, b""))
    return updates


def _versions(updates) -> list[GlobalModelRecord]:
    return [GlobalModelRecord(1, v + 1, b"d", tuple(u.update_id for u in updates
                                                    if u.base_version == v), "0xA", b"", v, b"")
            for v in range(3)]


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_honest_declarations_pass(accountant) -> None:
    spec = dataclasses.replace(SPEC, accountant=accountant)
    updates = _honest_updates(spec)
    assert check_privacy_declarations(spec, _versions(updates), updates) == []


def test_an_edge_that_declares_nothing_for_a_round_is_flagged_at_that_update() -> None:
    # Arrange: the small site's second update declares 0 instead of its increment
    updates = _honest_updates()
    cheat = next(u for u in updates if u.edge == "0xB2" and u.base_version == 1)
    updates = [dataclasses.replace(u, epsilon_micro=0) if u is cheat else u for u in updates]
    # Act
    findings = check_privacy_declarations(SPEC, _versions(updates), updates)
    # Assert: one finding, for that update and the version that aggregated it
    assert [(f.kind, f.version) for f in findings] == [("privacy_underdeclared", 2)]
    assert findings[0].at_fault == f"update {cheat.update_id} from 0xB2"
    assert "0xB2 declared epsilon" in findings[0].detail
    assert "privacy_underdeclared" in FINDING_KINDS


def test_declaring_for_fewer_examples_than_the_mechanism_used_is_flagged() -> None:
    # Arrange: the large site claims the spend of a 30-row site while reporting 199 rows
    updates = _honest_updates()
    small = {u.base_version: u.epsilon_micro for u in updates if u.edge == "0xB2"}
    large = [dataclasses.replace(u, epsilon_micro=small[u.base_version] // 4)
             if u.edge == "0xC1" else u for u in updates]
    # Act
    findings = check_privacy_declarations(SPEC, _versions(large), large)
    # Assert
    assert [f.at_fault.split()[-1] for f in findings] == ["0xC1"]


def test_a_fixed_noise_task_is_rederived_too() -> None:
    # Arrange: one noise multiplier for everyone, update-level DP (one mechanism per round)
    spec = heart_task_spec(normalization_task=1, rounds=3, clip_norm=1.0, noise_multiplier=2.0,
                           epsilon_budget=5.0)
    honest = _honest_updates(spec)
    silent = [dataclasses.replace(u, epsilon_micro=0) for u in honest]
    # Act / Assert
    assert check_privacy_declarations(spec, _versions(honest), honest) == []
    findings = check_privacy_declarations(spec, _versions(silent), silent)
    assert [f.version for f in findings] == [1, 1]


def test_tasks_without_noise_are_not_rederived() -> None:
    spec = heart_task_spec(normalization_task=1, clip_norm=1.0, epsilon_budget=5.0)
    update = LedgerUpdate(1, 1, 0, "0xE", b"", 40, 0, b"", 1, b"")
    assert check_privacy_declarations(spec, [], [update]) == []


def _cohort_spec(dp_unit: str, **privacy) -> TaskSpec:
    return heart_task_spec(normalization_task=1, rounds=4, clip_norm=1.0, dp_unit=dp_unit,
                           edge_cohort={"size": 3, "secure": True}, **privacy)


def _cohort_updates(spec: TaskSpec, cohorts: list[dict[str, int]]) -> list[LedgerUpdate]:
    """An honest edge: each member declares its own increment, the edge the largest of them."""
    steps_of: dict[str, int] = {}
    updates = []
    for base, members in enumerate(cohorts):
        increments = []
        for device, rows in members.items():
            site = site_privacy_spec(spec, rows)
            _, steps = dp_steps_per_round(site, rows)
            increments.append(declared_spend(site, rows, steps_before=steps_of.get(device, 0),
                                             steps_now=steps))
            steps_of[device] = steps_of.get(device, 0) + steps
        updates.append(LedgerUpdate(base + 1, 1, base, "0xE", b"", sum(members.values()),
                                    max(increments), b"", base + 1, b""))
    return updates


# the same device in every cohort, fresh devices, and a mix
COHORTS = [
    [{"a": 40, "b": 10, "c": 25}, {"a": 40, "b": 10, "c": 25}, {"a": 40, "b": 10, "c": 25}],
    [{"a": 40, "b": 10}, {"d": 5, "e": 60, "f": 33}, {"g": 90, "h": 2, "i": 7}],
    [{"a": 40, "b": 10, "c": 25}, {"a": 40, "x": 3}, {"a": 40, "y": 120, "z": 1}],
]


@pytest.mark.parametrize("cohorts", COHORTS)
@pytest.mark.parametrize("privacy", [dict(noise_multiplier=3.0, epsilon_budget=10.0),
                                     dict(epsilon_budget=4.0,
                                          noise_calibration="per_site")])
@pytest.mark.parametrize("dp_unit", ["update", "example"])
def test_an_honest_cohort_edge_passes(cohorts, privacy, dp_unit) -> None:
    spec = _cohort_spec(dp_unit, **privacy)
    updates = _cohort_updates(spec, cohorts)
    assert check_privacy_declarations(spec, _versions(updates), updates) == []


def test_an_update_level_cohort_edge_must_declare_the_composed_releases() -> None:
    # Arrange: the edge declares the first cohort honestly, then a tenth of the next increments
    spec = _cohort_spec("update", noise_multiplier=3.0, epsilon_budget=10.0)
    honest = _cohort_updates(spec, COHORTS[0])
    cheat = [honest[0]] + [dataclasses.replace(u, epsilon_micro=u.epsilon_micro // 10)
                           for u in honest[1:]]
    # Act
    findings = check_privacy_declarations(spec, _versions(cheat), cheat)
    # Assert: the sum of 3 releases of multiplier 3 / 2 is what every honest edge reaches
    assert [(f.kind, f.at_fault) for f in findings] == [("privacy_underdeclared",
                                                         "update 2 from 0xE")]
    assert sum(u.epsilon_micro for u in honest) >= epsilon_spent(1.5, 1.0, 3, delta=1e-5) * 1e6


def test_an_example_level_cohort_edge_is_held_to_its_largest_members_floor() -> None:
    # Arrange: 75 rows in a cohort of at most 3 -> the largest member has 25 to 75 rows
    spec = _cohort_spec("example", noise_multiplier=1.5, epsilon_budget=10.0)
    honest = _cohort_updates(spec, COHORTS[0])
    floor = epsilon_spent(1.5, min(1.0, spec.batch_size / 75), spec.local_epochs * 1,
                          delta=spec.delta)
    silent = [dataclasses.replace(u, epsilon_micro=0) for u in honest]
    # Act
    findings = check_privacy_declarations(spec, _versions(silent), silent)
    # Assert
    assert honest[0].epsilon_micro >= floor * 1e6 > 0
    assert [f.at_fault for f in findings] == ["update 1 from 0xE"]
    assert "floor" in findings[0].detail
