"""The out-of-core point-in-time join (components/steps/point_in_time.py) against a reference
computed here, independently, with pandas `merge_asof` (what Feast's join means: per entity row,
the entity's latest feature row at or before its time, null when older than the TTL), row for
row: the training and holdout sets, and the online rows.

Two levels: the join itself on feature rows apart from the labels (later rows that must not
leak, expired rows, ties at one time, null values, an entity without rows, duplicate labels),
and the whole materialize step on the fraud data written in every timestamp unit, shuffled, as
one file and as a hive-partitioned folder, with nulls filled by materialize.fill and recent rows
waiting for their label."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.config import MaterializeSettings
from components.errors import ComponentError
from components.steps import point_in_time
from components.steps.materialize import apply_repo, materialize, online_features, open_store
from tests.conftest import FEATURE_REPO, MATERIALIZE_SETTINGS

VIEW_FEATURES = ["txn_count_1h", "txn_count_24h", "amount_avg_7d", "seconds_since_last_txn"]
T0 = datetime(2026, 9, 1, tzinfo=UTC)
TTL = timedelta(days=30)


def _reference_sets(
    labels: pd.DataFrame, rows: pd.DataFrame, settings: MaterializeSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feast's join by hand: merge_asof backward per entity (ties at one time: the last written),
    expired matches nulled, sorted by (time, entity) keeping the data's order, split by time."""
    ts, entity, label = settings.timestamp_column, settings.entity_column, settings.label_column
    right = rows[[entity, ts, *VIEW_FEATURES]].rename(columns={ts: "__feature_time"})
    right = right.sort_values("__feature_time", kind="stable")
    left = labels.reset_index(drop=True).assign(__order=lambda frame: range(len(frame)))
    left = left.sort_values(ts, kind="stable")
    joined = pd.merge_asof(
        left.drop(columns=VIEW_FEATURES, errors="ignore"),
        right,
        left_on=ts,
        right_on="__feature_time",
        by=entity,
        direction="backward",
        allow_exact_matches=True,
    )
    expired = joined["__feature_time"].isna() | (joined["__feature_time"] < joined[ts] - TTL)
    joined.loc[expired, VIEW_FEATURES] = np.nan
    for feature, value in settings.fill.items():
        joined[feature] = joined[feature].fillna(value)
    joined = joined.sort_values([ts, entity, "__order"], kind="stable").reset_index(drop=True)
    columns = [ts, entity, *settings.request_features, *VIEW_FEATURES, label]
    joined = joined[columns]
    cut = int(len(joined) * (1.0 - settings.holdout_fraction))
    return joined.iloc[:cut].reset_index(drop=True), joined.iloc[cut:].reset_index(drop=True)


def _assert_same(got_path: Path, expected: pd.DataFrame) -> None:
    got = pd.read_parquet(got_path)
    assert list(got.columns) == list(expected.columns)
    got = got.astype({c: "float64" for c in VIEW_FEATURES})
    expected = expected.astype({c: "float64" for c in VIEW_FEATURES})
    for frame in (got, expected):
        frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)


def _feature_rows() -> pd.DataFrame:
    rows = [  # user, time, value (each feature derived from it); written out of time order
        (1, T0 + timedelta(days=1), 2),  # supersedes value 1 from day 1 on
        (1, T0, 1),
        (2, T0 + timedelta(days=5), 4),  # later than user 2's label at day 3: must not leak
        (2, T0, 3),
        (3, T0, 5),  # expired for the label 31 days later (TTL 30 days)
        (4, T0 + timedelta(hours=6), 6),  # at exactly the label's time
        (6, T0 + timedelta(days=2), 7),  # two rows at one time: the last written wins
        (6, T0 + timedelta(days=2), 8),
        (7, T0, None),  # a null value stays null (then filled)
        (8, T0 + timedelta(days=1) - timedelta(microseconds=1), 9),  # one microsecond before
    ]
    values = [r[2] for r in rows]
    return pd.DataFrame(
        {
            "user_id": pd.Series([r[0] for r in rows], dtype="int64"),
            "event_timestamp": pd.to_datetime([r[1] for r in rows], utc=True).astype("datetime64[us, UTC]"),
            "txn_count_1h": pd.array(values, dtype="Int64"),
            "txn_count_24h": pd.array([None if v is None else v * 10 for v in values], dtype="Int64"),
            "amount_avg_7d": [np.nan if v is None else v * 1.5 for v in values],
            "seconds_since_last_txn": [np.nan if v is None else v * 60.0 for v in values],
        }
    )


