"""Schema: pyarrow reads real-world CSV shapes and Parquet; every row keeps its file line."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fednode.errors import DataError
from fednode.schema import ReadOptions, read_table, sniff_delimiter


def _write(tmp_path: Path, payload: bytes, name: str = "site.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(payload)
    return path


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    # Arrange
    rows = [["age", "cp", "y"], ["61", "a b", "1"], ["47", "c", "0"]]
    payload = "\n".join(delimiter.join(row) for row in rows).encode()
    # Act
    table = read_table(_write(tmp_path, payload))
    # Assert
    assert table.header == ("age", "cp", "y")
    assert table.columns == (("61", "47"), ("a b", "c"), ("1", "0"))
    assert sniff_delimiter(payload) == delimiter


def test_a_configured_delimiter_wins_over_sniffing(tmp_path: Path) -> None:
    path = _write(tmp_path, b"a;b,c\n1;2,3\n")
    assert read_table(path).header == ("a;b", "c")  # a tie: ',' comes first in the candidates
    assert read_table(path, ReadOptions(delimiter=";")).header == ("a", "b,c")


def test_quoted_numbers_with_thousands_separators_stay_one_field(tmp_path: Path) -> None:
    path = _write(tmp_path, b'platelets,y\n"265,000",1\n"1,234.5",0\n')
    table = read_table(path)
    assert table.columns == (("265,000", "1,234.5"), ("1", "0"))


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_line_endings_and_line_numbers(tmp_path: Path, newline: bytes) -> None:
    # Arrange: a blank line between rows must not shift the line numbers
    payload = newline.join([b"a,b", b"1,2", b"", b"3,4", b"5,6"]) + newline
    # Act
    table = read_table(_write(tmp_path, payload))
    # Assert
    assert table.header == ("a", "b")
    assert table.columns == (("1", "3", "5"), ("2", "4", "6"))
    assert table.row_places == (2, 4, 5)


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    table = read_table(_write(tmp_path, b"\xef\xbb\xbfage;y\r\n61;1\r\n"))
    assert table.header == ("age", "y")


def test_na_markers_stay_text_for_the_schema_to_judge(tmp_path: Path) -> None:
    table = read_table(_write(tmp_path, b'a,b\nNA,\n"",?\nnull,N/A\n'))
    assert table.columns == (("NA", "", "null"), ("", "?", "N/A"))


def test_rows_with_the_wrong_field_count_are_set_aside_with_their_line(tmp_path: Path) -> None:
    table = read_table(_write(tmp_path, b"a,b\n1,2\n3,4,5\n\n6\n7,8\n"))
    assert table.row_places == (2, 6)
    assert table.malformed_places == (3, 5)
    assert table.num_rows == 4


def test_parquet_keeps_stored_values_and_nulls(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "site.parquet"
    pq.write_table(pa.table({"age": [61.0, None], "smoker": [True, False], "y": ["yes", "no"]}),
                   path)
    # Act
    table = read_table(path)
    # Assert
    assert table.header == ("age", "smoker", "y")
    assert table.columns == ((61.0, None), (True, False), ("yes", "no"))
    assert table.row_places == (1, 2) and table.place_word == "row"


def test_parquet_is_recognized_by_its_magic_bytes(tmp_path: Path) -> None:
    path = tmp_path / "export.dat"
    pq.write_table(pa.table({"a": [1]}), path)
    assert read_table(path).columns == ((1,),)


def test_an_empty_file_has_no_header(tmp_path: Path) -> None:
    for payload in (b"", b"\r\n\n", b"\xef\xbb\xbf"):
        table = read_table(_write(tmp_path, payload))
        assert table.header == () and table.num_rows == 0


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: cannot read"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"latin\.csv: line 3: not UTF-8 text"):
        read_table(_write(tmp_path, b"name,y\r\nAna,0\r\nJos\xe9,1\n", "latin.csv"))
    with pytest.raises(DataError, match=r"broken\.parquet: not a readable Parquet"):
        read_table(_write(tmp_path, b"PAR1 this is no parquet", "broken.parquet"))


def test_a_last_line_without_a_line_break_is_read(tmp_path: Path) -> None:
    assert read_table(_write(tmp_path, b"a,b")).header == ("a", "b")
    table = read_table(_write(tmp_path, b"\xef\xbb\xbfa,b\r\n1,2"))
    assert table.columns == (("1",), ("2",)) and table.row_places == (2,)


def test_a_line_break_inside_a_quoted_value_is_refused_not_misnumbered(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"site\.csv: records do not match lines"):
        read_table(_write(tmp_path, b'a,b\n"x\ny",1\n2,3\n'))
