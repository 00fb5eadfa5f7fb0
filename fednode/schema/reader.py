"""Schema (the shell): reads a site's CSV or Parquet file into a ``RawTable`` with pyarrow.

Nothing is converted here: every CSV cell stays the exact text of the file (quotes removed,
no null markers, no type guessing), so ``check_rows`` decides what each cell means from the
schema and refuses what does not fit. Parquet cells keep their stored Python value.

The CSV reader is Arrow's (``pyarrow.csv``): it skips a UTF-8 byte-order mark, accepts LF,
CRLF and lone CR line endings and handles quoting; rows with the wrong number of fields are
set aside through its ``invalid_row_handler`` (counted, never echoed). The delimiter is
configured or sniffed: Arrow parses a sample with each candidate and the one giving the most
columns with no malformed row wins. Each row keeps its physical line number in the file
(newlines inside quoted values are refused, so a record is one line), which is how errors
name the file, line and column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.csv as pa_csv  # type: ignore[import-untyped]
import pyarrow.parquet as pa_parquet  # type: ignore[import-untyped]

from fednode.errors import DataError

__all__ = [
    "DELIMITER_CANDIDATES",
    "Cell",
    "RawTable",
    "ReadOptions",
    "read_table",
    "sniff_delimiter",
]

Cell = str | int | float | bool | None
"""One cell: the text of a CSV field, or the stored value of a Parquet cell (``None``: null)."""

DELIMITER_CANDIDATES = (",", ";", "\t", "|")
"""Delimiters tried, in order of preference on a tie, when none is configured."""

_SNIFF_BYTES = 64 * 1024
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_PARQUET_MAGIC = b"PAR1"
_ECHOED_ROW = re.compile(r": [^:]*$")


@dataclass(frozen=True)
class ReadOptions:
    """How a site's files are written (a site setting, not part of the schema).

    Attributes:
      delimiter: the CSV field delimiter, or ``None`` to sniff it.
      thousands: the thousands separator numbers may carry (``""``: none allowed).
      decimal: the decimal mark of numbers.
    """

    delimiter: str | None = None
    thousands: str = ","
    decimal: str = "."


@dataclass(frozen=True)
class RawTable:
    """A file's header and cells, untouched, with where each row came from.

    Attributes:
      source: the file's path as given, for messages.
      header: column names in the file's order (empty for an empty file).
      columns: one tuple of cells per header column.
      row_places: for each row, its 1-based line in the file (CSV) or row number (Parquet).
      malformed_places: places of rows with the wrong number of fields (set aside).
      place_word: ``"line"`` (CSV) or ``"row"`` (Parquet): what ``row_places`` count.
    """

    source: str
    header: tuple[str, ...]
    columns: tuple[tuple[Cell, ...], ...]
    row_places: tuple[int, ...]
    malformed_places: tuple[int, ...] = ()
    place_word: str = "line"

    @property
    def num_rows(self) -> int:
        """Rows read, malformed ones included."""
        return len(self.row_places) + len(self.malformed_places)


def read_table(path: Path, options: ReadOptions | None = None) -> RawTable:
    """Reads a CSV (any other name) or Parquet (``.parquet``/``.pq`` or ``PAR1`` magic) file.

    Raises:
      DataError: the file cannot be opened, is not UTF-8, or Arrow cannot parse it; the message
        names the file.
    """
    options = options or ReadOptions()
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror})") from exc
    if path.suffix in {".parquet", ".pq"} or payload[:4] == _PARQUET_MAGIC:
        return _read_parquet(path)
    return _read_csv(str(path), payload, options)


def sniff_delimiter(payload: bytes) -> str:
    """The candidate giving several columns with the fewest malformed rows, then the most columns.

    Example:
      >>> sniff_delimiter(b'a;b;c\\n1;"2,5";3\\n')
      ';'
    """
    sample = _whole_lines(payload[:_SNIFF_BYTES], complete=len(payload) <= _SNIFF_BYTES)
    best, best_score = DELIMITER_CANDIDATES[0], (False, -len(sample), 0)
    for delimiter in DELIMITER_CANDIDATES:
        try:
            header, _, malformed = _parse_csv(sample, delimiter)
        except pa.ArrowInvalid:
            continue
        score = (len(header) > 1, -len(malformed), len(header))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _whole_lines(sample: bytes, *, complete: bool) -> bytes:
    """Cuts a sample after its last line break (unless it is the whole file)."""
    if complete:
        return sample
    last = max(sample.rfind(b"\n"), sample.rfind(b"\r"))
    return sample[: last + 1] if last >= 0 else sample


def _parse_csv(payload: bytes, delimiter: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Arrow parses ``payload``: header, columns of text, and record numbers of malformed rows.

    Record numbers count non-empty lines from 1 (the header), as Arrow reports them.
    """
    malformed: list[int] = []

    def set_aside(row: pa_csv.InvalidRow) -> str:
        malformed.append(int(row.number) if row.number is not None else -1)
        return "skip"

    width = _header_width(payload, delimiter)
    table = pa_csv.read_csv(
        pa.BufferReader(payload),
        read_options=pa_csv.ReadOptions(autogenerate_column_names=True, use_threads=False),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter, newlines_in_values=False, invalid_row_handler=set_aside),
        convert_options=pa_csv.ConvertOptions(
            column_types={f"f{i}": pa.string() for i in range(width)},
            null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    columns: list[list[str]] = [table.column(i).to_pylist() for i in range(table.num_columns)]
    if not columns or not columns[0]:
        return [], [], malformed
    header = [column[0] for column in columns]
    return header, [column[1:] for column in columns], malformed


def _header_width(payload: bytes, delimiter: str) -> int:
    """How many fields the first record has (Arrow parses the first line alone)."""
    first = _LINE_BREAK.split(payload.lstrip(b"\r\n"), maxsplit=1)[0]
    probe = pa_csv.read_csv(
        pa.BufferReader(first + b"\n"),
        read_options=pa_csv.ReadOptions(autogenerate_column_names=True),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter),
    )
    return int(probe.num_columns)


