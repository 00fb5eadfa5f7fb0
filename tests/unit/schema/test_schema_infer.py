"""Schema: infer_schema drafts types, levels and ranges for a person to review."""

from __future__ import annotations

from pathlib import Path

import pytest

from fednode.errors import SchemaError
from fednode.schema import (
    ColumnKind,
    LabelKind,
    check_rows,
    infer_schema,
    read_table,
    render_schema_toml,
    schema_from_toml,
)


def _sample(tmp_path: Path) -> Path:
    rows = ["pid,age,sex,cp,platelets,note,y"]
    rows += [f'{i},{30 + i * 7 % 25},{"MF"[i % 2]},{"abc"[i % 3]},"2{i * 7 % 25:02d},000",'
             f'{"NA" if i == 5 else i},{i % 3}' for i in range(1, 26)]
    path = tmp_path / "sample.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_types_levels_and_ranges_are_drafted(tmp_path: Path) -> None:
    # Act
    draft = infer_schema(read_table(_sample(tmp_path)), label="y", name="trial")
    schema = draft.schema
    # Assert
    by_name = {column.name: column for column in schema.columns}
    assert schema.ignore == ("pid",)  # increasing whole numbers in every row: an id
    assert by_name["note"].kind is ColumnKind.NUMERIC  # NA is a missing marker, not text
    assert "1 of 25 rows missing" in dict(draft.notes)["note"]
    assert by_name["age"].kind is ColumnKind.NUMERIC
    assert (by_name["age"].minimum, by_name["age"].maximum) == (30.0, 54.0)
    assert by_name["sex"].kind is ColumnKind.BINARY and by_name["sex"].levels == ("F", "M")
    assert by_name["cp"].levels == ("a", "b", "c")
    assert by_name["platelets"].maximum == 224000.0
    assert "NA" in schema.missing
    assert schema.label.kind is LabelKind.MULTICLASS and schema.label.classes == ("0", "1", "2")
    assert "increasing whole numbers" in dict(draft.notes)["pid"]


def test_the_draft_renders_to_toml_that_reads_back_and_checks_its_sample(tmp_path: Path) -> None:
    # Arrange
    path = _sample(tmp_path)
    draft = infer_schema(read_table(path), label="y")
    # Act
    text = render_schema_toml(draft.schema, notes=dict(draft.notes))
    # Assert
    assert "# observed range 30 .. 54" in text
    assert schema_from_toml(text) == draft.schema
    report = check_rows(read_table(path), draft.schema)
    assert report.rows_accepted == 24  # the row with a missing note is dropped by default


def test_a_two_valued_label_is_drafted_binary() -> None:
    from fednode.schema import RawTable

    table = RawTable("f.csv", ("x", "y"), (("1", "2", "3"), ("no", "yes", "no")), (2, 3, 4))
    label = infer_schema(table, label="y").schema.label
    assert (label.kind, label.positive, label.negative) == (LabelKind.BINARY, ("yes",), ("no",))


def test_infer_refuses_a_missing_label_or_no_rows(tmp_path: Path) -> None:
    from fednode.schema import RawTable

    with pytest.raises(SchemaError, match="label: f.csv has no column 'z'"):
        infer_schema(RawTable("f.csv", ("y",), (("1",),), (2,)), label="z")
    with pytest.raises(SchemaError, match="no data row"):
        infer_schema(RawTable("f.csv", ("x", "y"), ((), ()), ()), label="y")
    with pytest.raises(SchemaError, match="fewer than two distinct values"):
        infer_schema(RawTable("f.csv", ("x", "y"), (("1", "2"), ("a", "a")), (2, 3)), label="y")
