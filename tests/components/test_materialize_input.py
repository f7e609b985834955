"""materialize's out-of-core contract check (components/steps/materialize_input.py) finds what the
pandas one (components/data_contract.py) finds, in the same order and words, on each broken
input; and the batched copy normalizes timestamps as raw_data.read_raw does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data_contract import contract_violations
from components.raw_data import read_raw
from components.steps import materialize_input
from tests.conftest import MATERIALIZE_SETTINGS

SERVICE = ["txn_count_1h", "txn_count_24h", "amount_avg_7d", "seconds_since_last_txn"]


def _frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "user_id": np.arange(rows) % 20,
            "event_timestamp": pd.date_range("2026-01-01", periods=rows, freq="min", tz="UTC").astype(
                "datetime64[us, UTC]"
            ),
            "amount": rng.gamma(2.0, 30.0, rows),
            "merchant_category": rng.integers(0, 5, rows),
            "txn_count_1h": rng.integers(0, 4, rows),
            "txn_count_24h": rng.integers(0, 20, rows),
            "amount_avg_7d": rng.gamma(2.0, 30.0, rows),
            "seconds_since_last_txn": rng.gamma(2.0, 600.0, rows),
            "is_fraud": (np.arange(rows) % 7 == 0).astype("int64"),
        }
    )


def _everything_broken() -> pd.DataFrame:
    frame = _frame().drop(columns=["txn_count_24h"])
    frame["is_fraud"] = frame["is_fraud"].astype("float64")
    frame.loc[[0, 1, 150], "is_fraud"] = np.nan
    frame.loc[[5, 6, 7], "amount_avg_7d"] = np.nan
    twins = frame.iloc[[10, 11, 30]].copy()
    twins["is_fraud"] = 1.0 - twins["is_fraud"]  # same (user, time), the other label
    agreeing = frame.iloc[[12]]  # a duplicate that agrees on the label is accepted
    null_twin = frame.iloc[[40]].assign(is_fraud=np.nan)  # a null beside a label is a second label
    return pd.concat([frame, twins, agreeing, null_twin], ignore_index=True).sample(frac=1.0, random_state=1)


def _no_entity() -> pd.DataFrame:
    frame = _frame().drop(columns=["user_id", "merchant_category"])
    frame["is_fraud"] = frame["is_fraud"].astype("float64")
    frame.loc[[3, 9], "is_fraud"] = np.nan
    return frame


def _null_keys() -> pd.DataFrame:
    frame = _frame()
    frame["user_id"] = frame["user_id"].astype("float64")
    frame.loc[[4, 5], "user_id"] = np.nan
    frame.loc[[6], "event_timestamp"] = pd.NaT
    return frame


CASES = {
    "clean": (_frame, {}),
    "everything": (_everything_broken, {}),
    "late labels": (_everything_broken, {"label_delay": "1h"}),
    "no entity": (_no_entity, {"fill": {"nothing_like_it": 1.0}}),
    "null keys": (_null_keys, {}),
    "filled": (_everything_broken, {"fill": {"amount_avg_7d": 0.0}}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_violations_as_the_pandas_check(tmp_path: Path, case: str) -> None:
    make, update = CASES[case]
    settings = MATERIALIZE_SETTINGS.model_copy(update=update)
    frame = make()
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    expected = [str(v) for v in contract_violations(frame.reset_index(drop=True), settings, SERVICE)]
    got = [str(v) for v in materialize_input.contract_violations(tmp_path / "data.parquet", settings, SERVICE)]
    assert got == expected
    assert (case == "clean") == (not expected)  # each broken input breaks something


def test_the_comparison_sees_a_difference(tmp_path: Path) -> None:
    """Control: one more null label changes the SQL check's answer, and the comparison notices."""
    frame = _everything_broken()
    expected = [str(v) for v in contract_violations(frame.reset_index(drop=True), MATERIALIZE_SETTINGS, SERVICE)]
    frame.loc[frame.index[5], "is_fraud"] = np.nan
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    got = [
        str(v) for v in materialize_input.contract_violations(tmp_path / "data.parquet", MATERIALIZE_SETTINGS, SERVICE)
    ]
    assert got != expected


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_the_batched_copy_reads_as_read_raw_does(tmp_path: Path, unit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from components import raw_data

    monkeypatch.setattr(raw_data, "BATCH_ROWS", 37)  # several batches on a small file
    frame = _frame()
    frame["event_timestamp"] = (frame["event_timestamp"] + pd.Timedelta(nanoseconds=1_500)).astype(
        f"datetime64[{unit}, UTC]"
    )
    frame.loc[[2, 3], "txn_count_1h"] = None
    frame.to_parquet(tmp_path / "raw.parquet", index=False)
    copied = raw_data.normalized_copy(
        "materialize", str(tmp_path / "raw.parquet"), "raw", tmp_path / "copy.parquet",
        timestamp_column="event_timestamp", timezone=None,
    )  # fmt: skip
    assert copied is not None
    expected = read_raw(str(tmp_path / "raw.parquet"), timestamp_column="event_timestamp", timezone=None, step="x")
    got = pd.read_parquet(tmp_path / "copy.parquet")
    pd.testing.assert_frame_equal(got, expected)
    assert copied[1] == len(expected)
    assert copied[2] == {str(c): str(t) for c, t in expected.dtypes.items()}
