"""issue 31 item 1: raw data as it comes (components/raw_data.py): timestamps in any unit and zone,
naive ones under materialize.timezone, a folder or hive-partitioned dataset, any timestamp column
name; the wrong type refused naming the column. Each path that reaches Feast's DuckDB offline
store runs through materialize on a small frame (a few hundred rows)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.errors import ComponentError
from components.raw_data import raw_digest, read_raw
from components.steps.materialize import materialize
from components.steps.validate import validate
from tests.conftest import FEATURE_REPO, MATERIALIZE_SETTINGS, SUITE

ROWS = 300


def _frame(rows: int = ROWS) -> pd.DataFrame:
    """Fraud's raw columns, event times one minute apart with a sub-microsecond part (a real
    extract's nanoseconds), labels that leave both classes on each side of the split."""
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "transaction_id": np.arange(rows),
            "user_id": np.arange(rows) % 20,
            "event_timestamp": pd.date_range("2026-12-01", periods=rows, freq="min", tz="UTC").as_unit("ns")
            + pd.Timedelta(1234, "ns"),
            "amount": rng.gamma(2.0, 30.0, rows),
            "merchant_category": rng.integers(0, 5, rows),
            "txn_count_1h": rng.integers(0, 4, rows),
            "txn_count_24h": rng.integers(0, 20, rows),
            "amount_avg_7d": rng.gamma(2.0, 30.0, rows),
            "seconds_since_last_txn": rng.gamma(2.0, 600.0, rows),
            "is_fraud": (np.arange(rows) % 9 == 0).astype("int64"),
        }
    )


def _with_times(
    frame: pd.DataFrame, times: pd.Series | pd.DatetimeIndex, column: str = "event_timestamp"
) -> pd.DataFrame:
    out = frame.copy()
    out[column] = times
    return out


def _materialize(data: Path, out: Path, **settings: Any) -> dict[str, Any]:
    return materialize(
        str(data), str(FEATURE_REPO), str(out / "t.parquet"), str(out / "h.parquet"),
        store_dir=str(out / "store"), settings=MATERIALIZE_SETTINGS.model_copy(update=settings),
    )  # fmt: skip


def _expected_times(frame: pd.DataFrame) -> pd.Series:
    return frame["event_timestamp"].dt.tz_convert("UTC").dt.floor("us").astype("datetime64[us, UTC]")


UNITS = ["ns", "us", "ms", "s"]


@pytest.mark.parametrize("unit", UNITS)
def test_each_timestamp_unit_reads_as_utc_microseconds(unit: str, tmp_path: Path) -> None:
    """issue 31: a timestamp column in any unit comes back as datetime64[us, UTC]; nanoseconds
    are floored to the microsecond."""
    frame = _frame(20)
    times = frame["event_timestamp"].dt.floor("s") if unit == "s" else frame["event_timestamp"]
    frame = _with_times(frame, times.astype(f"datetime64[{unit}, UTC]"))
    frame.to_parquet(tmp_path / "raw.parquet")
    read = read_raw(str(tmp_path / "raw.parquet"), timestamp_column="event_timestamp", timezone=None, step="test")
    assert str(read["event_timestamp"].dtype) == "datetime64[us, UTC]"
    assert (read["event_timestamp"] == _expected_times(frame)).all()


@pytest.mark.parametrize("unit", [*UNITS, "Europe/Amsterdam"])
def test_materialize_publishes_each_unit_and_zone_to_feast(unit: str, tmp_path: Path) -> None:
    """issue 31: ns timestamps (pandas' default) failed in Feast's DuckDB offline store with
    ArrowInvalid 'Casting from timestamp[ns] to timestamp[us, tz=UTC] would lose data'; every
    unit, and a zone-aware non-UTC column, now runs through materialize's point-in-time join."""
    frame = _frame()
    if unit == "Europe/Amsterdam":
        frame = _with_times(frame, frame["event_timestamp"].dt.tz_convert("Europe/Amsterdam"))
    else:
        times = frame["event_timestamp"].dt.floor("s") if unit == "s" else frame["event_timestamp"]
        frame = _with_times(frame, times.astype(f"datetime64[{unit}, UTC]"))
    frame.to_parquet(tmp_path / "raw.parquet")
    summary = _materialize(tmp_path / "raw.parquet", tmp_path)
    both = pd.concat([pd.read_parquet(tmp_path / "t.parquet"), pd.read_parquet(tmp_path / "h.parquet")])
    assert summary["training_rows"] + summary["holdout_rows"] == ROWS
    assert sorted(both["event_timestamp"]) == sorted(_expected_times(frame))
    joined = both.merge(frame.assign(event_timestamp=_expected_times(frame)), on=["user_id", "event_timestamp"])
    assert (joined["txn_count_24h_x"] == joined["txn_count_24h_y"]).all() and len(joined) == ROWS


