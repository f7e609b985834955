"""validate in bounded batches (components/steps/validate_batches.py) gives the whole-frame GX run's
verdict on every expectation, with its counts (the mean within 1e-9 relative: the sums are added
in another order), on good data and on data that fails each expectation of the suites; batches of
150 rows so every check spans batches (a duplicate across two batches, nulls in one batch only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.steps import validate_batches
from components.steps.validate import _run_batched, run_suite, validate

FRAUD_SUITE = Path(__file__).resolve().parents[2] / "pipelines" / "fraud" / "expectations.json"
EXTRA = [
    {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["user_id", "event_timestamp"]}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0, "strict_min": True}},
    {
        "type": "expect_column_mean_to_be_between",
        "kwargs": {"column": "is_fraud", "max_value": 0.5, "strict_max": True},
    },
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10, "max_value": 1000}},
]


def _suite() -> dict[str, Any]:
    suite = json.loads(FRAUD_SUITE.read_text())
    suite["expectations"] += EXTRA
    return suite


def _good(rows: int = 600) -> pd.DataFrame:
    from pipelines.fraud.data import generate

    return generate(rows, 4)


def _broken(kind: str) -> pd.DataFrame:
    frame = _good()
    if kind == "duplicate across batches":
        frame.loc[500, "transaction_id"] = frame.loc[2, "transaction_id"]
        frame.loc[501, ["user_id", "event_timestamp"]] = frame.loc[3, ["user_id", "event_timestamp"]]
    elif kind == "nulls in one batch":
        frame["merchant_category"] = frame["merchant_category"].astype("float64")
        frame.loc[[20, 21], "merchant_category"] = np.nan  # float64 in every batch, as in the whole frame
        frame.loc[[22], "amount"] = np.nan
    elif kind == "out of range":
        frame.loc[[5, 40], "amount"] = -3.0
        frame.loc[[12], "amount"] = 0.0  # strict_min
        frame.loc[[30], "txn_count_1h"] = -1
    elif kind == "mean and set":
        frame["is_fraud"] = 1
        frame.loc[[8], "merchant_category"] = 999
    elif kind == "missing column and too few rows":
        frame = frame.drop(columns=["amount_avg_7d"]).iloc[:9]
    return frame


KINDS = ["good", "duplicate across batches", "nulls in one batch", "out of range", "mean and set",
         "missing column and too few rows"]  # fmt: skip


def _by_key(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {validate_batches._key(result): result for result in results}


@pytest.mark.parametrize("kind", KINDS)
def test_the_batches_give_the_whole_frames_verdicts(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_batches, "BATCH_ROWS", 150)
    frame = _good() if kind == "good" else _broken(kind)
    frame.to_parquet(tmp_path / "raw.parquet", index=False)
    suite = _suite()
    whole, whole_failures = run_suite(pd.read_parquet(tmp_path / "raw.parquet"), suite, "suite.json")
    batched = _run_batched(str(tmp_path / "raw.parquet"), suite, "suite.json")
    assert batched is not None
    results, failures, rows, record = batched
    assert rows == len(frame)
    assert (kind == "good") == (not whole_failures)  # each broken input fails something
    expected, got = _by_key(whole), _by_key(results)
    assert set(got) == set(expected)
    for key, one in expected.items():
        combined = got[key]
        assert combined["success"] == one["success"], key
        mine, theirs = combined.get("result") or {}, one.get("result") or {}
        for field in ("element_count", "unexpected_count", "missing_count"):
            assert mine.get(field) == theirs.get(field), (key, field)
        if "unexpected_percent" in theirs:
            assert mine["unexpected_percent"] == pytest.approx(theirs["unexpected_percent"]), key
        if isinstance(theirs.get("observed_value"), float):
            assert mine["observed_value"] == pytest.approx(theirs["observed_value"], rel=1e-9), key
        else:
            assert mine.get("observed_value") == theirs.get("observed_value"), key
    assert [f["expectation"] for f in failures] == [f["expectation"] for f in whole_failures]
    assert record["schema"] == {str(c): str(t) for c, t in pd.read_parquet(tmp_path / "raw.parquet").dtypes.items()}


def test_the_comparison_sees_batches_combined_wrongly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: counting duplicates per batch only (GX's answer on each batch) misses the one across
    batches, which the whole-table check finds."""
    monkeypatch.setattr(validate_batches, "BATCH_ROWS", 150)
    _broken("duplicate across batches").to_parquet(tmp_path / "raw.parquet", index=False)
    monkeypatch.setattr(validate_batches, "WHOLE_TABLE", {"expect_table_row_count_to_be_between"})
    batched = _run_batched(str(tmp_path / "raw.parquet"), _suite(), "suite.json")
    assert batched is not None
    assert "expect_column_values_to_be_unique" not in [f["expectation"] for f in batched[1]]


def test_validate_reports_the_batched_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_batches, "BATCH_ROWS", 150)
    _good().to_parquet(tmp_path / "raw.parquet", index=False)
    (tmp_path / "suite.json").write_text(json.dumps(_suite()))
    summary = validate(str(tmp_path / "raw.parquet"), str(tmp_path / "suite.json"), str(tmp_path / "report.json"))
    assert summary["success"] and summary["rows"] == 600
    assert summary["evaluated_expectations"] == len(_suite()["expectations"])


def test_a_duplicate_across_batches_is_named_by_its_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The uniqueness failures' sample values come from the whole data: the key duplicated across
    two batches, which no single batch holds twice."""
    monkeypatch.setattr(validate_batches, "BATCH_ROWS", 150)
    frame = _broken("duplicate across batches")
    frame.to_parquet(tmp_path / "raw.parquet", index=False)
    batched = _run_batched(str(tmp_path / "raw.parquet"), _suite(), "suite.json")
    assert batched is not None
    by_type = {f["expectation"]: f for f in batched[1]}
    assert set(by_type["expect_column_values_to_be_unique"]["sample_values"]) == {frame.loc[2, "transaction_id"]}
    (pair,) = {tuple(sorted(v.items())) for v in by_type["expect_compound_columns_to_be_unique"]["sample_values"]}
    assert dict(pair)["user_id"] == frame.loc[3, "user_id"]
