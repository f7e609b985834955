from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.errors import ComponentError
from components.steps.materialize import materialize, online_features
from tests.conftest import FEATURE_REPO, FEATURES, MATERIALIZE_SETTINGS


def _materialize(data: Path, out: Path, **extra: Any) -> dict[str, Any]:
    """The materialize step on `data` with the fraud feature repo, its sets (t.parquet, h.parquet)
    and its store under `out` (issue 30: its argument list was written six times in this file)."""
    return materialize(
        str(data), str(FEATURE_REPO), str(out / "t.parquet"), str(out / "h.parquet"),
        store_dir=str(out / "store"), settings=MATERIALIZE_SETTINGS, **extra,
    )  # fmt: skip


def test_training_set_is_point_in_time_correct(materialized: dict[str, Any], raw_dataset: Path) -> None:
    raw = pd.read_parquet(raw_dataset)
    both = pd.concat([pd.read_parquet(materialized["train"]), pd.read_parquet(materialized["holdout"])])
    assert len(both) == len(raw)
    joined = both.merge(raw, on=["user_id", "event_timestamp"], suffixes=("", "_source"))
    assert len(joined) == len(raw)
    for feature in ["txn_count_1h", "txn_count_24h", "amount_avg_7d", "seconds_since_last_txn", "is_fraud"]:
        assert (joined[feature] == joined[f"{feature}_source"]).all(), feature
    assert list(both.columns) == ["event_timestamp", "user_id", *FEATURES, "is_fraud"]


def test_holdout_is_the_most_recent_slice(materialized: dict[str, Any]) -> None:
    train = pd.read_parquet(materialized["train"])
    holdout = pd.read_parquet(materialized["holdout"])
    assert train["event_timestamp"].max() <= holdout["event_timestamp"].min()
    assert len(holdout) == pytest.approx(0.2 * (len(train) + len(holdout)), abs=1)


def test_online_store_serves_each_users_latest_values(materialized: dict[str, Any], raw_dataset: Path) -> None:
    raw = pd.read_parquet(raw_dataset).sort_values("event_timestamp")
    latest = raw.groupby("user_id").tail(1).set_index("user_id")
    users = [int(u) for u in latest.index[:25]]
    served = online_features(
        "fraud", "fraud_model_v1", [{"user_id": u} for u in users], store_dir=str(materialized["store"])
    )
    for index, user in enumerate(users):
        assert served["txn_count_24h"][index] == latest.loc[user, "txn_count_24h"]
        assert served["amount_avg_7d"][index] == pytest.approx(latest.loc[user, "amount_avg_7d"])
    assert materialized["summary"]["online_entities_written"] == raw["user_id"].nunique()


def test_second_run_moves_the_watermark_only_for_new_data(tmp_path: Path, raw_dataset: Path) -> None:
    raw = pd.read_parquet(raw_dataset).sort_values("event_timestamp")
    first_part = tmp_path / "first.parquet"
    raw.iloc[:6000].to_parquet(first_part, index=False)
    first = _materialize(first_part, tmp_path)
    again = _materialize(first_part, tmp_path)
    grown = _materialize(raw_dataset, tmp_path)
    assert first["online_rows_in_window"] == 6000
    assert again["online_rows_in_window"] == 0
    # the offline copy is addressed by the data's digest: the same bytes, the same place
    assert first["offline_uri"] == again["offline_uri"] != grown["offline_uri"]
    assert first["data_digest"] in first["offline_uri"] and grown["data_digest"] in grown["offline_uri"]
    assert grown["window_start"] == first["watermark"]
    assert grown["online_rows_in_window"] == 2000


