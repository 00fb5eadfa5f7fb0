"""Schema: drafts a data schema from a sample file, for a person to review (pure).

The draft is a starting point, never a decision: ranges are the observed minimum and maximum
(widen them to what is valid), binary (two texts, or 0/1) and categorical levels are the
values seen, increasing whole numbers in every row are drafted as an ignored id, a label
with two values is drafted binary with the larger one positive, and text columns with more
than ``MAX_LEVELS`` values (ids, names, free text) are drafted as ignored. ``notes`` says
so per column, and ``render_schema_toml`` writes them as comments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fednode.errors import SchemaError
from fednode.schema.cells import cell_text, is_missing, parse_number
from fednode.schema.model import (
    Column,
    ColumnKind,
    DataSchema,
    Label,
    LabelKind,
    MissingPolicy,
    SchemaKind,
)
from fednode.schema.reader import Cell, RawTable, ReadOptions

__all__ = ["DEFAULT_MISSING_MARKERS", "MAX_LEVELS", "SchemaDraft", "infer_schema"]

DEFAULT_MISSING_MARKERS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "?", ".")
"""Markers a draft treats as missing when they appear in the sample."""

MAX_LEVELS = 20
"""A text column with more distinct values than this is drafted as ignored, not categorical."""


@dataclass(frozen=True)
class SchemaDraft:
    """A drafted schema and one review note per column (and ``"label"``)."""

    schema: DataSchema
    notes: tuple[tuple[str, str], ...]


def infer_schema(table: RawTable, *, label: str, name: str = "draft",
                 options: ReadOptions | None = None) -> SchemaDraft:
    """Drafts a tabular schema from ``table``, with ``label`` as the label column.

    Raises:
      SchemaError: the file has no such label column or no data row.

    Example:
      >>> t = RawTable("f.csv", ("x", "y"), (("1.5", "NA", "3"), ("no", "yes", "no")), (2, 3, 4))
      >>> d = infer_schema(t, label="y")
      >>> d.schema.columns[0].kind.value, d.schema.columns[0].maximum, d.schema.label.positive
      ('numeric', 3.0, ('yes',))
    """
    options = options or ReadOptions()
    if label not in table.header:
        raise SchemaError(f"label: {table.source} has no column {label!r}")
    if not table.row_places:
        raise SchemaError(f"{table.source}: no data row to draft a schema from")
    markers = _markers_seen(table)
    notes: list[tuple[str, str]] = []
    columns: list[Column] = []
    ignore: list[str] = []
    for name_, cells in zip(table.header, table.columns, strict=True):
        values = [cell for cell in cells if not is_missing(cell, markers)]
        if name_ == label:
            drafted_label, note = _draft_label(name_, values)
            notes.append(("label", note))
            continue
        column, note = _draft_column(name_, values, len(cells), options)
        notes.append((name_, note))
        if column is None:
            ignore.append(name_)
        else:
            columns.append(column)
    if not columns:
        raise SchemaError(f"{table.source}: no column besides the label could be drafted")
    schema = DataSchema(name=name, kind=SchemaKind.TABULAR, label=drafted_label,
                        columns=tuple(columns), missing=markers, ignore=tuple(ignore),
                        description=f"drafted from {Path(table.source).name}; review before use")
    return SchemaDraft(schema, tuple(notes))


def _markers_seen(table: RawTable) -> tuple[str, ...]:
    seen = {cell_text(cell) for cells in table.columns for cell in cells if cell is not None}
    return tuple(marker for marker in DEFAULT_MISSING_MARKERS if marker in seen or not marker)


def _draft_label(name: str, values: Sequence[Cell]) -> tuple[Label, str]:
    classes = _sorted_levels({cell_text(value) for value in values})
    if len(classes) < 2:
        raise SchemaError(f"label: column {name!r} holds fewer than two distinct values")
    if len(classes) == 2:
        return (Label(name, LabelKind.BINARY, positive=(classes[1],), negative=(classes[0],)),
                f"review: is {classes[1]!r} the positive class?")
    return (Label(name, LabelKind.MULTICLASS, classes=tuple(classes)),
            f"{len(classes)} classes seen; for a binary task list them under positive/negative")


def _draft_column(name: str, values: Sequence[Cell], rows: int, options: ReadOptions) -> (
    tuple[Column | None, str]
):
    missing_note = _missing_note(rows - len(values), rows)
    if not values:
        return None, "every value is missing: ignored"
    numbers = _numbers(values, options)
    levels = _sorted_levels({cell_text(value) for value in values})
    if numbers is not None and _looks_like_id(numbers, rows):
        return None, "increasing whole numbers in every row: ignored (an id?)"
    if numbers is not None and not (len(levels) == 2 and set(levels) <= {"0", "1"}):
        column = Column(name, ColumnKind.NUMERIC, unit="", minimum=min(numbers),
                        maximum=max(numbers), on_missing=MissingPolicy.DROP)
        return column, (f"observed range {min(numbers):g} .. {max(numbers):g}: set the unit "
                        f"and widen to the valid range{missing_note}")
    if len(levels) == 2:
        return (Column(name, ColumnKind.BINARY, levels=tuple(levels)),
                f"binary: review which level is positive (second){missing_note}")
    if 2 < len(levels) <= MAX_LEVELS:
        return (Column(name, ColumnKind.CATEGORICAL, levels=tuple(levels)),
                f"categorical: {len(levels)} levels seen; ordinal if they are ordered"
                f"{missing_note}")
    return None, f"{len(levels)} distinct values: ignored (an id or free text?)"


def _looks_like_id(numbers: list[float], rows: int) -> bool:
    """Whole numbers present in every row and strictly increasing in file order."""
    return (len(numbers) == rows > MAX_LEVELS and all(n.is_integer() for n in numbers)
            and all(a < b for a, b in zip(numbers, numbers[1:], strict=False)))


def _missing_note(missing: int, rows: int) -> str:
    if not missing:
        return ""
    return f"; {missing} of {rows} rows missing: choose drop, impute_mean or indicator"


def _numbers(values: Sequence[Cell], options: ReadOptions) -> list[float] | None:
    numbers = [parse_number(value, options) for value in values]
    if any(number is None for number in numbers):
        return None
    return [number for number in numbers if number is not None]


def _sorted_levels(levels: set[str]) -> list[str]:
    """Numeric-looking levels in numeric order, else text order."""
    try:
        return sorted(levels, key=float)
    except ValueError:
        return sorted(levels)