def _read_csv(source: str, payload: bytes, options: ReadOptions) -> RawTable:
    if not payload.strip(b"\xef\xbb\xbf \t\r\n"):
        return RawTable(source, (), (), ())
    _refuse_non_utf8(source, payload)
    if not payload.endswith((b"\n", b"\r")):
        payload += b"\n"  # Arrow cannot read a one-line file without a line break
    delimiter = options.delimiter or sniff_delimiter(payload)
    try:
        header, columns, malformed = _parse_csv(payload, delimiter)
    except pa.ArrowInvalid as exc:
        raise DataError(f"{source}: not a readable CSV file ({_arrow_reason(exc)})") from exc
    lines = _record_lines(payload)
    if len(lines) != 1 + len(columns[0] if columns else []) + len(malformed):
        raise DataError(f"{source}: records do not match lines: a quoted value holds a line "
                        "break (not accepted: remove line breaks inside values)")
    malformed_lines = {lines[number - 1] for number in malformed if number >= 1}
    row_lines = tuple(line for line in lines[1:] if line not in malformed_lines)
    return RawTable(
        source=source,
        header=tuple(header),
        columns=tuple(tuple(column) for column in columns),
        row_places=row_lines,
        malformed_places=tuple(sorted(malformed_lines)),
    )


def _refuse_non_utf8(source: str, payload: bytes) -> None:
    """Names the line of the first byte that is not UTF-8 (a Latin-1 export, say)."""
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len(_LINE_BREAK.findall(payload[: exc.start])) + 1
        raise DataError(f"{source}: line {line}: not UTF-8 text; save the file as UTF-8") from exc


def _record_lines(payload: bytes) -> list[int]:
    """1-based physical line numbers of the non-empty lines (Arrow's records, header first)."""
    pieces = _LINE_BREAK.split(payload)
    return [number for number, piece in enumerate(pieces, start=1) if piece]


def _arrow_reason(exc: Exception) -> str:
    """Arrow's reason, cut before any echoed row text (never a row's content in our messages)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _ECHOED_ROW.sub("", message)[:200]


def _read_parquet(path: Path) -> RawTable:
    try:
        table = pa_parquet.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({_arrow_reason(exc)})") from exc
    columns = tuple(tuple(_parquet_cell(path, name, value)
                          for value in table.column(name).to_pylist())
                    for name in table.column_names)
    return RawTable(
        source=str(path),
        header=tuple(table.column_names),
        columns=columns,
        row_places=tuple(range(1, table.num_rows + 1)),
        place_word="row",
    )


def _parquet_cell(path: Path, name: str, value: object) -> Cell:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Sequence | dict):
        raise DataError(f"{path}: column {name!r} holds nested values, not a flat table")
    return str(value)