def test_naive_timestamps_are_refused_naming_the_setting(tmp_path: Path) -> None:
    """issue 31: a naive timestamp column without materialize.timezone is refused, naming the fix."""
    frame = _with_times(_frame(20), _frame(20)["event_timestamp"].dt.tz_localize(None))
    frame.to_parquet(tmp_path / "raw.parquet")
    with pytest.raises(ComponentError, match="'event_timestamp' is naive") as refused:
        read_raw(str(tmp_path / "raw.parquet"), timestamp_column="event_timestamp", timezone=None, step="test")
    assert "materialize.timezone: Europe/Amsterdam" in refused.value.fix and refused.value.exit_code == 2


def test_naive_timestamps_are_localized_in_the_configured_zone(tmp_path: Path) -> None:
    """issue 31: with materialize.timezone set, naive times are read in that zone, through materialize."""
    frame = _frame()
    local = frame["event_timestamp"].dt.tz_convert("Europe/Amsterdam").dt.tz_localize(None)
    _with_times(frame, local).to_parquet(tmp_path / "raw.parquet")
    read = read_raw(
        str(tmp_path / "raw.parquet"), timestamp_column="event_timestamp", timezone="Europe/Amsterdam", step="test"
    )
    assert (read["event_timestamp"] == _expected_times(frame)).all()
    summary = _materialize(tmp_path / "raw.parquet", tmp_path, timezone="Europe/Amsterdam")
    assert summary["training_rows"] + summary["holdout_rows"] == ROWS


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (lambda t: t.dt.strftime("%Y-%m-%dT%H:%M:%S"), "object"),
        (lambda t: t.astype("int64") // 10**9, "int64"),
        (lambda t: t.astype("int64") / 1e9, "float64"),
        (lambda t: t.dt.date, "object"),
    ],
    ids=["string", "epoch-int", "epoch-float", "date"],
)
def test_a_timestamp_column_of_the_wrong_type_is_refused(values: Any, dtype: str, tmp_path: Path) -> None:
    """issue 31: strings, epoch numbers and dates without a time are refused (permanent), naming
    the column, its dtype and the fix; the platform does not guess a unit, zone or time of day."""
    frame = _frame(20)
    _with_times(frame, values(frame["event_timestamp"].dt.floor("s"))).to_parquet(tmp_path / "raw.parquet")
    with pytest.raises(ComponentError, match=f"'event_timestamp' is {dtype}, not a timestamp") as refused:
        read_raw(str(tmp_path / "raw.parquet"), timestamp_column="event_timestamp", timezone="UTC", step="test")
    assert "pd.to_datetime" in refused.value.fix and refused.value.exit_code == 2


def _write_folder(frame: pd.DataFrame, root: Path, *, hive: bool) -> None:
    days = frame["event_timestamp"].dt.strftime("%Y-%m-%d")
    for index, (day, part) in enumerate(frame.groupby(days)):
        folder = root / f"date={day}" if hive else root
        folder.mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / f"part-{index}.parquet", index=False)
    (root / "_SUCCESS").write_text("")  # what Spark leaves beside its output: not data


@pytest.mark.parametrize("hive", [False, True], ids=["folder", "hive"])
def test_a_folder_runs_through_validate_and_materialize(hive: bool, tmp_path: Path) -> None:
    """issue 31: a folder of Parquet files and a hive-partitioned dataset (date=2026-12-01/...)
    pass validate and materialize (partition keys come back as columns); validate's digest is the
    one materialize checks, so the run goes through."""
    frame = _frame(2000).iloc[::5].reset_index(drop=True)  # 400 rows over two days
    frame["event_timestamp"] = pd.date_range("2026-12-01", periods=len(frame), freq="7min", tz="UTC")
    _write_folder(frame, tmp_path / "raw", hive=hive)
    read = read_raw(str(tmp_path / "raw"), timestamp_column="event_timestamp", timezone=None, step="test")
    assert len(read) == len(frame) and ("date" in read.columns) == hive
    checked = validate(str(tmp_path / "raw"), str(SUITE), str(tmp_path / "report.json"))
    assert checked["data_digest"] == f"sha256-{raw_digest(str(tmp_path / 'raw'))}"
    summary = materialize(
        str(tmp_path / "raw"), str(FEATURE_REPO), str(tmp_path / "t.parquet"), str(tmp_path / "h.parquet"),
        store_dir=str(tmp_path / "store"), settings=MATERIALIZE_SETTINGS, data_digest=checked["data_digest"],
    )  # fmt: skip
    assert summary["training_rows"] + summary["holdout_rows"] == len(frame)