def _labels() -> pd.DataFrame:
    labels = [  # user, time, label, amount
        (1, T0 + timedelta(hours=12), 0),
        (1, T0 + timedelta(days=2), 1),
        (2, T0 + timedelta(days=3), 0),
        (3, T0 + timedelta(days=31), 1),
        (4, T0 + timedelta(hours=6), 0),
        (5, T0 + timedelta(days=1), 1),  # an entity with no feature rows at all
        (6, T0 + timedelta(days=3), 0),
        (6, T0 + timedelta(days=3), 0),  # a duplicate that agrees on the label
        (7, T0 + timedelta(days=1), 1),
        (8, T0 + timedelta(days=1), 0),
        (1, T0 + timedelta(days=4), 1),
        (2, T0 + timedelta(days=6), 0),
    ]
    return pd.DataFrame(
        {
            "user_id": pd.Series([r[0] for r in labels], dtype="int64"),
            "event_timestamp": pd.to_datetime([r[1] for r in labels], utc=True).astype("datetime64[us, UTC]"),
            "amount": [float(index) for index in range(len(labels))],
            "merchant_category": pd.Series([index % 3 for index in range(len(labels))], dtype="int64"),
            "is_fraud": pd.Series([r[2] for r in labels], dtype="int64"),
        }
    )


@pytest.fixture(scope="module")
def store_joins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[point_in_time.ViewJoin], Path]:
    root = tmp_path_factory.mktemp("pit-bounded")
    features = root / "features.parquet"
    _feature_rows().to_parquet(features, index=False)
    store = open_store("fraud", root / "store")
    apply_repo(store, FEATURE_REPO, str(features))
    joins = point_in_time.view_joins(store, "fraud_model_v1")
    assert joins is not None
    return store, joins, root


def test_the_join_is_read_from_the_feast_definitions(
    store_joins: tuple[Any, list[point_in_time.ViewJoin], Path],
) -> None:
    _, joins, root = store_joins
    assert joins == [
        point_in_time.ViewJoin(
            name="user_transaction_stats",
            path=str(root / "features.parquet"),
            join_key="user_id",
            entity_column="user_id",
            timestamp="event_timestamp",
            created=None,
            ttl_seconds=TTL.total_seconds(),
            features=tuple(VIEW_FEATURES),
        )
    ]


@pytest.mark.parametrize("fill", [{}, {"txn_count_1h": -1.0, "txn_count_24h": -1.0, "amount_avg_7d": 0.5,
                                       "seconds_since_last_txn": 0.0}])  # fmt: skip
def test_the_join_equals_merge_asof_row_for_row(
    store_joins: tuple[Any, list[point_in_time.ViewJoin], Path], tmp_path: Path, fill: dict[str, float]
) -> None:
    _, joins, _ = store_joins
    labels = _labels()
    labels.to_parquet(tmp_path / "labels.parquet", index=False)
    settings = MATERIALIZE_SETTINGS.model_copy(update={"fill": fill, "holdout_fraction": 0.25})
    train, holdout = tmp_path / "train.parquet", tmp_path / "holdout.parquet"
    args = (joins, str(tmp_path / "labels.parquet"), settings, VIEW_FEATURES, None, str(train), str(holdout))
    if not fill:  # positive control of the contract: expired and missing rows are nulls nobody filled
        with pytest.raises(ComponentError, match="the feature 'txn_count_1h' is null in 3 rows"):
            point_in_time.build_sets(*args)
        return
    sets = point_in_time.build_sets(*args)
    expected_train, expected_holdout = _reference_sets(labels, _feature_rows(), settings)
    _assert_same(train, expected_train)
    _assert_same(holdout, expected_holdout)
    assert (sets.training_rows, sets.holdout_rows) == (len(expected_train), len(expected_holdout))
    assert sets.filled["txn_count_1h"] == {"value": -1.0, "rows": 3}  # users 3 (expired), 5 (none), 7 (null)
    assert sets.holdout_starts == expected_holdout["event_timestamp"].min().isoformat()
    # the comparison sees a join that is wrong: without the TTL, user 3's expired row comes back
    expired_kept = dataclasses.replace(joins[0], ttl_seconds=0.0)
    point_in_time.build_sets([expired_kept], *args[1:])
    with pytest.raises(AssertionError):
        _assert_same(holdout if len(expected_holdout) else train, expected_holdout)
        _assert_same(train, expected_train)


