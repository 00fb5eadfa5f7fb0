"""Schema: ``fednode schema infer | check``: output, JSON and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from schema_fixtures import SMALL_TOML

from fednode.cli.main import main
from fednode.schema import load_schema, schema_digest

HEADER = "id,age,smoker,cp,grade,y"


def _files(tmp_path: Path, rows: list[str]) -> tuple[Path, Path]:
    data = tmp_path / "site.csv"
    data.write_text("\n".join([HEADER, *rows]) + "\n")
    schema = tmp_path / "schema.toml"
    schema.write_text(SMALL_TOML)
    return data, schema


def test_check_prints_counts_per_reason_and_exits_zero_when_rows_fit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Arrange
    data, schema = _files(tmp_path, ["1,61,no,a,low,yes", "2,secret-value,no,a,low,no"])
    # Act
    code = main(["schema", "check", str(data), "--schema", str(schema), "--json"])
    # Assert
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (out["rows_read"], out["rows_accepted"]) == (2, 1)
    assert out["refused"] == {"text_in_numeric": 1}
    assert out["problems"][0] == {"reason": "text_in_numeric", "line": 3, "column": "age",
                                  "text": f"{data}:line 3: column 'age': text_in_numeric"}
    assert out["schema_digest"] == "0x" + schema_digest(load_schema(schema)).hex()
    assert "secret-value" not in json.dumps(out)


def test_check_exits_one_when_nothing_fits(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = _files(tmp_path, ["1,200,no,a,low,yes"])
    assert main(["schema", "check", str(data), "--schema", str(schema)]) == 1
    out = capsys.readouterr().out
    assert "0 of 1 rows accepted" in out and "out_of_range" in out


def test_check_exits_one_on_a_refused_file(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "site.csv"
    data.write_text("id,age\n1,2\n")
    schema = tmp_path / "schema.toml"
    schema.write_text(SMALL_TOML)
    assert main(["schema", "check", str(data), "--schema", str(schema), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert {p["reason"] for p in out["file_problems"]} == {"no_label", "missing_column"}


def test_check_exits_two_on_an_unreadable_file_or_schema(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = _files(tmp_path, ["1,61,no,a,low,yes"])
    assert main(["schema", "check", str(tmp_path / "none.csv"), "--schema", str(schema)]) == 2
    assert "none.csv: cannot read" in capsys.readouterr().err
    schema.write_text(SMALL_TOML.replace("max = 120", "max = -1"))
    assert main(["schema", "check", str(data), "--schema", str(schema)]) == 2
    assert "columns[0].min" in capsys.readouterr().err


def test_infer_writes_a_reviewable_schema_that_checks_its_sample(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Arrange
    data, _ = _files(tmp_path, ["1,61,no,a,low,yes", "2,47,yes,c,high,no", "3,35,no,b,mid,no"])
    out = tmp_path / "draft.toml"
    # Act
    code = main(["schema", "infer", str(data), "--label", "y", "--out", str(out)])
    # Assert
    assert code == 0 and "review it before use" in capsys.readouterr().err
    assert out.read_text().startswith("schema_version = 1\n")
    assert main(["schema", "check", str(data), "--schema", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_accepted"] == 3


def test_infer_to_stdout_with_a_configured_delimiter(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "site.tsv"
    data.write_text("a\tb\n1\tx\n2\ty\n3\tx\n")
    assert main(["schema", "infer", str(data), "--label", "b", "--delimiter", "\\t"]) == 0
    assert 'column = "b"' in capsys.readouterr().out
    assert main(["schema", "infer", str(data), "--label", "zz"]) == 2
