"""issue 31: the raw data's contract (components/data_contract.py) finds every violation at once,
and filling a missing feature is opt-in per feature (materialize.fill), never a silent 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data_contract import contract_violations, fill_missing
from components.errors import ComponentError
from components.steps.materialize import materialize
from tests.conftest import FEATURE_REPO, MATERIALIZE_SETTINGS

SERVICE = ["txn_count_1h", "txn_count_24h", "amount_avg_7d", "seconds_since_last_txn"]


def _frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "user_id": np.arange(rows) % 20,
            "event_timestamp": pd.date_range("2026-01-01", periods=rows, freq="min", tz="UTC"),
            "amount": rng.gamma(2.0, 30.0, rows),
            "merchant_category": rng.integers(0, 5, rows),
            "txn_count_1h": rng.integers(0, 4, rows),
            "txn_count_24h": rng.integers(0, 20, rows),
            "amount_avg_7d": rng.gamma(2.0, 30.0, rows),
            "seconds_since_last_txn": rng.gamma(2.0, 600.0, rows),
            "is_fraud": np.arange(rows) % 7 == 0,
        }
    )


def test_clean_data_has_no_violations() -> None:
    """issue 31: a positive control for the checks below."""
    assert contract_violations(_frame(), MATERIALIZE_SETTINGS, SERVICE) == []


def test_every_violation_is_found_at_once() -> None:
    """issue 31: null labels, conflicting duplicates, a missing feature and an unfilled null are
    all reported in one pass, not the first one only."""
    frame = _frame().drop(columns=["txn_count_24h"])
    frame["is_fraud"] = frame["is_fraud"].astype("float64")
    frame.loc[[0, 1], "is_fraud"] = np.nan
    frame.loc[[5, 6, 7], "amount_avg_7d"] = np.nan
    twins = frame.iloc[[10, 11]].copy()
    twins["is_fraud"] = 1.0 - twins["is_fraud"]  # same (user, time), the other label
    agreeing = frame.iloc[[12]]  # a duplicate that agrees on the label is accepted
    frame = pd.concat([frame, twins, agreeing], ignore_index=True)
    found = {v.rule: str(v) for v in contract_violations(frame, MATERIALIZE_SETTINGS, SERVICE)}
    assert set(found) == {"null-label", "conflicting-duplicates", "missing-feature", "unfilled-nulls"}
    assert "the label column 'is_fraud' is null in 2 rows" in found["null-label"]
    assert found["conflicting-duplicates"].startswith(
        "2 (user_id, event_timestamp) pairs appear more than once with different labels, e.g. user_id=10 at"
    )
    assert "'txn_count_24h' of feature service 'fraud_model_v1' is not in the raw data" in found["missing-feature"]
    assert "the feature 'amount_avg_7d' is null in 3 rows" in found["unfilled-nulls"]
    assert "materialize.fill: {amount_avg_7d: <value>}" in found["unfilled-nulls"]


def test_a_row_without_its_entity_or_timestamp_is_named() -> None:
    """issue 31 (the newcomer's read): null entity ids and null event times passed the contract
    (check-data called such a file clean) and reached the point-in-time join."""
    frame = _frame()
    frame["user_id"] = frame["user_id"].astype("float64")
    frame.loc[[3, 4], "user_id"] = np.nan
    frame.loc[[8], "event_timestamp"] = pd.NaT
    found = {v.problem for v in contract_violations(frame, MATERIALIZE_SETTINGS, SERVICE) if v.rule == "null-key"}
    assert found == {
        "the entity column 'user_id' is null in 2 rows",
        "the timestamp column 'event_timestamp' is null in 1 rows",
    }


def test_missing_columns_and_a_wrong_timestamp_type_are_named() -> None:
    """issue 31: a missing entity column and a string timestamp are both named with their setting."""
    frame = _frame().drop(columns=["user_id"])
    frame["event_timestamp"] = frame["event_timestamp"].astype(str)
    found = {v.rule: str(v) for v in contract_violations(frame, MATERIALIZE_SETTINGS, SERVICE)}
    assert "the entity column 'user_id' is missing" in found["required-column"]
    assert "materialize.entity_column" in found["required-column"]
    assert "'event_timestamp' is object, not a timestamp" in found["timestamp-type"]


def test_filling_is_opt_in_per_feature() -> None:
    """issue 31: materialize filled every missing feature with 0 silently; now only a feature that
    materialize.fill names is filled (and reported), any other null is refused naming it."""
    frame = _frame()
    frame.loc[[1, 2], "amount_avg_7d"] = np.nan
    frame.loc[[3], "seconds_since_last_txn"] = np.nan
    with pytest.raises(ComponentError) as refused:
        fill_missing(frame.copy(), MATERIALIZE_SETTINGS, SERVICE)
    assert "'amount_avg_7d' is null in 2 rows" in refused.value.problem
    assert "'seconds_since_last_txn' is null in 1 rows" in refused.value.problem
    assert refused.value.exit_code == 2
    settings = MATERIALIZE_SETTINGS.model_copy(update={"fill": {"amount_avg_7d": -1.0, "seconds_since_last_txn": 0}})
    filled = fill_missing(frame, settings, SERVICE)
    assert filled == {"amount_avg_7d": {"value": -1.0, "rows": 2}, "seconds_since_last_txn": {"value": 0, "rows": 1}}
    assert frame.loc[[1, 2], "amount_avg_7d"].tolist() == [-1.0, -1.0] and not frame[SERVICE].isna().any().any()


def test_a_fill_entry_for_no_feature_is_refused() -> None:
    """issue 31: a typo in materialize.fill would otherwise leave the real feature unfilled silently."""
    settings = MATERIALIZE_SETTINGS.model_copy(update={"fill": {"amount_avg_7": 0.0}})
    (violation,) = contract_violations(_frame(), settings, SERVICE)
    assert violation.rule == "unknown-fill" and "amount_avg_7d" in violation.fix


def test_materialize_refuses_every_violation_before_writing(tmp_path: Path) -> None:
    """issue 31: materialize raises one permanent error listing each violation, before the store
    or the sets are written."""
    frame = _frame()
    frame["is_fraud"] = frame["is_fraud"].astype("float64")
    frame.loc[[0], "is_fraud"] = np.nan
    frame.loc[[4], "txn_count_1h"] = None
    frame.drop(columns=["seconds_since_last_txn"]).to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(ComponentError) as refused:
        materialize(
            str(tmp_path / "bad.parquet"), str(FEATURE_REPO), str(tmp_path / "t.parquet"), str(tmp_path / "h.parquet"),
            store_dir=str(tmp_path / "store"), settings=MATERIALIZE_SETTINGS,
        )  # fmt: skip
    problem = refused.value.problem
    assert "3 violations" in problem and "is_fraud" in problem
    assert "'txn_count_1h' is null in 1 rows" in problem and "'seconds_since_last_txn'" in problem
    assert refused.value.exit_code == 2
    assert not (tmp_path / "t.parquet").exists() and not (tmp_path / "store").exists()


def test_the_transformer_defaults_a_filled_feature_to_its_fill_value() -> None:
    """issue 31: a feature training filled with -1 (materialize.fill) is -1 for an entity the online
    store does not know, not 0.0; scoring.defaults still wins where it names the feature."""
    from components.config import transformer_settings
    from pipelines.local import declaration

    cfg = declaration("fraud").config()
    cfg = cfg.with_overrides({"materialize.fill": {"amount_avg_7d": -1.0, "txn_count_1h": 0.0}})
    cfg = cfg.with_overrides({"scoring.defaults": {"txn_count_1h": 2.0}})
    defaults = transformer_settings(cfg, "image:1").scoring.defaults
    assert defaults == {"amount_avg_7d": -1.0, "txn_count_1h": 2.0}


def _late_labels(tmp_path: Path, unit: str) -> pd.DataFrame:
    """_frame() (one event a minute for 200 minutes) with the label null on its last 50 events,
    written with timestamps in `unit` and read back as materialize reads it (components/raw_data.py)."""
    from components.raw_data import read_raw

    frame = _frame()
    frame["event_timestamp"] = frame["event_timestamp"].astype(f"datetime64[{unit}, UTC]")
    frame["is_fraud"] = frame["is_fraud"].astype("float64")
    frame.loc[150:, "is_fraud"] = np.nan
    path = tmp_path / f"late-{unit}.parquet"
    frame.to_parquet(path, index=False)
    return read_raw(str(path), timestamp_column="event_timestamp", timezone=None, step="test")


@pytest.mark.parametrize("unit", ["s", "ms", "ns"])
def test_label_delay_lets_the_newest_rows_wait_for_their_label(tmp_path: Path, unit: str) -> None:
    """issue 32: with materialize.label_delay, a null label on an event newer than (the data's
    newest event - the delay) is no violation; without it the same rows are refused, named."""
    frame = _late_labels(tmp_path, unit)
    delayed = MATERIALIZE_SETTINGS.model_copy(update={"label_delay": "1h"})  # newest 03:19, cut-off 02:19
    assert contract_violations(frame, delayed, SERVICE) == []
    (violation,) = contract_violations(frame, MATERIALIZE_SETTINGS, SERVICE)  # the control: every row needs one
    assert violation.rule == "null-label"
    assert violation.problem == (
        "the label column 'is_fraud' is null in 50 rows, e.g. user_id=10 at 2026-01-01 02:30:00+00:00, "
        "user_id=11 at 2026-01-01 02:31:00+00:00, user_id=12 at 2026-01-01 02:32:00+00:00"
    )
    assert "materialize.label_delay" in violation.fix


@pytest.mark.parametrize("unit", ["s", "ns"])
def test_a_null_label_older_than_the_delay_is_refused_naming_the_rows(tmp_path: Path, unit: str) -> None:
    """issue 32: a null label at or before the cut-off is still refused, with the rows named; the
    newer ones (after the cut-off) are not counted in it."""
    frame = _late_labels(tmp_path, unit)
    frame.loc[[3, 139], "is_fraud"] = np.nan  # 00:03, and 02:19: exactly the cut-off, not newer
    delayed = MATERIALIZE_SETTINGS.model_copy(update={"label_delay": "1h"})
    (violation,) = contract_violations(frame, delayed, SERVICE)
    assert violation.rule == "late-label"
    assert violation.problem == (
        "the label column 'is_fraud' is null in 2 rows older than materialize.label_delay (1h: events at or before"
        " 2026-01-01 02:19:00+00:00), e.g. user_id=3 at 2026-01-01 00:03:00+00:00,"
        " user_id=19 at 2026-01-01 02:19:00+00:00"
    )
    assert contract_violations(frame, delayed.model_copy(update={"label_delay": "4h"}), SERVICE) == []


def test_label_delay_is_a_duration() -> None:
    """issue 32: the delay takes the drift section's duration format (14d, 36h), nothing else."""
    from pydantic import ValidationError

    from components.config import MaterializeSettings

    fields = MATERIALIZE_SETTINGS.model_dump()
    assert MaterializeSettings(**{**fields, "label_delay": "14d"}).label_delay == "14d"
    assert MATERIALIZE_SETTINGS.label_delay is None
    for wrong in ("14", "2w", "0d", "-1d"):
        with pytest.raises(ValidationError):
            MaterializeSettings(**{**fields, "label_delay": wrong})
