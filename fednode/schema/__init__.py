"""Schema: the data schema a task publisher writes once, and the check a site runs on its files.

Pipeline position: before training. A publisher drafts a schema from a sample
(``infer_schema``), reviews the TOML (``render_schema_toml`` / ``load_schema``) and pins its
canonical JSON digest (``schema_digest``) in the task; each site reads its own file
(``read_table``) and keeps only the rows that fit (``check_rows``), encoded as a float32
feature matrix in schema order.

Files are read with **pyarrow** (Arrow's C++ CSV and Parquet readers), not polars, because:
its CSV reader accepts LF, CRLF *and* lone-CR line endings and skips a UTF-8 BOM natively
(real exports from old spreadsheet tools end lines with CR); its ``invalid_row_handler``
lets us set aside and count rows with the wrong number of fields instead of failing the
whole file or echoing their content; it can keep every cell as the file's text (no type
guessing, no null conversion), so deciding what a cell means stays with the schema; Parquet
is Arrow's own format; and the wheel depends only on numpy, which we already pin.
"""

from fednode.schema.cells import cell_text, is_missing, parse_number
from fednode.schema.check import (
    MAX_PROBLEMS,
    CheckReport,
    Problem,
    RefusalReason,
    check_rows,
    fill_imputed,
    impute_sums,
)
from fednode.schema.infer import DEFAULT_MISSING_MARKERS, MAX_LEVELS, SchemaDraft, infer_schema
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
    canonical_json,
    schema_digest,
)
from fednode.schema.parse import load_schema, parse_schema, schema_from_json, schema_from_toml
from fednode.schema.reader import (
    DELIMITER_CANDIDATES,
    Cell,
    RawTable,
    ReadOptions,
    read_table,
    sniff_delimiter,
)
from fednode.schema.render import render_schema_toml

__all__ = [
    "Cell",
    "CheckReport",
    "Column",
    "ColumnKind",
    "DEFAULT_MISSING_MARKERS",
    "DELIMITER_CANDIDATES",
    "DataSchema",
    "Label",
    "LabelKind",
    "MAX_LEVELS",
    "MAX_PROBLEMS",
    "MissingPolicy",
    "Problem",
    "RawTable",
    "ReadOptions",
    "RecordingLayout",
    "RefusalReason",
    "SCHEMA_VERSION",
    "SchemaDraft",
    "SchemaKind",
    "TimeSeries",
    "canonical_json",
    "cell_text",
    "check_rows",
    "fill_imputed",
    "impute_sums",
    "infer_schema",
    "is_missing",
    "load_schema",
    "parse_number",
    "parse_schema",
    "read_table",
    "render_schema_toml",
    "schema_digest",
    "schema_from_json",
    "schema_from_toml",
    "sniff_delimiter",
]
