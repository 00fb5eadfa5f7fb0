"""Schema: the data schema value (frozen all the way down), its canonical JSON and its digest.

A ``DataSchema`` is what a task publisher writes once: the columns a site's file must hold
(numeric with unit and valid range, binary, categorical, ordinal), how missing values are
marked and handled, the label, the columns to ignore, or for time series the recordings'
channels, window and sampling rate. Everything here is pure: parsing a plain mapping (as
``tomllib`` gives it) into the value, and the value into canonical JSON and a keccak digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from fednode.codec import digest_bytes

__all__ = [
    "SCHEMA_VERSION",
    "Column",
    "ColumnKind",
    "DataSchema",
    "Label",
    "LabelKind",
    "MissingPolicy",
    "RecordingLayout",
    "SchemaKind",
    "TimeSeries",
    "canonical_json",
    "schema_digest",
]

SCHEMA_VERSION = 1
"""The only ``schema_version`` this code reads."""


class SchemaKind(StrEnum):
    """Whether a site's data is one row per example or recordings of channels over time."""

    TABULAR = "tabular"
    TIMESERIES = "timeseries"


class ColumnKind(StrEnum):
    """How one feature column is read and encoded."""

    NUMERIC = "numeric"
    """A number with a unit and an inclusive valid range; encoded as itself."""
    BINARY = "binary"
    """Exactly two levels, ``(negative, positive)``; encoded 0 / 1."""
    CATEGORICAL = "categorical"
    """Unordered levels; one-hot encoded in the schema's level order."""
    ORDINAL = "ordinal"
    """Ordered levels, lowest first; encoded as the level's rank 0, 1, ..."""


class MissingPolicy(StrEnum):
    """What a site does with a row whose value in this column is missing."""

    DROP = "drop"
    """The row is refused (reason ``missing_value``)."""
    IMPUTE_MEAN = "impute_mean"
    """The value is filled with the federated mean of the column's encoded features."""
    INDICATOR = "indicator"
    """As ``impute_mean``, plus a 0/1 feature ``<column>__missing`` right after the column."""


class LabelKind(StrEnum):
    """Binary (negative / positive value sets) or multiclass (an ordered class list)."""

    BINARY = "binary"
    MULTICLASS = "multiclass"


class RecordingLayout(StrEnum):
    """How time-series recordings are stored."""

    FILE_PER_RECORDING = "file_per_recording"
    LONG_TABLE = "long_table"


@dataclass(frozen=True)
class Column:
    """One feature column.

    Attributes:
      name: the column's header in a site's file.
      kind: how it is read and encoded.
      unit: unit of a numeric column (``""`` for the others).
      minimum: inclusive lower bound of a numeric column (``None`` for the others).
      maximum: inclusive upper bound of a numeric column (``None`` for the others).
      levels: the values of a binary (negative, positive), categorical or ordinal column.
      missing: markers that mean "missing" in this column, on top of the schema's own.
      on_missing: what to do with a row whose value is missing.
    """

    name: str
    kind: ColumnKind
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    levels: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    on_missing: MissingPolicy = MissingPolicy.DROP

    def feature_names(self) -> tuple[str, ...]:
        """The names of the features this column encodes to, in order.

        Example:
          >>> Column("cp", ColumnKind.CATEGORICAL, levels=("a", "b")).feature_names()
          ('cp=a', 'cp=b')
        """
        if self.kind is ColumnKind.CATEGORICAL:
            names = tuple(f"{self.name}={level}" for level in self.levels)
        else:
            names = (self.name,)
        if self.on_missing is MissingPolicy.INDICATOR:
            names += (f"{self.name}__missing",)
        return names


