"""Schema: reads a data schema from TOML or its canonical JSON, refusing anything malformed.

Every error is a ``SchemaError`` whose message starts with the offending field's path
(``columns[3].max``, ``label.positive``), so a publisher can fix the file without guessing.
Unknown keys are refused too: a misspelt ``on_mising`` must not silently mean "drop".
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from fednode.errors import SchemaError
from fednode.schema.model import (
    SCHEMA_VERSION,
    Column,
    ColumnKind,
    DataSchema,
    Label,
    LabelKind,
    MissingPolicy,
    RecordingLayout,
    SchemaKind,
    TimeSeries,
)

__all__ = ["load_schema", "parse_schema", "schema_from_json", "schema_from_toml"]

_FLOAT32_MAX = 3.4028234663852886e38
"""Largest finite float32: a valid range must fit the float32 feature matrix."""

_E = TypeVar("_E", ColumnKind, LabelKind, MissingPolicy, RecordingLayout, SchemaKind)


class _Fields:
    """A mapping being read at ``path``; remembers which keys were used to refuse the rest."""

    def __init__(self, value: object, path: str) -> None:
        if not isinstance(value, Mapping):
            raise SchemaError(f"{path or 'schema'}: must be a table, got {_kind(value)}")
        self.value: Mapping[str, object] = value
        self.path = path
        self.used: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> object | None:
        self.used.add(key)
        return self.value.get(key)

    def required(self, key: str) -> object:
        if key not in self.value:
            raise SchemaError(f"{self.at(key)}: is required")
        return self.get(key)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.get(key) if default is not None else self.required(key)
        if value is None:
            return str(default)
        if not isinstance(value, str):
            raise SchemaError(f"{self.at(key)}: must be a string, got {_kind(value)}")
        return value

    def name(self, key: str) -> str:
        value = self.text(key)
        if not value.strip() or value != value.strip():
            raise SchemaError(f"{self.at(key)}: must be a non-empty name without outer spaces")
        return value

    def texts(self, key: str, *, default: tuple[str, ...] = (), required: bool = False) -> (
        tuple[str, ...]
    ):
        value = self.required(key) if required else self.get(key)
        if value is None:
            return default
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise SchemaError(f"{self.at(key)}: must be a list of strings, got {_kind(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise SchemaError(f"{self.at(key)}[{index}]: must be a string, got {_kind(item)}")
        _refuse_duplicates(self.at(key), value)
        return tuple(value)

    def number(self, key: str) -> float:
        value = self.required(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(f"{self.at(key)}: must be a number, got {_kind(value)}")
        if not math.isfinite(value):
            raise SchemaError(f"{self.at(key)}: must be finite, got {value}")
        return float(value)

    def choice(self, key: str, enum: type[_E], default: _E | None = None) -> _E:
        raw = self.get(key) if default is not None else self.required(key)
        if raw is None and default is not None:
            return default
        allowed = ", ".join(member.value for member in enum)
        if not isinstance(raw, str) or raw not in {member.value for member in enum}:
            raise SchemaError(f"{self.at(key)}: must be one of {allowed}, got {raw!r}")
        return enum(raw)

    def done(self) -> None:
        unknown = sorted(set(self.value) - self.used)
        if unknown:
            raise SchemaError(f"{self.at(unknown[0])}: unknown key")


def _kind(value: object) -> str:
    return type(value).__name__


def _refuse_duplicates(path: str, values: Sequence[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise SchemaError(f"{path}: {value!r} is listed twice")
        seen.add(value)


def load_schema(path: Path) -> DataSchema:
    """Reads a schema file: TOML, or canonical JSON if the name ends in ``.json``.

    Raises:
      SchemaError: the file is missing, not TOML/JSON, or not a valid schema (the message
        starts with the file name and the field).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read the schema file ({exc.strerror})") from exc
    try:
        if path.suffix == ".json":
            return schema_from_json(raw)
        return schema_from_toml(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: the schema file is not UTF-8") from exc
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from exc


def schema_from_toml(text: str) -> DataSchema:
    """Parses a schema from TOML text.

    Example:
      >>> s = schema_from_toml('name = "s"\\n[label]\\ncolumn = "y"\\nkind = "multiclass"\\n'
      ...                      'classes = ["a", "b"]\\n[[columns]]\\nname = "x"\\n'
      ...                      'kind = "numeric"\\nunit = "cm"\\nmin = 0\\nmax = 1\\n')
      >>> s.columns[0].maximum, s.label.classes
      (1.0, ('a', 'b'))
    """
    try:
        mapping = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SchemaError(f"not valid TOML: {exc}") from exc
    return parse_schema(mapping)


def schema_from_json(payload: bytes) -> DataSchema:
    """Parses a schema from its (canonical) JSON, as a task spec carries it."""
    try:
        mapping = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"not valid JSON: {exc}") from exc
    return parse_schema(mapping)


