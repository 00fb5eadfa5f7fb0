"""All stages: the task spec is immutable, canonical and checked."""

from __future__ import annotations

import pytest

from fednode.errors import TaskSpecError
from fednode.types import TaskSpec


def _spec(**overrides):
    return TaskSpec(name="t", data_schema="s", num_features=3, **overrides)


def test_spec_json_roundtrips_and_is_canonical():
    # Arrange
    spec = _spec(hidden_sizes=(8,), model="mlp", compression=("int8",), extra={"b": 1, "a": 2})
    # Act
    raw = spec.to_json()
    # Assert
    assert TaskSpec.from_json(raw) == spec
    assert b" " not in raw and raw.index(b'"accountant"') < raw.index(b'"name"')
    assert spec.digest == TaskSpec.from_json(raw).digest


@pytest.mark.parametrize("overrides", [
    {"model": "resnet"}, {"aggregation": "magic"}, {"rounds": 0}, {"min_updates": 0},
    {"learning_rate": 0.0}, {"mode": "eventually"}, {"aggregator_quorum": 0},
    {"delta": 1.5}, {"epsilon_budget": -1.0}, {"max_staleness": -1}, {"proximal_mu": -0.1},
])
def test_inconsistent_specs_are_refused_with_a_reason(overrides):
    with pytest.raises(TaskSpecError):
        _spec(**overrides)


@pytest.mark.parametrize("raw", [b"{", b"[]", b'{"name": "t"}', b'{"name":"t","data_schema":"s",'
                                 b'"num_features":2,"bogus":1}'])
def test_malformed_spec_json_is_a_task_spec_error(raw):
    with pytest.raises(TaskSpecError):
        TaskSpec.from_json(raw)