def test_nulls_in_the_label_stop_before_anything_is_written(raw_dataset: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(raw_dataset)
    frame["is_fraud"] = frame["is_fraud"].astype("float64")
    frame.loc[frame.index[:3], "is_fraud"] = None
    frame.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(ComponentError, match="the label column 'is_fraud' is null in 3 rows"):
        _materialize(tmp_path / "bad.parquet", tmp_path)
    assert not (tmp_path / "t.parquet").exists() and not (tmp_path / "store").exists()


def test_data_other_than_validate_read_is_refused_before_anything_is_written(raw_dataset: Path, tmp_path: Path) -> None:
    from components.lineage import data_digest

    validated = "sha256-" + "0" * 64  # what validate read: not these bytes
    with pytest.raises(ComponentError, match="changed during the run"):
        _materialize(raw_dataset, tmp_path, data_digest=validated)
    assert not (tmp_path / "t.parquet").exists() and not (tmp_path / "store").exists()
    summary = _materialize(raw_dataset, tmp_path, data_digest=data_digest(str(raw_dataset)))  # positive control
    assert summary["data_digest"] == data_digest(str(raw_dataset))


def test_missing_request_feature_is_named(raw_dataset: Path, tmp_path: Path) -> None:
    pd.read_parquet(raw_dataset).drop(columns=["merchant_category"]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ComponentError, match="the request feature column 'merchant_category' is missing"):
        _materialize(tmp_path / "bad.parquet", tmp_path)
    assert not (tmp_path / "t.parquet").exists()


def test_applying_the_repo_again_in_one_process_takes_the_new_source(tmp_path: Path) -> None:
    """parse_repo imports the repo's modules once per process; a second apply must not reuse them."""
    from components.steps.materialize import apply_repo, open_store

    paths = []
    for name in ("first", "second"):
        store = open_store("fraud", tmp_path / name)
        apply_repo(store, FEATURE_REPO, str(tmp_path / f"{name}.parquet"))
        paths.append(store.get_feature_view("user_transaction_stats").batch_source.path)
    assert paths == [str(tmp_path / "first.parquet"), str(tmp_path / "second.parquet")]


def test_label_delay_keeps_recent_unlabelled_rows_out_of_training_and_in_the_online_store(
    raw_dataset: Path, tmp_path: Path
) -> None:
    """issue 32: with materialize.label_delay 14d, the events of the data's last 14 days may wait
    for their label: they are left out of the train and holdout sets, counted in the summary and the
    lineage, and still written to the online store. Without the delay the same file is refused."""
    import json

    frame = pd.read_parquet(raw_dataset)
    cutoff = frame["event_timestamp"].max() - pd.Timedelta(days=14)
    recent = frame["event_timestamp"] > cutoff
    frame["is_fraud"] = frame["is_fraud"].astype("float64").mask(recent)
    frame.to_parquet(tmp_path / "late.parquet", index=False)
    with pytest.raises(ComponentError, match=f"the label column 'is_fraud' is null in {int(recent.sum())} rows"):
        _materialize(tmp_path / "late.parquet", tmp_path / "refused")  # the control: every row needs a label

    delayed = MATERIALIZE_SETTINGS.model_copy(update={"label_delay": "14d"})
    out, lineage = tmp_path / "out", tmp_path / "lineage.json"
    summary = materialize(
        str(tmp_path / "late.parquet"), str(FEATURE_REPO), str(out / "t.parquet"), str(out / "h.parquet"),
        store_dir=str(out / "store"), settings=delayed, lineage_out=str(lineage),
    )  # fmt: skip
    assert 0 < recent.sum() < len(frame) / 2
    assert summary["unlabelled_recent_rows"] == int(recent.sum())
    assert pd.Timestamp(summary["label_cutoff"]) == cutoff
    point_in_time = json.loads(lineage.read_text())["point_in_time"]
    assert point_in_time["unlabelled_recent_rows"] == int(recent.sum())
    assert point_in_time["label_cutoff"] == summary["label_cutoff"] and point_in_time["label_delay"] == "14d"

    sets = pd.concat([pd.read_parquet(out / "t.parquet"), pd.read_parquet(out / "h.parquet")])
    assert len(sets) == summary["training_rows"] + summary["holdout_rows"] == int((~recent).sum())
    assert sets["event_timestamp"].max() <= cutoff and sets["is_fraud"].notna().all()
    assert sets["event_timestamp"].min() == frame["event_timestamp"].min()

    latest = frame.sort_values("event_timestamp").groupby("user_id").tail(1).set_index("user_id")
    waiting = latest[latest["event_timestamp"] > cutoff]  # users whose newest event has no label yet
    assert len(waiting) >= 5
    users = [int(user) for user in waiting.index[:10]]
    served = online_features("fraud", "fraud_model_v1", [{"user_id": u} for u in users], store_dir=str(out / "store"))
    for index, user in enumerate(users):
        assert served["txn_count_24h"][index] == waiting.loc[user, "txn_count_24h"]
        assert served["amount_avg_7d"][index] == pytest.approx(waiting.loc[user, "amount_avg_7d"])
    assert summary["online_rows_in_window"] == len(frame)
