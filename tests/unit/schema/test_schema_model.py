"""Schema: the frozen value, its TOML and JSON round trips and its pinned digest."""

from __future__ import annotations

import dataclasses

import pytest
from schema_fixtures import SMALL_TOML

import fednode.schema as schema_pkg
from fednode.schema import (
    ColumnKind,
    MissingPolicy,
    canonical_json,
    render_schema_toml,
    schema_digest,
    schema_from_json,
    schema_from_toml,
)


def test_package_all_is_sorted_and_exported() -> None:
    assert schema_pkg.__all__ == sorted(schema_pkg.__all__)
    assert all(hasattr(schema_pkg, name) for name in schema_pkg.__all__)


def test_toml_is_read_into_typed_frozen_fields() -> None:
    # Act
    schema = schema_from_toml(SMALL_TOML)
    # Assert
    age, smoker, cp, grade = schema.columns
    assert (age.kind, age.unit) == (ColumnKind.NUMERIC, "years")
    assert (age.minimum, age.maximum) == (0.0, 120.0)
    assert smoker.levels == ("no", "yes")
    assert cp.on_missing is MissingPolicy.INDICATOR
    assert grade.missing == ("?",) and grade.on_missing is MissingPolicy.IMPUTE_MEAN
    assert schema.feature_names() == (
        "age", "smoker", "cp=a", "cp=b", "cp=c", "cp__missing", "grade")
    with pytest.raises(dataclasses.FrozenInstanceError):
        schema.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        age.maximum = 200.0  # type: ignore[misc]


def test_no_mutable_container_inside_the_frozen_value() -> None:
    schema = schema_from_toml(SMALL_TOML)

    def walk(value: object) -> None:
        assert not isinstance(value, list | dict | set), value
        if dataclasses.is_dataclass(value):
            for field in dataclasses.fields(value):
                walk(getattr(value, field.name))
        elif isinstance(value, tuple):
            for item in value:
                walk(item)

    walk(schema)
    hash(schema)  # hashable all the way down


def test_toml_round_trip_gives_the_same_value_and_digest() -> None:
    # Arrange
    schema = schema_from_toml(SMALL_TOML)
    # Act
    again = schema_from_toml(render_schema_toml(schema, notes={"cp": "a note\non two lines"}))
    # Assert
    assert again == schema
    assert schema_digest(again) == schema_digest(schema)


def test_canonical_json_round_trip_and_form() -> None:
    schema = schema_from_toml(SMALL_TOML)
    payload = canonical_json(schema)
    assert schema_from_json(payload) == schema
    assert b" " not in payload.replace(b'"every column kind"', b"")
    assert payload.startswith(b'{"columns":[{"kind":"numeric","max":120.0,"min":0.0,')


def test_digest_is_pinned_and_ignores_key_order_and_int_vs_float() -> None:
    # Arrange: the same schema with tables and keys written in another order, ints as floats
    reordered = SMALL_TOML.replace('min = 0\nmax = 120', 'max = 120.0\nmin = 0.0').replace(
        'name = "small"\ndescription = "every column kind"',
        'description = "every column kind"\nname = "small"')
    # Act / Assert
    digest = schema_digest(schema_from_toml(SMALL_TOML))
    assert schema_digest(schema_from_toml(reordered)) == digest
    assert digest.hex() == PINNED_DIGEST


def test_digest_changes_with_any_field() -> None:
    base = schema_digest(schema_from_toml(SMALL_TOML))
    for old, new in [("max = 120", "max = 121"), ('"years"', '"months"'),
                     ('levels = ["a", "b", "c"]', 'levels = ["a", "c", "b"]'),
                     ('on_missing = "impute_mean"', 'on_missing = "indicator"')]:
        assert schema_digest(schema_from_toml(SMALL_TOML.replace(old, new))) != base, old


PINNED_DIGEST = "eee3b81493f0bd19d5453fd8df4f5e689ad1b17ca18adb1412098c8e842444ab"
"""keccak-256 of SMALL_TOML's canonical JSON: a change here changes every pinned task spec."""