def parse_schema(mapping: object) -> DataSchema:
    """Builds and validates a ``DataSchema`` from plain values (a TOML or JSON document).

    Raises:
      SchemaError: naming the first field that is missing, of the wrong type, out of its
        allowed values, unknown, or inconsistent with another field.
    """
    fields = _Fields(mapping, "")
    version = fields.get("schema_version")
    if version is not None and version != SCHEMA_VERSION:
        raise SchemaError(f"schema_version: this code reads version {SCHEMA_VERSION}, "
                          f"got {version!r}")
    kind = fields.choice("kind", SchemaKind, SchemaKind.TABULAR)
    schema = DataSchema(
        name=fields.name("name"),
        kind=kind,
        description=fields.text("description", ""),
        missing=fields.texts("missing", default=("",)),
        ignore=fields.texts("ignore"),
        label=_parse_label(fields.required("label")),
        columns=_parse_columns(fields, kind),
        timeseries=_parse_timeseries(fields, kind),
    )
    fields.done()
    _check_names(schema)
    _check_markers(schema)
    return schema


def _parse_columns(fields: _Fields, kind: SchemaKind) -> tuple[Column, ...]:
    raw = fields.get("columns")
    if kind is SchemaKind.TIMESERIES:
        if raw:
            raise SchemaError("columns: a time-series schema takes [timeseries] channels")
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise SchemaError("columns: a tabular schema needs at least one [[columns]] entry")
    return tuple(_parse_column(item, f"columns[{index}]") for index, item in enumerate(raw))


def _parse_column(value: object, path: str) -> Column:
    fields = _Fields(value, path)
    name = fields.name("name")
    kind = fields.choice("kind", ColumnKind)
    column = Column(
        name=name,
        kind=kind,
        missing=fields.texts("missing"),
        on_missing=fields.choice("on_missing", MissingPolicy, MissingPolicy.DROP),
    )
    if kind is ColumnKind.NUMERIC:
        column = _with_range(column, fields)
    else:
        column = replace(column, levels=_levels(fields, kind))
    fields.done()
    return column


def _with_range(column: Column, fields: _Fields) -> Column:
    unit = fields.text("unit")
    minimum, maximum = fields.number("min"), fields.number("max")
    if minimum > maximum:
        raise SchemaError(f"{fields.at('min')}: {minimum} is above max {maximum}")
    for key, bound in (("min", minimum), ("max", maximum)):
        if abs(bound) > _FLOAT32_MAX:
            raise SchemaError(f"{fields.at(key)}: {bound} does not fit a float32 feature")
    return replace(column, unit=unit, minimum=minimum, maximum=maximum)


def _levels(fields: _Fields, kind: ColumnKind) -> tuple[str, ...]:
    levels = fields.texts("levels", required=True)
    if kind is ColumnKind.BINARY and len(levels) != 2:
        raise SchemaError(f"{fields.at('levels')}: a binary column has exactly two levels "
                          f"[negative, positive], got {len(levels)}")
    if len(levels) < 2:
        raise SchemaError(f"{fields.at('levels')}: needs at least two levels, got {len(levels)}")
    return levels


