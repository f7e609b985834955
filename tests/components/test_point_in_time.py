"""The laptop's offline store (DuckDB) against Feast's file store, row for row, on the cases a
point-in-time join gets wrong: a feature row that arrives after the label's time (must not
leak), one older than the view's TTL (expired: null), one at exactly the label's time
(included), a later row that supersedes an earlier one, and an entity with no rows at all.

Found here: the file store drops a label row whose entity has feature rows, all older than the
TTL, while it keeps one whose entity has none; DuckDB keeps both with null features, as
Feast's contract (one output row per entity row) says. Materialize fills the nulls with 0,
so such labels are now in the training set, as the same entity is at serving time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from components.steps.materialize import apply_repo, embedded_store_config, historical_features, open_store
from tests.conftest import FEATURE_REPO

T0 = datetime(2026, 9, 1, tzinfo=UTC)
FEATURES = ["txn_count_1h", "txn_count_24h", "amount_avg_7d", "seconds_since_last_txn"]


def _source() -> pd.DataFrame:
    rows = [  # user, time, value: each feature of the row is derived from value
        (1, T0, 1),
        (1, T0 + timedelta(days=1), 2),  # supersedes value 1 from day 1 on
        (2, T0, 3),
        (2, T0 + timedelta(days=5), 4),  # late: after user 2's label at day 3
        (3, T0, 5),  # expired for a label 31 days later (TTL 30 days)
        (4, T0 + timedelta(hours=6), 6),  # at exactly the label's time
    ]
    return pd.DataFrame(
        {
            "user_id": pd.Series([r[0] for r in rows], dtype="int64"),
            "event_timestamp": pd.to_datetime([r[1] for r in rows], utc=True),
            "txn_count_1h": pd.Series([r[2] for r in rows], dtype="int64"),
            "txn_count_24h": pd.Series([r[2] * 10 for r in rows], dtype="int64"),
            "amount_avg_7d": [r[2] * 1.5 for r in rows],
            "seconds_since_last_txn": [r[2] * 60.0 for r in rows],
        }
    )


LABELS = pd.DataFrame(
    {
        "user_id": [1, 1, 2, 3, 4, 5],
        "event_timestamp": pd.to_datetime(
            [
                T0 + timedelta(hours=12),
                T0 + timedelta(days=2),
                T0 + timedelta(days=3),
                T0 + timedelta(days=31),
                T0 + timedelta(hours=6),
                T0 + timedelta(days=1),  # an entity with no feature rows at all
            ],
            utc=True,
        ),
        "is_fraud": [0, 1, 0, 1, 0, 1],
    }
)
EXPECTED_TXN_COUNT_1H = [1, 2, 3, None, 6, None]


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    root = tmp_path_factory.mktemp("point-in-time")
    source = root / "events.parquet"
    _source().to_parquet(source, index=False)
    out = {}
    for kind in ("file", "duckdb"):
        config = {**embedded_store_config(root / kind, "fraud"), "offline_store": {"type": kind}}
        store = open_store("fraud", root / kind, config)
        apply_repo(store, FEATURE_REPO, str(source))
        frame = historical_features(store, LABELS.sort_values("event_timestamp", kind="stable"), "fraud_model_v1")
        frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[ns, UTC]")
        out[kind] = frame.sort_values(["event_timestamp", "user_id"]).reset_index(drop=True)[
            ["user_id", "event_timestamp", "is_fraud", *FEATURES]
        ]
    return out


def test_the_laptop_store_is_duckdb() -> None:
    assert embedded_store_config(Path("/tmp/x"), "fraud")["offline_store"] == {"type": "duckdb"}


def test_duckdb_joins_every_case_as_expected(joined: dict[str, pd.DataFrame]) -> None:
    by_label = joined["duckdb"].set_index(["user_id", "event_timestamp"])
    assert len(by_label) == len(LABELS)
    expected = LABELS.assign(txn_count_1h=EXPECTED_TXN_COUNT_1H).set_index(["user_id", "event_timestamp"])
    for key, value in expected["txn_count_1h"].items():
        got = by_label.loc[key, "txn_count_1h"]
        assert (pd.isna(got) and pd.isna(value)) or got == value, (key, got, value)


def test_duckdb_gives_the_file_stores_training_set_row_for_row(joined: dict[str, pd.DataFrame]) -> None:
    """Equal on every row the file store returns; it loses only the expired label (see above)."""
    expired = LABELS.iloc[[3]].set_index(["user_id", "event_timestamp"]).index
    duckdb = joined["duckdb"].set_index(["user_id", "event_timestamp"])
    assert duckdb.loc[expired, FEATURES].isna().all(axis=None)
    kept = duckdb.drop(index=expired).reset_index()
    pd.testing.assert_frame_equal(kept, joined["file"], check_dtype=False)
