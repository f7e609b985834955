"""issue 31: `mlops check-data <pipeline> FILE` reports every violation of the pipeline's expectation
suite and data contract at once, before a run, with exit 0 (clean) or 2; a missing file is a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.cli import main
from pipelines.fraud.data import generate


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("check-data") / "good.parquet"
    generate(1000, 7).to_parquet(path, index=False)
    return path


def test_a_clean_file_passes(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """issue 31: the positive control: the fraud generator's own data breaks nothing."""
    assert main(["check-data", "fraud", str(good)]) == 0
    assert f"{good}: 0 violations of fraud's suite and contract" in capsys.readouterr().out


def test_every_violation_is_reported_at_once(good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """issue 31: null labels, a missing feature column, an unfilled null and conflicting duplicates,
    from the suite and the contract, in one run, exit 2."""
    frame = pd.read_parquet(good)
    frame["is_fraud"] = frame["is_fraud"].astype("float64")
    frame.loc[frame.index[:3], "is_fraud"] = np.nan
    frame.loc[frame.index[5:9], "amount_avg_7d"] = np.nan
    twin = frame.iloc[[20]].copy()
    twin["is_fraud"] = 1.0 - twin["is_fraud"]
    pd.concat([frame, twin]).drop(columns=["txn_count_24h"]).to_parquet(tmp_path / "bad.parquet", index=False)
    assert main(["check-data", "fraud", str(tmp_path / "bad.parquet")]) == 2
    out = capsys.readouterr().out
    assert "suite: expect_column_values_to_not_be_null on column 'is_fraud'" in out
    assert "contract: the label column 'is_fraud' is null in 3 rows" in out
    assert "contract: the feature 'txn_count_24h' of feature service 'fraud_model_v1' is not in the raw data" in out
    assert "contract: the feature 'amount_avg_7d' is null in 4 rows" in out
    assert "contract: 1 (user_id, event_timestamp) pairs appear more than once with different labels" in out


def test_a_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """issue 31: no traceback, the path and a fix, exit 2."""
    assert main(["check-data", "fraud", str(tmp_path / "nowhere.parquet")]) == 2
    err = capsys.readouterr().err
    assert f"raw data not found at {tmp_path / 'nowhere.parquet'}" in err and "fix:" in err


def test_timestamps_are_checked_as_materialize_reads_them(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 31: nanosecond timestamps and a partitioned folder pass (materialize accepts them);
    naive timestamps without materialize.timezone are reported with the other violations, not instead."""
    frame = pd.read_parquet(good)
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[ns, UTC]")
    frame["day"] = frame["event_timestamp"].dt.strftime("%Y-%m-%d")
    frame.to_parquet(tmp_path / "dataset", partition_cols=["day"], index=False)
    assert main(["check-data", "fraud", str(tmp_path / "dataset")]) == 0, capsys.readouterr().out
    capsys.readouterr()
    naive = pd.read_parquet(good)
    naive["event_timestamp"] = naive["event_timestamp"].dt.tz_localize(None)
    naive["is_fraud"] = naive["is_fraud"].astype("float64")
    naive.loc[naive.index[:2], "is_fraud"] = np.nan
    naive.to_parquet(tmp_path / "naive.parquet", index=False)
    assert main(["check-data", "fraud", str(tmp_path / "naive.parquet")]) == 2
    out = capsys.readouterr().out
    assert "contract: timestamp column 'event_timestamp' is naive" in out and "materialize.timezone" in out
    assert "contract: the label column 'is_fraud' is null in 2 rows" in out
