"""The platform's Redis writer leaves exactly the bytes Feast's own materialization leaves.

Same offline data, two projects on one Redis: one materialized by Feast, one by
components.platform.online_writer, in two overlapping windows (so Feast's only-newer rule is exercised,
and NaNs become empty values). Every key's whole hash must be equal, byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from devstack.stack import Stack
from tests.conftest import FEATURE_REPO

pytestmark = pytest.mark.integration


def offline_frame(rows: int = 30_000, users: int = 3_000) -> pd.DataFrame:
    rng = np.random.default_rng(9)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    amount = rng.gamma(2.0, 40.0, rows)
    amount[rng.random(rows) < 0.02] = np.nan
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, users, rows, dtype=np.int64),
            "event_timestamp": pd.to_datetime(start) + pd.to_timedelta(rng.integers(0, 20 * 86400 * 10**6, rows), "us"),
            "txn_count_1h": rng.integers(0, 10, rows, dtype=np.int64),
            "txn_count_24h": rng.integers(-3, 600, rows, dtype=np.int64),
            "amount_avg_7d": amount,
            "seconds_since_last_txn": rng.exponential(3600.0, rows),
        }
    )


def test_columnar_writer_matches_feast_byte_for_byte(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.platform import online_writer
    from components.serving.online_reader import OnlineFeatureReader
    from components.steps.materialize import apply_repo, open_store

    for key, value in stack.environment().items():
        monkeypatch.setenv(key, value)
    frame = offline_frame()
    source = tmp_path / "offline.parquet"
    frame.to_parquet(source, index=False)
    begin = frame["event_timestamp"].min().to_pydatetime()
    end = frame["event_timestamp"].max().to_pydatetime() + timedelta(seconds=1)
    middle = begin + (end - begin) / 2
    windows = [(begin, middle), (middle - timedelta(days=3), end)]  # overlapping on purpose

    stores = {}
    for project in ("eq_feast", "eq_fast"):
        store = open_store(project, tmp_path / project)
        apply_repo(store, FEATURE_REPO, str(source))
        stores[project] = store
    view = stores["eq_fast"].get_feature_view("user_transaction_stats")
    assert online_writer.supported(stores["eq_fast"], view)
    for start, stop in windows:
        stores["eq_feast"].materialize(start_date=start, end_date=stop, feature_views=["user_transaction_stats"])
        online_writer.materialize_view(stores["eq_fast"], view, start, stop)

    rows = [{"user_id": int(user)} for user in sorted(frame["user_id"].unique())]
    client = redis.Redis(port=stack.ports.redis)
    feast_keys = [key for key, _ in OnlineFeatureReader(stores["eq_feast"], "fraud_model_v1").redis_commands(rows)]
    fast_keys = [key for key, _ in OnlineFeatureReader(stores["eq_fast"], "fraud_model_v1").redis_commands(rows)]
    with client.pipeline(transaction=False) as pipe:
        for key in feast_keys + fast_keys:
            pipe.hgetall(key)
        hashes = pipe.execute()
    written_by_feast, written_fast = hashes[: len(rows)], hashes[len(rows) :]
    assert all(written_by_feast), "Feast left some entity without a hash"
    assert written_fast == written_by_feast
    assert any(b"" in h.values() for h in written_fast), "no NaN reached the store: the null encoding went untested"
    refreshed = stores["eq_fast"].get_feature_view("user_transaction_stats")
    assert refreshed.most_recent_end_time is not None