def _parse_label(value: object) -> Label:
    fields = _Fields(value, "label")
    column = fields.name("column")
    kind = fields.choice("kind", LabelKind)
    if kind is LabelKind.BINARY:
        label = Label(column, kind, positive=fields.texts("positive", required=True),
                      negative=fields.texts("negative", required=True))
        _check_binary_label(label)
    else:
        label = Label(column, kind, classes=fields.texts("classes", required=True))
        if len(label.classes) < 2:
            raise SchemaError("label.classes: a multiclass label needs at least two classes")
    fields.done()
    return label


def _check_binary_label(label: Label) -> None:
    if not label.positive:
        raise SchemaError("label.positive: lists no value")
    if not label.negative:
        raise SchemaError("label.negative: lists no value")
    both = sorted(set(label.positive) & set(label.negative))
    if both:
        raise SchemaError(f"label.positive: {both[0]!r} is also in label.negative")


def _parse_timeseries(fields: _Fields, kind: SchemaKind) -> TimeSeries | None:
    raw = fields.get("timeseries")
    if kind is SchemaKind.TABULAR:
        if raw is not None:
            raise SchemaError("timeseries: only a schema with kind = \"timeseries\" takes it")
        return None
    if raw is None:
        raise SchemaError("timeseries: is required when kind = \"timeseries\"")
    series_fields = _Fields(raw, "timeseries")
    series = TimeSeries(
        channels=series_fields.texts("channels", required=True),
        window=_positive_int(series_fields, "window"),
        sampling_rate_hz=series_fields.number("sampling_rate_hz"),
        layout=series_fields.choice("layout", RecordingLayout),
        recording_id=series_fields.text("recording_id", ""),
    )
    series_fields.done()
    _check_timeseries(series)
    return series


def _positive_int(fields: _Fields, key: str) -> int:
    value = fields.required(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SchemaError(f"{fields.at(key)}: must be a positive integer, got {value!r}")
    return value


def _check_timeseries(series: TimeSeries) -> None:
    if not series.channels:
        raise SchemaError("timeseries.channels: lists no channel")
    if series.sampling_rate_hz <= 0:
        raise SchemaError("timeseries.sampling_rate_hz: must be above 0")
    if series.layout is RecordingLayout.LONG_TABLE and not series.recording_id:
        raise SchemaError("timeseries.recording_id: a long table needs its recording id column")
    if series.layout is RecordingLayout.FILE_PER_RECORDING and series.recording_id:
        raise SchemaError("timeseries.recording_id: only a long table has a recording id column")


def _check_names(schema: DataSchema) -> None:
    """Every column name is used once: features, label, ignored columns, channels, id."""
    names: list[tuple[str, str]] = [(f"columns[{i}].name", c.name)
                                    for i, c in enumerate(schema.columns)]
    names.append(("label.column", schema.label.column))
    names += [(f"ignore[{i}]", name) for i, name in enumerate(schema.ignore)]
    if schema.timeseries is not None:
        names += [(f"timeseries.channels[{i}]", name)
                  for i, name in enumerate(schema.timeseries.channels)]
        if schema.timeseries.recording_id:
            names.append(("timeseries.recording_id", schema.timeseries.recording_id))
    first: dict[str, str] = {}
    for path, name in names:
        if name in first:
            raise SchemaError(f"{path}: {name!r} is already used by {first[name]}")
        first[name] = path


def _check_markers(schema: DataSchema) -> None:
    """No level or label value is also a missing marker: a value cannot mean both."""
    for index, column in enumerate(schema.columns):
        markers = set(schema.missing) | set(column.missing)
        clash = sorted(markers & set(column.levels))
        if clash:
            raise SchemaError(f"columns[{index}].levels: {clash[0]!r} is also a missing marker")
    label = schema.label
    clash = sorted(set(schema.missing) & set(label.positive + label.negative + label.classes))
    if clash:
        raise SchemaError(f"label: the value {clash[0]!r} is also a missing marker")
