"""All stages: the task spec is immutable, canonical and checked."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fednode.errors import TaskSpecError
from fednode.types import EdgeCohort, TaskSpec


def _spec(**overrides):
    return TaskSpec(name="t", data_schema="s", num_features=3, **overrides)


def _full_spec() -> TaskSpec:
    """A spec with every typed option away from its default."""
    return _spec(hidden_sizes=(8,), model="mlp", compression=("int8",),
                 aggregation="krum", aggregation_params={"num_byzantine": 1, "a": 0.5},
                 server_optimizer="sgd", server_optimizer_params={"momentum": 0.9},
                 local_optimizer="adam", dp_unit="example", clip_norm=1.0,
                 epsilon_budget=2.0, noise_calibration="per_site", mode="async",
                 staleness_weighting="constant", num_classes=3, kernel_size=3,
                 sequence_length=50, normalization_task=2,
                 edge_cohort={"size": 4, "secure": True})


def test_spec_json_roundtrips_and_is_canonical():
    # Arrange
    spec = _full_spec()
    # Act
    raw = spec.to_json()
    # Assert
    assert TaskSpec.from_json(raw) == spec
    assert b" " not in raw and raw.index(b'"accountant"') < raw.index(b'"name"')
    assert spec.digest == TaskSpec.from_json(raw).digest
    body = json.loads(raw)
    assert body["aggregation_params"] == {"a": 0.5, "num_byzantine": 1}
    assert body["edge_cohort"] == {"min_size": 3, "secure": True, "size": 4, "threshold": 3,
                                   "timeout_s": 60.0}
    assert raw.index(b'"a"') < raw.index(b'"num_byzantine"')


def test_mappings_become_sorted_pairs_and_the_same_spec():
    # Arrange / Act
    from_dict = _spec(aggregation_params={"b": 1.0, "a": 2.0})
    from_pairs = _spec(aggregation_params=(("a", 2.0), ("b", 1.0)))
    # Assert
    assert from_dict == from_pairs and from_dict.digest == from_pairs.digest
    assert from_dict.aggregation_params == (("a", 2.0), ("b", 1.0))


def _reachable(value, path="spec"):
    """Every (path, value) reachable from a value through dataclass fields and tuples."""
    yield path, value
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _reachable(getattr(value, f.name), f"{path}.{f.name}")
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            yield from _reachable(item, f"{path}[{i}]")


def test_a_frozen_spec_cannot_change_its_digest_by_mutation():
    # Arrange
    spec = _full_spec()
    digest = spec.digest
    # Act / Assert: nothing mutable is reachable, every dataclass level refuses assignment
    for path, value in _reachable(spec):
        assert isinstance(value, (str, int, float, bool, type(None), tuple)) \
            or dataclasses.is_dataclass(value), f"{path} is a mutable {type(value).__name__}"
        if dataclasses.is_dataclass(value):
            field = dataclasses.fields(value)[0].name
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(value, field, getattr(value, field))
    assert spec.edge_cohort is not None and spec.digest == digest


def test_a_spec_keeps_no_reference_to_the_callers_containers():
    # Arrange: a publisher builds a spec from its own dict and list, then edits them
    params = {"example_power": 0.5}
    sizes = [8]
    spec = _spec(model="mlp", hidden_sizes=sizes, aggregation_params=params)
    digest = spec.digest
    # Act
    params["example_power"] = 0.0
    sizes.append(4)
    # Assert
    assert spec.digest == digest and spec.hidden_sizes == (8,)


@pytest.mark.parametrize("overrides", [
    {"model": "resnet"}, {"aggregation": "magic"}, {"rounds": 0}, {"min_updates": 0},
    {"learning_rate": 0.0}, {"mode": "eventually"}, {"aggregator_quorum": 0},
    {"delta": 1.5}, {"epsilon_budget": -1.0}, {"max_staleness": -1}, {"proximal_mu": -0.1},
])
def test_inconsistent_specs_are_refused_with_a_reason(overrides):
    with pytest.raises(TaskSpecError):
        _spec(**overrides)


@pytest.mark.parametrize(("overrides", "match"), [
    ({"local_optimizer": "lbfgs"}, "local_optimizer"),
    ({"dp_unit": "row"}, "dp_unit"),
    ({"staleness_weighting": "linear"}, "staleness_weighting"),
    ({"site_sampling": 0.0}, "site_sampling"),
    ({"num_classes": 1}, "num_classes"),
    ({"kernel_size": 0}, "kernel_size"),
    ({"normalization_task": -1}, "normalization_task"),
    ({"rounds": 2.5}, "rounds must be an int"),
    ({"rounds": True}, "rounds must be an int"),
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
    ({"accountant": 7}, "accountant must be a string"),
    ({"hidden_sizes": (0,)}, "hidden_sizes"),
    ({"aggregation_params": {"example_power": "1"}}, "aggregation_params.example_power"),
    ({"aggregation_params": {"x": float("inf")}}, "aggregation_params.x"),
    ({"aggregation_params": [1, 2]}, "aggregation_params must be an object"),
    ({"server_optimizer_params": {"not an id": 1.0}}, "server_optimizer_params keys"),
    ({"edge_cohort": {"size": 0}}, "edge_cohort.size"),
    ({"edge_cohort": {"size": 3, "bogus": 1}}, r"edge_cohort has unknown keys \['bogus'\]"),
    ({"edge_cohort": {"size": 2, "secure": True}}, "secure edge_cohort needs size >= 3"),
    ({"edge_cohort": {"size": 4, "secure": True, "threshold": 2}}, "edge_cohort.threshold"),
    ({"edge_cohort": {"size": 3, "threshold": 2}}, "for secure cohorts"),
    ({"edge_cohort": "three"}, "edge_cohort must be an object"),
])
def test_bad_typed_options_are_refused_by_name(overrides, match):
    with pytest.raises(TaskSpecError, match=match):
        _spec(**overrides)


def test_edge_cohort_resolves_its_secure_bounds():
    assert EdgeCohort(size=7, secure=True).bounds() == (4, 4)
    assert EdgeCohort(size=7).bounds() == (7, 7)


@pytest.mark.parametrize("raw", [b"{", b"[]", b'{"name": "t"}', b'{"name":"t","data_schema":"s",'
                                 b'"num_features":2,"bogus":1}'])
def test_malformed_spec_json_is_a_task_spec_error(raw):
    with pytest.raises(TaskSpecError):
        TaskSpec.from_json(raw)


def test_the_retired_extra_dict_is_refused_by_name():
    raw = b'{"name":"t","data_schema":"s","num_features":2,"extra":{"dp_unit":"example"}}'
    with pytest.raises(TaskSpecError, match=r"unknown keys \['extra'\]"):
        TaskSpec.from_json(raw)


def test_an_int_in_a_float_field_is_the_same_spec():
    assert _spec(learning_rate=1) == _spec(learning_rate=1.0)
    assert _spec(learning_rate=1).to_json() == _spec(learning_rate=1.0).to_json()


def test_schema_digest_is_hex_and_canonical():
    digest = "AB" * 32
    assert _spec(schema_digest=digest).schema_digest == "0x" + "ab" * 32
    with pytest.raises(TaskSpecError, match="schema_digest"):
        _spec(schema_digest="0x1234")
