"""Schema: check_rows accepts or refuses each row for a named reason, never coercing silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from schema_fixtures import SMALL_TOML

from fednode.errors import SchemaError
from fednode.schema import (
    CheckReport,
    ReadOptions,
    RefusalReason,
    check_rows,
    fill_imputed,
    impute_sums,
    read_table,
    schema_from_toml,
)

SCHEMA = schema_from_toml(SMALL_TOML)
HEADER = "id,age,smoker,cp,grade,y"
GOOD_ROWS = ["1,61,no,a,low,yes", "2,47,yes,c,high,no", "3,35.5,no,b,mid,no"]


def _check(tmp_path: Path, lines: list[str], *, name: str = "site.csv",
           options: ReadOptions | None = None) -> CheckReport:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return check_rows(read_table(path, options), SCHEMA, options)


def test_good_rows_are_encoded_in_schema_order(tmp_path: Path) -> None:
    # Act
    report = _check(tmp_path, [HEADER, *GOOD_ROWS])
    # Assert: age, smoker, cp one-hot, cp__missing, grade rank
    assert report.rows_accepted == 3 and report.refused == () and report.fits
    np.testing.assert_array_equal(report.features, np.array([
        [61.0, 0, 1, 0, 0, 0, 0],
        [47.0, 1, 0, 0, 1, 0, 2],
        [35.5, 0, 0, 1, 0, 0, 1],
    ], np.float32))
    assert report.features.dtype == np.float32 and not report.features.flags.writeable
    np.testing.assert_array_equal(report.labels, [1, 0, 0])


def test_a_site_with_another_column_order_gets_the_same_matrix(tmp_path: Path) -> None:
    # Arrange: same rows, columns shuffled
    order = [5, 3, 0, 4, 2, 1]

    def shuffle(line: str) -> str:
        cells = line.split(",")
        return ",".join(cells[i] for i in order)

    # Act
    base = _check(tmp_path, [HEADER, *GOOD_ROWS], name="a.csv")
    shuffled = _check(tmp_path, [shuffle(line) for line in [HEADER, *GOOD_ROWS]], name="b.csv")
    # Assert
    assert shuffle(HEADER) != HEADER
    np.testing.assert_array_equal(shuffled.features, base.features)
    np.testing.assert_array_equal(shuffled.labels, base.labels)
    assert shuffled.feature_names == base.feature_names


@pytest.mark.parametrize(("row", "reason", "column"), [
    ("4,sixty,no,a,low,yes", RefusalReason.TEXT_IN_NUMERIC, "age"),
    ("4,61 years,no,a,low,yes", RefusalReason.TEXT_IN_NUMERIC, "age"),
    ("4,nan,no,a,low,yes", RefusalReason.TEXT_IN_NUMERIC, "age"),
    ("4,121,no,a,low,yes", RefusalReason.OUT_OF_RANGE, "age"),
    ("4,-1,no,a,low,yes", RefusalReason.OUT_OF_RANGE, "age"),
    ("4,61,maybe,a,low,yes", RefusalReason.UNKNOWN_LEVEL, "smoker"),
    ("4,61,no,d,low,yes", RefusalReason.UNKNOWN_LEVEL, "cp"),
    ("4,61,no,a,LOW,yes", RefusalReason.UNKNOWN_LEVEL, "grade"),
    ("4,NA,no,a,low,yes", RefusalReason.MISSING_VALUE, "age"),
    ("4,61,,a,low,yes", RefusalReason.MISSING_VALUE, "smoker"),
    ("4,61,no,a,low,", RefusalReason.MISSING_LABEL, "y"),
    ("4,61,no,a,low,perhaps", RefusalReason.UNKNOWN_LABEL, "y"),
])
def test_each_bad_value_is_refused_with_file_line_and_column(
        tmp_path: Path, row: str, reason: RefusalReason, column: str) -> None:
    # Act: the bad row is the 4th data row, line 5 of the file
    report = _check(tmp_path, [HEADER, *GOOD_ROWS, row])
    # Assert
    assert report.rows_accepted == 3
    assert report.refused == ((reason, 1),)
    (problem,) = report.problems
    # the whole message: file, line, column and reason, and nothing of the row's content
    assert str(problem) == f"{tmp_path / 'site.csv'}:line 5: column {column!r}: {reason.value}"


def test_a_row_with_the_wrong_field_count_is_refused_with_its_line(tmp_path: Path) -> None:
    report = _check(tmp_path, [HEADER, GOOD_ROWS[0], "4,61,no,a,low,yes,extra", GOOD_ROWS[1]])
    assert report.rows_accepted == 2
    assert report.refused == ((RefusalReason.MALFORMED_ROW, 1),)
    assert str(report.problems[0]).endswith("site.csv:line 3: malformed_row")


@pytest.mark.parametrize(("header", "reason", "column"), [
    ("id,age,smoker,cp,grade", RefusalReason.NO_LABEL, "y"),
    ("id,smoker,cp,grade,y", RefusalReason.MISSING_COLUMN, "age"),
    ("id,age,smoker,cp,grade,y,site", RefusalReason.EXTRA_COLUMN, "site"),
    ("id,age,smoker,cp,grade,y,age", RefusalReason.DUPLICATE_COLUMN, "age"),
])
def test_a_file_whose_columns_do_not_match_is_refused_whole(
        tmp_path: Path, header: str, reason: RefusalReason, column: str) -> None:
    # Arrange: rows as wide as the header
    width = header.count(",") + 1
    rows = [",".join((row.split(",") + ["1"])[:width]) for row in GOOD_ROWS]
    # Act
    report = _check(tmp_path, [header, *rows])
    # Assert
    assert not report.fits and report.rows_accepted == 0 and report.rows_read == 3
    assert [(p.reason, p.column) for p in report.file_problems] == [(reason, column)]
    assert str(report.file_problems[0]) == f"{tmp_path / 'site.csv'}:line 1: column " \
        f"{column!r}: {reason.value}"
    assert report.features.shape == (0, len(SCHEMA.feature_names()))


@pytest.mark.parametrize("lines", [[], [HEADER]], ids=["no bytes", "header only"])
def test_an_empty_file_is_refused(tmp_path: Path, lines: list[str]) -> None:
    report = _check(tmp_path, lines)
    assert not report.fits
    assert [p.reason for p in report.file_problems] == [RefusalReason.EMPTY_FILE]
    assert str(report.file_problems[0]).endswith("site.csv:line 1: empty_file")


def test_refused_rows_are_counted_once_under_their_first_reason(tmp_path: Path) -> None:
    rows = ["4,sixty,maybe,d,LOW,perhaps", "5,200,no,a,low,yes", "6,1,no,a,low,yes"]
    report = _check(tmp_path, [HEADER, *rows])
    assert dict(report.refused) == {RefusalReason.UNKNOWN_LABEL: 1,
                                    RefusalReason.OUT_OF_RANGE: 1}
    assert report.rows_accepted == 1 and report.rows_read == 3


def test_missing_values_follow_each_columns_policy_and_nan_never_passes(tmp_path: Path) -> None:
    # Arrange: cp missing (indicator), grade missing with its own marker (impute_mean)
    rows = ["1,61,no,NA,low,yes", "2,47,yes,c,?,no", "3,30,no,a,high,no"]
    # Act
    report = _check(tmp_path, [HEADER, *rows])
    # Assert
    assert report.rows_accepted == 3
    assert np.isfinite(report.features).all()
    np.testing.assert_array_equal(report.features[0, 2:6], [0, 0, 0, 1])  # cp=?, indicator
    np.testing.assert_array_equal(report.impute_mask[0], [0, 0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(report.impute_mask[1], [0, 0, 0, 0, 0, 0, 1])
    counts, sums = impute_sums(report)
    np.testing.assert_array_equal(counts, [3, 3, 2, 2, 2, 3, 2])
    assert sums[6] == 2.0  # grade ranks 0 + 2
    filled = fill_imputed(report, sums / counts)
    assert filled[1, 6] == 1.0 and filled[0, 2] == 0.5 and filled[0, 5] == 1.0


def test_fill_imputed_refuses_a_non_finite_mean(tmp_path: Path) -> None:
    report = _check(tmp_path, [HEADER, "2,47,yes,c,?,no"])
    means = np.zeros(7, np.float32)
    means[6] = np.nan
    with pytest.raises(SchemaError, match="no finite mean"):
        fill_imputed(report, means)
    with pytest.raises(SchemaError, match="expected shape"):
        fill_imputed(report, np.zeros(3, np.float32))


def test_thousands_separators_and_decimal_commas_per_site(tmp_path: Path) -> None:
    # Arrange: a European export, ';' delimited, '.' thousands and ',' decimals
    lines = ["id;age;smoker;cp;grade;y", '1;"61,5";no;a;low;yes', "2;1.000;no;a;low;yes"]
    options = ReadOptions(thousands=".", decimal=",")
    # Act
    report = _check(tmp_path, lines, options=options)
    # Assert: 61,5 is 61.5; 1.000 is a thousand, out of range
    assert report.features[0, 0] == 61.5
    assert report.refused == ((RefusalReason.OUT_OF_RANGE, 1),)


def test_a_number_grouped_wrongly_is_text(tmp_path: Path) -> None:
    report = _check(tmp_path, [HEADER, '1,"6,1",no,a,low,yes'])
    assert report.refused == ((RefusalReason.TEXT_IN_NUMERIC, 1),)


def test_parquet_rows_are_checked_with_row_numbers(tmp_path: Path) -> None:
    # Arrange: a float NaN in Parquet is not a missing marker: it is refused
    path = tmp_path / "site.parquet"
    pq.write_table(pa.table({
        "y": ["yes", "no", "no"], "grade": ["low", "mid", None], "cp": ["a", "b", "c"],
        "smoker": ["no", "yes", "no"], "age": [61.0, float("nan"), 30.0]}), path)
    # Act
    report = check_rows(read_table(path), SCHEMA)
    # Assert
    assert report.rows_accepted == 2
    assert [str(p) for p in report.problems] == [f"{path}:row 2: column 'age': not_finite"]
    assert report.impute_mask[1, 6]


def test_a_timeseries_schema_is_not_checked_as_a_table() -> None:
    from test_schema_parse_errors import TIMESERIES_TOML

    from fednode.schema import RawTable
    with pytest.raises(SchemaError, match="kind: check_rows takes a tabular schema"):
        check_rows(RawTable("f", ("a",), (("1",),), (2,)), schema_from_toml(TIMESERIES_TOML))
