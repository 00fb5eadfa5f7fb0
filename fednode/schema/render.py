"""Schema: writes a data schema as commented TOML for a person to review.

The output reads back (``schema_from_toml``) to the same value, so its digest is the
schema's digest. Comments (``notes``) say where a drafted value came from and what to check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from fednode.schema.model import Column, ColumnKind, DataSchema, Label, LabelKind, TimeSeries

__all__ = ["render_schema_toml"]


def _string(value: str) -> str:
    # A JSON string literal is a valid TOML basic string (same escapes, \\uXXXX included).
    return json.dumps(value, ensure_ascii=False)


def _strings(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_string(value) for value in values) + "]"


def _number(value: float | None) -> str:
    return repr(float(value if value is not None else 0.0))


def _comment(note: str) -> list[str]:
    return [f"# {line}".rstrip() for line in note.splitlines()]


def render_schema_toml(schema: DataSchema, *, notes: Mapping[str, str] | None = None) -> str:
    """The schema as TOML; ``notes`` maps a column name (or ``"label"``) to a comment.

    Example:
      >>> from fednode.schema.parse import schema_from_toml
      >>> from fednode.schema.model import SchemaKind
      >>> label = Label("y", LabelKind.BINARY, positive=("1",), negative=("0",))
      >>> s = DataSchema("s", SchemaKind.TABULAR, label, (Column("x", ColumnKind.BINARY,
      ...                levels=("no", "yes")),))
      >>> schema_from_toml(render_schema_toml(s)) == s
      True
    """
    notes = notes or {}
    lines = [
        "schema_version = 1",
        f"name = {_string(schema.name)}",
        f"kind = {_string(schema.kind.value)}",
        f"description = {_string(schema.description)}",
        "# Markers that mean \"missing\" in every column.",
        f"missing = {_strings(schema.missing)}",
        "# Columns a file may hold that are not used (ids, site).",
        f"ignore = {_strings(schema.ignore)}",
        "",
    ]
    lines += _label_lines(schema.label, notes.get("label"))
    if schema.timeseries is not None:
        lines += _timeseries_lines(schema.timeseries)
    for column in schema.columns:
        lines += _column_lines(column, notes.get(column.name))
    return "\n".join(lines).rstrip("\n") + "\n"


def _label_lines(label: Label, note: str | None) -> list[str]:
    lines = _comment(note) if note else []
    lines += ["[label]", f"column = {_string(label.column)}", f"kind = {_string(label.kind.value)}"]
    if label.kind is LabelKind.BINARY:
        lines += [
            f"positive = {_strings(label.positive)}",
            f"negative = {_strings(label.negative)}",
        ]
    else:
        lines.append(f"classes = {_strings(label.classes)}")
    return [*lines, ""]


def _timeseries_lines(series: TimeSeries) -> list[str]:
    return [
        "[timeseries]",
        f"channels = {_strings(series.channels)}",
        f"window = {series.window}",
        f"sampling_rate_hz = {_number(series.sampling_rate_hz)}",
        f"layout = {_string(series.layout.value)}",
        f"recording_id = {_string(series.recording_id)}",
        "",
    ]


def _column_lines(column: Column, note: str | None) -> list[str]:
    lines = _comment(note) if note else []
    lines += [
        "[[columns]]",
        f"name = {_string(column.name)}",
        f"kind = {_string(column.kind.value)}",
    ]
    if column.kind is ColumnKind.NUMERIC:
        lines += [
            f"unit = {_string(column.unit)}",
            f"min = {_number(column.minimum)}",
            f"max = {_number(column.maximum)}",
        ]
    else:
        lines.append(f"levels = {_strings(column.levels)}")
    lines += [f"missing = {_strings(column.missing)}", f"on_missing = {_string(column.on_missing)}"]
    return [*lines, ""]
