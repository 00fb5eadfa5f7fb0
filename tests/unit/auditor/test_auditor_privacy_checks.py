"""Auditor: each edge's declared privacy spend is re-derived from the task's mechanism."""

from __future__ import annotations

import dataclasses

import pytest

from fednode.auditor.checks import FINDING_KINDS
from fednode.auditor.privacy_checks import check_privacy_declarations
from fednode.privacy import dp_steps_per_round, epsilon_micro_increment, site_privacy_spec
from fednode.tasks import heart_task_spec, with_private_training
from fednode.types import GlobalModelRecord, LedgerUpdate

ROWS = {"0xC1": 199, "0xB2": 30}  # a large and a small site
SPEC = with_private_training(heart_task_spec(normalization_task=1, rounds=3), epsilon=1.0)


def _honest_updates(spec=SPEC, rounds: int = 3) -> list[LedgerUpdate]:
    """Updates declared exactly as the demo's devices declare them, round by round."""
    updates, steps_so_far = [], dict.fromkeys(ROWS, 0)
    for round_index in range(rounds):
        for edge, rows in ROWS.items():
            site = site_privacy_spec(spec, rows)
            sampling, steps = dp_steps_per_round(site, rows)
            micro = epsilon_micro_increment(site.noise_multiplier, sampling,
                                            steps_before=steps_so_far[edge], steps_now=steps,
                                            delta=spec.delta, accountant=spec.accountant)
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
    assert [f.version for f in check_privacy_declarations(spec, _versions(silent), silent)] == [1, 1]


@pytest.mark.parametrize("extra", [{}, {"edge_cohort": {"size": 3, "secure": True}}])
def test_tasks_without_noise_or_with_edge_cohorts_are_not_rederived(extra) -> None:
    noise = 0.0 if not extra else 1.1
    spec = heart_task_spec(normalization_task=1, clip_norm=1.0, noise_multiplier=noise,
                           epsilon_budget=5.0)
    spec = dataclasses.replace(spec, extra={**spec.extra, **extra})
    update = LedgerUpdate(1, 1, 0, "0xE", b"", 40, 0, b"", 1, b"")
    assert check_privacy_declarations(spec, [], [update]) == []