def test_a_single_files_digest_is_the_sha256_of_its_bytes_and_a_folders_is_stable(tmp_path: Path) -> None:
    """issue 31: a file keeps the digest validate always recorded (its bytes' sha256: caches and
    lineage key on it); a folder's digest names its files and bytes, not the order they are listed in."""
    frame = _frame(40)
    frame.to_parquet(tmp_path / "one.parquet")
    assert (
        raw_digest(str(tmp_path / "one.parquet")) == hashlib.sha256((tmp_path / "one.parquet").read_bytes()).hexdigest()
    )
    _write_folder(frame, tmp_path / "a", hive=True)
    first = raw_digest(str(tmp_path / "a"))
    assert first == raw_digest(str(tmp_path / "a"))
    (tmp_path / "a" / "_SUCCESS").write_text("written later")  # not data: the digest does not move
    assert raw_digest(str(tmp_path / "a")) == first
    part = next((tmp_path / "a").rglob("part-*.parquet"))
    part.rename(part.with_name("part-renamed.parquet"))  # same bytes, another name: other data
    assert raw_digest(str(tmp_path / "a")) != first


def test_the_timestamp_column_is_named_by_the_config_through_feast(tmp_path: Path) -> None:
    """issue 31: published_source hard-coded timestamp_field="event_timestamp"; a pipeline whose
    materialize.timestamp_column is event_time now publishes and joins on that column."""
    frame = _frame().rename(columns={"event_timestamp": "event_time"})
    frame.to_parquet(tmp_path / "raw.parquet")
    summary = _materialize(tmp_path / "raw.parquet", tmp_path, timestamp_column="event_time")
    train = pd.read_parquet(tmp_path / "t.parquet")
    assert "event_time" in train.columns and summary["training_rows"] + summary["holdout_rows"] == ROWS


def test_drift_reads_a_partitioned_current_window(tmp_path: Path) -> None:
    """issue 31: drift's current_data is the pipeline's raw data, now read by the reader validate and
    materialize share (components/raw_data.py). A control, not a finding: pandas read a folder here
    already; this keeps drift from losing it."""
    from components.steps.drift import read_current

    frame = _frame(120)
    _write_folder(frame, tmp_path / "raw", hive=True)
    current = read_current(str(tmp_path / "raw"))
    assert len(current) == len(frame) and set(frame.columns) <= set(current.columns)


class _FolderS3:
    """boto3's S3 client as raw_data uses it (head_object, list_objects_v2's paginator,
    download_file), over a local folder holding one bucket per subfolder; no listing order is
    promised, so it lists newest-name-first to show the digest does not depend on it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if not (self.root / Bucket / Key).is_file():
            raise ClientError({"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject")
        return {}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        root = self.root

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
                keys = sorted(
                    (p.relative_to(root / Bucket).as_posix() for p in (root / Bucket).rglob("*") if p.is_file()),
                    reverse=True,
                )
                return [
                    {"Contents": [{"Key": k} for k in keys if k.startswith(Prefix)][i : i + 2]}
                    for i in range(0, len(keys), 2)
                ]

        return Paginator()

    def download_file(self, bucket: str, key: str, target: str) -> None:
        Path(target).write_bytes((self.root / bucket / key).read_bytes())


def test_an_s3_folder_is_listed_fetched_and_digested_as_the_same_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 31: an s3:// hive dataset reads as the same folder on disk does, with the same digest
    (a unit test of the listing over boto3's client interface, not the loopback object store)."""
    from components import artifacts

    frame = _frame(120)
    frame["event_timestamp"] = pd.date_range("2026-12-01", periods=120, freq="h", tz="UTC")  # 5 days: 5 parts
    _write_folder(frame, tmp_path / "store" / "raw-bucket" / "extract", hive=True)
    monkeypatch.setattr(artifacts, "s3_client", lambda: _FolderS3(tmp_path / "store"))
    local = str(tmp_path / "store" / "raw-bucket" / "extract")
    read = read_raw("s3://raw-bucket/extract", timestamp_column="event_timestamp", timezone=None, step="test")
    expected = read_raw(local, timestamp_column="event_timestamp", timezone=None, step="test")
    pd.testing.assert_frame_equal(read, expected)
    assert len(read) == 120 and read["date"].nunique() == 5
    assert raw_digest("s3://raw-bucket/extract/") == raw_digest(local)
    with pytest.raises(ComponentError, match="not found at s3://raw-bucket/elsewhere"):
        read_raw("s3://raw-bucket/elsewhere", timestamp_column="event_timestamp", timezone=None, step="test")


