"""Schema: each malformed schema is refused with a SchemaError naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from schema_fixtures import SMALL_TOML

from fednode.errors import FednodeValueError, SchemaError
from fednode.schema import load_schema, schema_from_json, schema_from_toml

TIMESERIES_TOML = '''
name = "gait"
kind = "timeseries"
[label]
column = "activity"
kind = "multiclass"
classes = ["walk", "run", "rest"]
[timeseries]
channels = ["x", "y", "z"]
window = 100
sampling_rate_hz = 10.0
layout = "long_table"
recording_id = "rec"
'''


def test_a_timeseries_schema_reads_back() -> None:
    schema = schema_from_toml(TIMESERIES_TOML)
    assert schema.timeseries is not None
    assert schema.timeseries.channels == ("x", "y", "z")
    assert schema.timeseries.window == 100 and schema.timeseries.recording_id == "rec"
    assert schema.label.classes == ("walk", "run", "rest")


def _swap(old: str, new: str, text: str = SMALL_TOML) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


BAD_SCHEMAS = [
    ("not toml", "name = ", ""),
    ("version", "schema_version = 1", "schema_version = 2"),
    ("no name", 'name = "small"\n', ""),
    ("unknown top key", 'name = "small"', 'name = "small"\nnmae = "x"'),
    ("bad kind", 'name = "small"', 'name = "small"\nkind = "image"'),
    ("no label", "[label]", "[labelx]"),
    ("label kind", 'kind = "binary"\npositive', 'kind = "ordinal"\npositive'),
    ("positive twice", 'positive = ["yes"]', 'positive = ["no"]'),
    ("positive empty", 'positive = ["yes"]', "positive = []"),
    ("no columns", SMALL_TOML[SMALL_TOML.index("[[columns]]"):], ""),
    ("column kind", 'kind = "numeric"', 'kind = "number"'),
    ("no unit", 'unit = "years"\n', ""),
    ("min above max", "min = 0\nmax = 120", "min = 130\nmax = 120"),
    ("min text", "min = 0", 'min = "zero"'),
    ("max beyond float32", "max = 120", "max = 1e39"),
    ("binary three levels", 'levels = ["no", "yes"]', 'levels = ["no", "yes", "maybe"]'),
    ("level twice", 'levels = ["a", "b", "c"]', 'levels = ["a", "b", "a"]'),
    ("one level", 'levels = ["low", "mid", "high"]', 'levels = ["low"]'),
    ("policy", 'on_missing = "indicator"', 'on_missing = "guess"'),
    ("misspelt key", 'on_missing = "indicator"', 'on_mising = "indicator"'),
    ("duplicate column", 'name = "smoker"', 'name = "age"'),
    ("label is a column", 'column = "y"', 'column = "age"'),
    ("ignored label", 'ignore = ["id"]', 'ignore = ["y"]'),
    ("level is a marker", 'levels = ["a", "b", "c"]', 'levels = ["a", "b", "NA"]'),
    ("label value is a marker", 'negative = ["no"]', 'negative = ["NA"]'),
    ("name with spaces", 'name = "smoker"', 'name = " smoker"'),
    ("columns in timeseries", 'name = "small"', 'name = "small"\nkind = "timeseries"'),
]
EXPECTED_FIELD = {
    "not toml": "not valid TOML", "version": "schema_version", "no name": "name: is required",
    "unknown top key": "nmae: unknown key", "bad kind": "kind: must be one of",
    "no label": "label: is required", "label kind": "label.kind",
    "positive twice": "label.positive: 'no' is also in label.negative",
    "positive empty": "label.positive", "no columns": "columns:",
    "column kind": "columns[0].kind", "no unit": "columns[0].unit: is required",
    "min above max": "columns[0].min", "min text": "columns[0].min: must be a number",
    "max beyond float32": "columns[0].max: 1e+39 does not fit a float32 feature",
    "binary three levels": "columns[1].levels", "level twice": "columns[2].levels",
    "one level": "columns[3].levels", "policy": "columns[2].on_missing",
    "misspelt key": "columns[2].on_mising: unknown key",
    "duplicate column": "columns[1].name: 'age' is already used by columns[0].name",
    "label is a column": "label.column: 'age' is already used",
    "ignored label": "ignore[0]: 'y' is already used by label.column",
    "level is a marker": "columns[2].levels: 'NA' is also a missing marker",
    "label value is a marker": "label: the value 'NA'",
    "name with spaces": "columns[1].name", "columns in timeseries": "columns:",
}


@pytest.mark.parametrize("case", BAD_SCHEMAS, ids=[case[0] for case in BAD_SCHEMAS])
def test_bad_schema_is_refused_naming_the_field(case: tuple[str, ...]) -> None:
    # Arrange
    name, old, new = case
    text = old if name == "not toml" else _swap(old, new)
    # Act / Assert
    with pytest.raises(SchemaError) as raised:
        schema_from_toml(text)
    assert EXPECTED_FIELD[name] in str(raised.value)
    assert isinstance(raised.value, FednodeValueError)


@pytest.mark.parametrize(("old", "new", "field"), [
    ("window = 100", "window = 0", "timeseries.window: must be a positive integer"),
    ("sampling_rate_hz = 10.0", "sampling_rate_hz = -1.0", "timeseries.sampling_rate_hz"),
    ('recording_id = "rec"', 'recording_id = ""', "timeseries.recording_id: a long table"),
    ('layout = "long_table"', 'layout = "file_per_recording"', "timeseries.recording_id: only"),
    ('channels = ["x", "y", "z"]', "channels = []", "timeseries.channels: lists no channel"),
    ('channels = ["x", "y", "z"]', 'channels = ["x", "rec"]', "timeseries.recording_id: 'rec'"),
    ('classes = ["walk", "run", "rest"]', 'classes = ["walk"]', "label.classes"),
    ("[timeseries]", "[series]", "timeseries: is required"),
])
def test_bad_timeseries_schema_is_refused_naming_the_field(old: str, new: str, field: str) -> (
    None
):
    with pytest.raises(SchemaError, match=field.replace("[", r"\[").replace("]", r"\]")):
        schema_from_toml(_swap(old, new, TIMESERIES_TOML))


def test_load_schema_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(_swap("max = 120", 'max = "lots"'))
    with pytest.raises(SchemaError, match=r"s\.toml: columns\[0\]\.max: must be a number"):
        load_schema(path)
    with pytest.raises(SchemaError, match="missing.toml: cannot read"):
        load_schema(tmp_path / "missing.toml")


def test_bad_json_is_refused() -> None:
    with pytest.raises(SchemaError, match="not valid JSON"):
        schema_from_json(b"{")
    with pytest.raises(SchemaError, match="schema: must be a table"):
        schema_from_json(b"[]")
