"""The laptop's online store written from columns (components/platform/online_writer.py) against Feast's
own SQLite materialization: the same rows (entity key, feature, Value bytes, text, event time),
the same features served, in two overlapping windows and with nulls in the data."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.steps.materialize import apply_repo, embedded_store_config, open_store
from tests.conftest import FEATURE_REPO

VIEW = "user_transaction_stats"


def _rows(store: Any, folder: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(folder / "online.db") as connection:
        table = f"{store.config.project}_{VIEW}"
        return connection.execute(
            f"select entity_key, feature_name, value, value_text, event_ts, created_ts from {table}"
            " order by entity_key, feature_name"
        ).fetchall()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, raw_dataset: Path) -> dict[str, Any]:
    from components.platform import online_writer

    root = tmp_path_factory.mktemp("sqlite-online")
    frame = pd.read_parquet(raw_dataset)
    frame["amount_avg_7d"] = frame["amount_avg_7d"].astype("float64")
    latest = frame.sort_values("event_timestamp").drop_duplicates("user_id", keep="last").index[:25]
    frame.loc[latest, "amount_avg_7d"] = np.nan  # null online values must be written as Feast writes them
    source = root / "offline.parquet"
    frame.to_parquet(source, index=False)
    begin = frame["event_timestamp"].min().to_pydatetime()
    end = frame["event_timestamp"].max().to_pydatetime() + timedelta(seconds=1)
    middle = begin + (end - begin) / 2
    stores = {}
    for project in ("feast_rows", "fast_rows"):
        store = open_store(project, root / project, embedded_store_config(root / project, project))
        apply_repo(store, FEATURE_REPO, str(source))
        stores[project] = store
    view = stores["fast_rows"].get_feature_view(VIEW)
    supported = online_writer.supported(stores["fast_rows"], view)
    for start, stop in [(begin, middle), (middle - timedelta(days=3), end)]:  # overlapping on purpose
        stores["feast_rows"].materialize(start_date=start, end_date=stop, feature_views=[VIEW])
        online_writer.materialize_view(stores["fast_rows"], view, start, stop)
    return {"root": root, "stores": stores, "supported": supported, "frame": frame}


def test_the_columnar_writer_takes_the_laptop_store(written: dict[str, Any]) -> None:
    assert written["supported"]


def test_rows_match_feasts_own_materialization(written: dict[str, Any]) -> None:
    root, stores = written["root"], written["stores"]
    feast_rows = _rows(stores["feast_rows"], root / "feast_rows")
    fast_rows = _rows(stores["fast_rows"], root / "fast_rows")
    assert len(feast_rows) == 4 * written["frame"]["user_id"].nunique()  # positive control
    assert fast_rows == feast_rows
    assert any(row[3] is None for row in fast_rows), "no null reached the store: its encoding went untested"


def test_served_features_match(written: dict[str, Any]) -> None:
    stores = written["stores"]
    users = [{"user_id": int(u)} for u in sorted(written["frame"]["user_id"].unique())[:200]]
    served = {
        project: store.get_online_features(
            features=store.get_feature_service("fraud_model_v1"), entity_rows=users
        ).to_df()
        for project, store in stores.items()
    }
    pd.testing.assert_frame_equal(served["fast_rows"], served["feast_rows"])