def test_a_folders_digest_is_the_one_the_cache_key_and_reproduce_use(tmp_path: Path) -> None:
    """issue 31: the local runner's cache key (lineage.data_digest) and `mlops reproduce`'s check
    (lineage.verify) took a file's sha256 of the raw data: a folder failed there with
    IsADirectoryError. Both now take raw_digest, the digest validate records."""
    from components import lineage

    _write_folder(_frame(120), tmp_path / "raw", hive=True)
    checked = validate(str(tmp_path / "raw"), str(SUITE), str(tmp_path / "report.json"))
    assert lineage.data_digest(str(tmp_path / "raw")) == checked["data_digest"]
    record = lineage.describe(str(tmp_path / "raw"), None, "raw")
    assert lineage.verify(record) == str(tmp_path / "raw")
    next((tmp_path / "raw").rglob("part-*.parquet")).write_bytes(b"changed")
    with pytest.raises(ComponentError, match="has changed"):
        lineage.verify(record)


class _HostileS3(_FolderS3):
    """_FolderS3 whose listing also holds keys a real store accepts: a zero-byte "folder" marker
    (the S3 console's Create folder) and a key with an empty path part pointing at an absolute path."""

    def __init__(self, root: Path, extra: list[str]) -> None:
        super().__init__(root)
        self.extra = extra

    def get_paginator(self, name: str) -> Any:
        pages = super().get_paginator(name)
        extra = self.extra

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
                listed = pages.paginate(Bucket=Bucket, Prefix=Prefix)
                return [*listed, {"Contents": [{"Key": k} for k in extra if k.startswith(Prefix)]}]

        return Paginator()

    def download_file(self, bucket: str, key: str, target: str) -> None:
        if key in self.extra:
            Path(target).write_bytes(b"attacker's bytes")
            return
        super().download_file(bucket, key, target)


def test_an_s3_key_that_would_write_outside_the_download_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 31 (attacker's read): the folder reader joined each listed key's name onto its temporary
    folder, and `Path(tmp) / "/home/x/data.py"` is `/home/x/data.py`: whoever can put an object under
    the extract's prefix (`extract//home/...`) wrote any file the step's user may write. A zero-byte
    "folder" marker key is skipped, not read as a data file."""
    from components import artifacts

    frame = _frame(48)
    _write_folder(frame, tmp_path / "store" / "raw-bucket" / "extract", hive=True)
    target = tmp_path / "victim" / "data.py"
    marker = "extract/date=2026-12-01/"
    monkeypatch.setattr(artifacts, "s3_client", lambda: _HostileS3(tmp_path / "store", [marker]))
    local = str(tmp_path / "store" / "raw-bucket" / "extract")
    read = read_raw("s3://raw-bucket/extract", timestamp_column="event_timestamp", timezone=None, step="test")
    assert len(read) == 48 and raw_digest("s3://raw-bucket/extract") == raw_digest(local)  # the marker: skipped
    hostile = f"extract/{target}"  # extract//tmp/.../victim/data.py
    monkeypatch.setattr(artifacts, "s3_client", lambda: _HostileS3(tmp_path / "store", [marker, hostile]))
    with pytest.raises(ComponentError, match="is not a plain relative path") as refused:
        read_raw("s3://raw-bucket/extract", timestamp_column="event_timestamp", timezone=None, step="test")
    assert hostile in str(refused.value) and not target.exists()


def test_hive_partition_keys_come_back_as_the_text_of_their_path(tmp_path: Path) -> None:
    """issue 31 (the newcomer's read): the doc says a partition key comes back as text, but pyarrow's
    discovery typed `year=2026/month=07` as integers (and would drop the month's leading zero)."""
    frame = _frame(40)
    for year, month in (("2026", "07"), ("2026", "12")):
        folder = tmp_path / "raw" / f"year={year}" / f"month={month}"
        folder.mkdir(parents=True)
        frame.to_parquet(folder / "part-0.parquet", index=False)
    read = read_raw(str(tmp_path / "raw"), timestamp_column="event_timestamp", timezone=None, step="test")
    assert read["year"].dtype == object and read["month"].dtype == object
    assert sorted(set(zip(read["year"], read["month"], strict=True))) == [("2026", "07"), ("2026", "12")]
