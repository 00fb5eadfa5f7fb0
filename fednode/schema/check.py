"""Schema: checks a site's rows against the data schema and encodes the accepted ones (pure).

``check_rows`` never coerces silently: each row is accepted whole or refused for one named
reason (its first problem: the label, then the columns in schema order), and the report
holds counts and places (file, line, column) only, never a cell's content. The feature
matrix is ordered by the schema, never by the file, so two sites whose columns come in
different orders build the same matrix. NaN never passes: a missing value is dropped, or
marked in ``impute_mask`` for the federated mean (``fill_imputed``), a 0 placeholder until
then.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

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

__all__ = [
    "MAX_PROBLEMS",
    "CheckReport",
    "Problem",
    "RefusalReason",
    "check_rows",
    "fill_imputed",
    "impute_sums",
]

MAX_PROBLEMS = 20
"""How many refused rows the report locates (the counts cover them all)."""


class RefusalReason(StrEnum):
    """Why a file or a row is refused."""

    EMPTY_FILE = "empty_file"
    DUPLICATE_COLUMN = "duplicate_column"
    MISSING_COLUMN = "missing_column"
    EXTRA_COLUMN = "extra_column"
    NO_LABEL = "no_label"
    MALFORMED_ROW = "malformed_row"
    MISSING_VALUE = "missing_value"
    TEXT_IN_NUMERIC = "text_in_numeric"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_LEVEL = "unknown_level"
    MISSING_LABEL = "missing_label"
    UNKNOWN_LABEL = "unknown_label"


@dataclass(frozen=True)
class Problem:
    """Where a file or row was refused and why; never what the cell held."""

    reason: RefusalReason
    source: str
    place: int
    column: str
    place_word: str = "line"

    def __str__(self) -> str:
        where = f"{self.source}:{self.place_word} {self.place}"
        return f"{where}: column {self.column!r}: {self.reason.value}" if self.column else (
            f"{where}: {self.reason.value}")


@dataclass(frozen=True)
class CheckReport:
    """What a site's file gives under a schema.

    Attributes:
      source: the file checked.
      rows_read: data rows in the file (malformed ones included).
      refused: rows refused per reason, sorted by reason (each refused row counted once).
      file_problems: reasons the whole file is refused (then no row is accepted).
      problems: the first ``MAX_PROBLEMS`` refused rows, located.
      feature_names: names of the feature matrix's columns (schema order).
      features: float32 ``(accepted, features)``, finite, read-only.
      labels: int32 ``(accepted,)``: 0/1 (binary) or the class index (multiclass).
      impute_mask: bool ``(accepted, features)``, True where the federated mean goes.
    """

    source: str
    rows_read: int
    refused: tuple[tuple[RefusalReason, int], ...]
    file_problems: tuple[Problem, ...]
    problems: tuple[Problem, ...]
    feature_names: tuple[str, ...]
    features: np.ndarray
    labels: np.ndarray
    impute_mask: np.ndarray

    @property
    def rows_accepted(self) -> int:
        """Rows that fit the schema."""
        return int(self.labels.shape[0])

    @property
    def fits(self) -> bool:
        """Whether the file gives at least one row."""
        return self.rows_accepted > 0


class _Refused(Exception):
    """A row is refused; ``column`` is filled in by whoever knows which column it was."""

    def __init__(self, reason: RefusalReason, column: str = "") -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.column = column


def check_rows(table: RawTable, schema: DataSchema, options: ReadOptions | None = None) -> (
    CheckReport
):
    """Checks every row of ``table`` against a tabular ``schema``.

    Args:
      table: the file as read by ``read_table`` (or built by hand).
      schema: a tabular data schema.
      options: the number format of the site (thousands separator, decimal mark).

    Returns:
      The report: counts per refusal reason, located problems, and the accepted rows encoded.

    Raises:
      SchemaError: the schema is a time-series schema.

    Example:
      >>> from fednode.schema.parse import schema_from_toml
      >>> s = schema_from_toml('name = "s"\\n[label]\\ncolumn = "y"\\nkind = "binary"\\n'
      ...     'positive = ["1"]\\nnegative = ["0"]\\n[[columns]]\\nname = "x"\\n'
      ...     'kind = "numeric"\\nunit = "cm"\\nmin = 0\\nmax = 10\\n')
      >>> t = RawTable("f.csv", ("y", "x"), (("1", "0"), ("2", "11")), (2, 3))
      >>> r = check_rows(t, s)
      >>> r.rows_accepted, dict(r.refused)
      (1, {<RefusalReason.OUT_OF_RANGE: 'out_of_range'>: 1})
    """
    if schema.kind is not SchemaKind.TABULAR:
        raise SchemaError("kind: check_rows takes a tabular schema")
    options = options or ReadOptions()
    file_problems = _header_problems(table, schema)
    if file_problems:
        return _empty_report(table, schema, file_problems)
    return _check_body(table, schema, options)


def _header_problems(table: RawTable, schema: DataSchema) -> tuple[Problem, ...]:
    def at(reason: RefusalReason, column: str = "") -> Problem:
        return Problem(reason, table.source, 1, column, "line")

    if not table.header or table.num_rows == 0:
        return (at(RefusalReason.EMPTY_FILE),)
    counts = Counter(table.header)
    problems = [at(RefusalReason.DUPLICATE_COLUMN, name) for name in counts if counts[name] > 1]
    if schema.label.column not in counts:
        problems.append(at(RefusalReason.NO_LABEL, schema.label.column))
    problems += [at(RefusalReason.MISSING_COLUMN, column.name)
                 for column in schema.columns if column.name not in counts]
    known = {column.name for column in schema.columns} | set(schema.ignore) | {
        schema.label.column}
    problems += [at(RefusalReason.EXTRA_COLUMN, name) for name in table.header if name not in known]
    return tuple(problems)


def _empty_report(table: RawTable, schema: DataSchema, problems: tuple[Problem, ...]) -> (
    CheckReport
):
    width = len(schema.feature_names())
    return CheckReport(
        source=table.source, rows_read=table.num_rows, refused=(), file_problems=problems,
        problems=(), feature_names=schema.feature_names(),
        features=_frozen(np.zeros((0, width), np.float32)),
        labels=_frozen(np.zeros((0,), np.int32)),
        impute_mask=_frozen(np.zeros((0, width), bool)),
    )


def _check_body(table: RawTable, schema: DataSchema, options: ReadOptions) -> CheckReport:
    index = {name: position for position, name in enumerate(table.header)}
    refused: Counter[RefusalReason] = Counter()
    problems = [Problem(RefusalReason.MALFORMED_ROW, table.source, place, "", table.place_word)
                for place in table.malformed_places]
    refused[RefusalReason.MALFORMED_ROW] = len(problems)
    rows: list[list[float]] = []
    masks: list[list[bool]] = []
    labels: list[int] = []
    for row, place in enumerate(table.row_places):
        try:
            label = _encode_label(table.columns[index[schema.label.column]][row], schema)
            values, mask = _encode_row(table, index, row, schema, options)
        except _Refused as refusal:
            refused[refusal.reason] += 1
            problems.append(Problem(refusal.reason, table.source, place, refusal.column,
                                    table.place_word))
            continue
        rows.append(values)
        masks.append(mask)
        labels.append(label)
    return _report(table, schema, refused, problems, rows, masks, labels)


def _report(table: RawTable, schema: DataSchema, refused: Counter[RefusalReason],
            problems: list[Problem], rows: list[list[float]], masks: list[list[bool]],
            labels: list[int]) -> CheckReport:
    width = len(schema.feature_names())
    features = np.asarray(rows, np.float32).reshape(len(rows), width)
    if not np.isfinite(features).all():  # every value was range-checked: this cannot happen
        raise AssertionError("a non-finite feature passed the checks")
    return CheckReport(
        source=table.source,
        rows_read=table.num_rows,
        refused=tuple(sorted((reason, n) for reason, n in refused.items() if n)),
        file_problems=(),
        problems=tuple(sorted(problems, key=lambda p: p.place)[:MAX_PROBLEMS]),
        feature_names=schema.feature_names(),
        features=_frozen(features),
        labels=_frozen(np.asarray(labels, np.int32)),
        impute_mask=_frozen(np.asarray(masks, bool).reshape(len(masks), width)),
    )


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _encode_row(table: RawTable, index: dict[str, int], row: int, schema: DataSchema,
                options: ReadOptions) -> tuple[list[float], list[bool]]:
    values: list[float] = []
    mask: list[bool] = []
    for column in schema.columns:
        cell = table.columns[index[column.name]][row]
        try:
            encoded, imputed = _encode_cell(cell, column, schema, options)
        except _Refused as refusal:
            raise _Refused(refusal.reason, column.name) from None
        values += encoded
        mask += [imputed] * len(encoded)
        if column.on_missing is MissingPolicy.INDICATOR:
            values.append(1.0 if imputed else 0.0)
            mask.append(False)
    return values, mask


def _encode_cell(cell: Cell, column: Column, schema: DataSchema, options: ReadOptions) -> (
    tuple[list[float], bool]
):
    """A cell's encoded values and whether they await the federated mean."""
    width = len(column.levels) if column.kind is ColumnKind.CATEGORICAL else 1
    if is_missing(cell, schema.missing + column.missing):
        if column.on_missing is MissingPolicy.DROP:
            raise _Refused(RefusalReason.MISSING_VALUE)
        return [0.0] * width, True
    if column.kind is ColumnKind.NUMERIC:
        return [_checked_number(cell, column, options)], False
    rank = _level_rank(cell, column.levels)
    if column.kind is ColumnKind.CATEGORICAL:
        return [1.0 if i == rank else 0.0 for i in range(width)], False
    return [float(rank)], False


