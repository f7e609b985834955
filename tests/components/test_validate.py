from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from components.errors import ComponentError
from components.steps.validate import validate
from tests.conftest import SUITE


def _write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_parquet(path, index=False)
    return str(path)


def test_valid_data_passes_and_writes_the_report(raw_dataset: Path, tmp_path: Path) -> None:
    summary = validate(str(raw_dataset), str(SUITE), str(tmp_path / "report.json"))
    report = json.loads((tmp_path / "report.json").read_text())
    assert summary["success"] and report["success"]
    assert report["rows"] == 8000 and report["evaluated_expectations"] == len(
        json.loads(SUITE.read_text())["expectations"]
    )


def test_missing_column_is_named(raw_dataset: Path, tmp_path: Path) -> None:
    data = _write(pd.read_parquet(raw_dataset).drop(columns=["amount"]), tmp_path / "d.parquet")
    with pytest.raises(ComponentError) as caught:
        validate(data, str(SUITE), str(tmp_path / "report.json"))
    assert "column 'amount' is missing" in str(caught.value)
    report = json.loads((tmp_path / "report.json").read_text())
    assert not report["success"]


def test_wrong_dtype_is_named_with_the_observed_type(raw_dataset: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(raw_dataset)
    frame["amount"] = frame["amount"].astype(str)
    with pytest.raises(ComponentError) as caught:
        validate(_write(frame, tmp_path / "d.parquet"), str(SUITE), str(tmp_path / "report.json"))
    assert "on column 'amount'" in str(caught.value) and "in_type_list" in str(caught.value)


def test_nulls_in_the_label_are_counted(raw_dataset: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(raw_dataset)
    frame["is_fraud"] = frame["is_fraud"].astype("float64")
    frame.loc[frame.index[:7], "is_fraud"] = None
    with pytest.raises(ComponentError) as caught:
        validate(_write(frame, tmp_path / "d.parquet"), str(SUITE), str(tmp_path / "report.json"))
    assert "expect_column_values_to_not_be_null on column 'is_fraud' — 7 rows" in str(caught.value)


def test_empty_file_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.parquet").write_bytes(b"")
    with pytest.raises(ComponentError, match="empty file"):
        validate(str(tmp_path / "empty.parquet"), str(SUITE), str(tmp_path / "report.json"))
    assert not (tmp_path / "report.json").exists()


def test_a_file_that_is_not_parquet_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "data.parquet").write_text("user_id,amount\n1,2.0\n")
    with pytest.raises(ComponentError, match="not a readable Parquet file") as caught:
        validate(str(tmp_path / "data.parquet"), str(SUITE), str(tmp_path / "report.json"))
    assert "to_parquet" in caught.value.fix
    assert not (tmp_path / "report.json").exists()


def test_zero_rows_and_missing_file_are_refused(raw_dataset: Path, tmp_path: Path) -> None:
    empty = _write(pd.read_parquet(raw_dataset).iloc[:0], tmp_path / "none.parquet")
    with pytest.raises(ComponentError, match="has no rows"):
        validate(empty, str(SUITE), str(tmp_path / "report.json"))
    with pytest.raises(ComponentError, match="not found"):
        validate(str(tmp_path / "absent.parquet"), str(SUITE), str(tmp_path / "report.json"))


def test_a_broken_suite_is_reported_as_such(raw_dataset: Path, tmp_path: Path) -> None:
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "s", "expectations": [{"type": "expect_no_such_thing", "kwargs": {}}]}))
    with pytest.raises(ComponentError, match=r"not a valid GX 1\.x suite"):
        validate(str(raw_dataset), str(suite), str(tmp_path / "report.json"))