def _raw(rows: int) -> pd.DataFrame:
    from pipelines.fraud.data import generate

    frame = generate(rows, 5)
    frame = pd.concat([frame, frame.iloc[[10, 20]]], ignore_index=True)  # duplicates that agree
    frame.loc[frame.index[::7], "seconds_since_last_txn"] = np.nan  # nulls materialize.fill names
    frame["is_fraud"] = frame["is_fraud"].astype("Int64")
    recent = frame["event_timestamp"].nlargest(5).index
    frame.loc[recent, "is_fraud"] = pd.NA  # after materialize.label_delay's cut-off: waiting for a label
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)  # out of time order


def _write(frame: pd.DataFrame, unit: str, where: Path, partitioned: bool) -> Path:
    written = frame.copy()
    written["event_timestamp"] = written["event_timestamp"].astype(f"datetime64[{unit}, UTC]")
    if not partitioned:
        path = where / f"raw-{unit}.parquet"
        written.to_parquet(path, index=False)
        return path
    folder = where / f"raw-{unit}"
    for day, part in written.groupby(written["event_timestamp"].dt.strftime("%Y-%m-%d")):
        (folder / f"date={day}").mkdir(parents=True)
        part.to_parquet(folder / f"date={day}" / "part-0.parquet", index=False)
    return folder


@pytest.mark.parametrize(("unit", "partitioned"), [("s", False), ("ms", False), ("us", True), ("ns", False)])
def test_materialize_equals_the_reference_row_for_row(
    tmp_path: Path, unit: str, partitioned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components import raw_data
    from components.platform import online_writer

    monkeypatch.setattr(raw_data, "BATCH_ROWS", 700)  # the input copied in several batches
    monkeypatch.setattr(online_writer, "BATCH_ROWS", 40)  # the online rows written in several batches
    raw = _raw(3000)
    data = _write(raw, unit, tmp_path, partitioned)
    settings = MATERIALIZE_SETTINGS.model_copy(update={"fill": {"seconds_since_last_txn": -1.0}, "label_delay": "1d"})
    summary = materialize(
        str(data), str(FEATURE_REPO), str(tmp_path / "t.parquet"), str(tmp_path / "h.parquet"),
        store_dir=str(tmp_path / "store"), settings=settings,
    )  # fmt: skip

    # the reference reads the data with pandas alone: times floored to the microsecond, in UTC
    read = pd.read_parquet(data).drop(columns=["date"], errors="ignore")
    read["event_timestamp"] = pd.to_datetime(read["event_timestamp"], utc=True).dt.floor("us")
    cutoff = read["event_timestamp"].max() - pd.Timedelta(days=1)
    labelled = read[~(read["is_fraud"].isna() & (read["event_timestamp"] > cutoff))]
    expected_train, expected_holdout = _reference_sets(labelled, read, settings)
    _assert_same(tmp_path / "t.parquet", expected_train)
    _assert_same(tmp_path / "h.parquet", expected_holdout)
    assert summary["training_rows"] == len(expected_train)

    # the online rows: each user's latest (ties: the last written) as Feast serves them
    latest = read.sort_values("event_timestamp", kind="stable").groupby("user_id").tail(1).set_index("user_id")
    users = sorted(int(user) for user in latest.index)
    served = pd.DataFrame(
        online_features("fraud", "fraud_model_v1", [{"user_id": u} for u in users], store_dir=str(tmp_path / "store"))
    ).set_index("user_id")
    for feature in VIEW_FEATURES:
        expected = latest.loc[users, feature].astype("float64")
        got = served.loc[users, feature].astype("float64")
        pd.testing.assert_series_equal(got, expected, check_names=False, check_index_type=False)
    assert summary["online_entities_written"] == read["user_id"].nunique()
    assert summary["online_rows_in_window"] == len(read)


def test_a_sets_schema_is_read_from_its_footer_not_its_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lineage's schema of a written set: the pandas dtypes a reader gets, from the Parquet
    schema alone. Reading the table to keep none of its rows held the whole 80M-row training set
    in memory (10 GB peak in the first 100M run): a read of the table now fails the test."""
    import pyarrow.parquet as pq

    frame = pd.DataFrame(
        {
            "event_timestamp": pd.to_datetime([1, 2], unit="s", utc=True).as_unit("us"),
            "user_id": [1, 2],
            "amount": [1.5, None],
            "is_fraud": [0, 1],
        }
    )
    path = tmp_path / "set.parquet"
    frame.to_parquet(path, index=False)
    expected = {str(c): str(t) for c, t in pd.read_parquet(path).iloc[:0].dtypes.items()}

    def refused(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the schema read the rows")

    monkeypatch.setattr(pq, "read_table", refused)
    assert point_in_time._schema(path) == expected
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    assert point_in_time._schema(empty) == {}