def _level_rank(cell: Cell, levels: tuple[str, ...]) -> int:
    text = cell_text(cell)
    if text not in levels:
        raise _Refused(RefusalReason.UNKNOWN_LEVEL)
    return levels.index(text)


def _checked_number(cell: Cell, column: Column, options: ReadOptions) -> float:
    value = parse_number(cell, options)
    if value is None:
        raise _Refused(RefusalReason.TEXT_IN_NUMERIC)
    if not math.isfinite(value):
        raise _Refused(RefusalReason.NOT_FINITE)
    minimum = -math.inf if column.minimum is None else column.minimum
    maximum = math.inf if column.maximum is None else column.maximum
    if not minimum <= value <= maximum:
        raise _Refused(RefusalReason.OUT_OF_RANGE)
    return value


def _encode_label(cell: Cell, schema: DataSchema) -> int:
    label: Label = schema.label
    if is_missing(cell, schema.missing):
        raise _Refused(RefusalReason.MISSING_LABEL, label.column)
    text = cell_text(cell)
    if label.kind is LabelKind.MULTICLASS:
        if text in label.classes:
            return label.classes.index(text)
    elif text in label.positive or text in label.negative:
        return int(text in label.positive)
    raise _Refused(RefusalReason.UNKNOWN_LABEL, label.column)