@dataclass(frozen=True)
class Label:
    """The label column.

    Attributes:
      column: its header in a site's file.
      kind: binary or multiclass.
      positive: values that mean the positive class (binary).
      negative: values that mean the negative class (binary).
      classes: the class values in index order (multiclass).
    """

    column: str
    kind: LabelKind
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimeSeries:
    """The recordings of a time-series schema.

    Attributes:
      channels: channel names (the columns of a recording), in model input order.
      window: samples per training window.
      sampling_rate_hz: samples per second every recording must have.
      layout: one file per recording, or a long table of all recordings.
      recording_id: the column naming a row's recording (long table only, else ``""``).
    """

    channels: tuple[str, ...]
    window: int
    sampling_rate_hz: float
    layout: RecordingLayout
    recording_id: str = ""


@dataclass(frozen=True)
class DataSchema:
    """A data schema, frozen all the way down (tuples only), so its digest cannot drift.

    Attributes:
      name: a short name for people.
      kind: tabular or time series.
      label: the label column.
      columns: the feature columns, in feature order (tabular; empty for time series).
      missing: markers that mean "missing" in every column.
      ignore: columns a file may hold that are not used (ids, site).
      timeseries: the recordings' description (time series only).
      description: free text for people.
    """

    name: str
    kind: SchemaKind
    label: Label
    columns: tuple[Column, ...] = ()
    missing: tuple[str, ...] = ("",)
    ignore: tuple[str, ...] = ()
    timeseries: TimeSeries | None = None
    description: str = ""

    def feature_names(self) -> tuple[str, ...]:
        """Every encoded feature's name, in the order of the feature matrix."""
        return tuple(name for column in self.columns for name in column.feature_names())

    def to_json_value(self) -> dict[str, object]:
        """The schema as plain JSON values (the exact mapping ``canonical_json`` serializes)."""
        value: dict[str, object] = {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "kind": self.kind.value,
            "description": self.description,
            "missing": list(self.missing),
            "ignore": list(self.ignore),
            "label": _label_json(self.label),
        }
        if self.kind is SchemaKind.TABULAR:
            value["columns"] = [_column_json(column) for column in self.columns]
        elif self.timeseries is not None:
            value["timeseries"] = _timeseries_json(self.timeseries)
        return value


def _column_json(column: Column) -> dict[str, object]:
    value: dict[str, object] = {
        "name": column.name,
        "kind": column.kind.value,
        "on_missing": column.on_missing.value,
        "missing": list(column.missing),
    }
    if column.kind is ColumnKind.NUMERIC:
        value.update(unit=column.unit, min=column.minimum, max=column.maximum)
    else:
        value["levels"] = list(column.levels)
    return value


def _label_json(label: Label) -> dict[str, object]:
    value: dict[str, object] = {"column": label.column, "kind": label.kind.value}
    if label.kind is LabelKind.BINARY:
        value.update(positive=list(label.positive), negative=list(label.negative))
    else:
        value["classes"] = list(label.classes)
    return value


def _timeseries_json(series: TimeSeries) -> dict[str, object]:
    return {
        "channels": list(series.channels),
        "window": series.window,
        "sampling_rate_hz": series.sampling_rate_hz,
        "layout": series.layout.value,
        "recording_id": series.recording_id,
    }


def canonical_json(schema: DataSchema) -> bytes:
    """The schema's canonical JSON: sorted keys, no whitespace, UTF-8, floats as floats.

    Example:
      >>> label = Label("y", LabelKind.BINARY, positive=("1",), negative=("0",))
      >>> canonical_json(DataSchema("s", SchemaKind.TABULAR, label))[:30]
      b'{"columns":[],"description":""'
    """
    text = json.dumps(
        schema.to_json_value(), sort_keys=True, separators=(",", ":"),
        ensure_ascii=False, allow_nan=False,
    )
    return text.encode("utf-8")


def schema_digest(schema: DataSchema) -> bytes:
    """keccak-256 of the canonical JSON (what a task spec pins on chain), 32 bytes.

    Example:
      >>> label = Label("y", LabelKind.BINARY, positive=("1",), negative=("0",))
      >>> len(schema_digest(DataSchema("s", SchemaKind.TABULAR, label)))
      32
    """
    return digest_bytes(canonical_json(schema))