def impute_sums(report: CheckReport) -> tuple[np.ndarray, np.ndarray]:
    """Per feature: count and sum of the values that are present (a site's share of the mean).

    Example:
      >>> import numpy as np
      >>> r = CheckReport("f", 2, (), (), (), ("x",), np.array([[2.0], [0.0]], np.float32),
      ...                 np.array([0, 1], np.int32), np.array([[False], [True]]))
      >>> impute_sums(r)
      (array([1]), array([2.]))
    """
    present = ~report.impute_mask
    counts = present.sum(axis=0)
    sums = np.where(present, report.features, 0.0).astype(np.float64).sum(axis=0)
    return counts, sums


def fill_imputed(report: CheckReport, means: np.ndarray) -> np.ndarray:
    """The feature matrix with each awaited value set to the federated mean of its feature.

    Raises:
      SchemaError: ``means`` has the wrong shape or a non-finite value where one is needed.
    """
    means = np.asarray(means, np.float32)
    if means.shape != (len(report.feature_names),):
        raise SchemaError(f"means: expected shape ({len(report.feature_names)},), "
                          f"got {means.shape}")
    needed = report.impute_mask.any(axis=0)
    if not np.isfinite(means[needed]).all():
        raise SchemaError("means: a feature that needs imputing has no finite mean")
    return np.where(report.impute_mask, means[None, :], report.features).astype(np.float32)
