"""Reading a pipeline's raw data as it comes: one file, a folder, a hive-partitioned dataset.

Validate, materialize and drift read the raw extract through `read_raw`, so each accepts the
same inputs and hands on the same frame:
- one Parquet file, a folder of Parquet files, or a hive-partitioned dataset
  (`date=2026-12-01/part-0.parquet`: the partition keys come back as columns); a local path or
  `s3://` (listed and fetched with the platform's S3 client, components/artifacts.py). Files and
  folders whose name starts with `.` or `_` (`_SUCCESS`, `.crc`) are not data, as Spark and
  pyarrow write them;
- the timestamp column in any unit (s, ms, us, ns), returned as `datetime64[us, UTC]`, the unit
  Feast's offline store keeps: a zone-aware column is converted to UTC, and nanoseconds are
  truncated (floored) to the microsecond, since the point-in-time join keeps no finer time;
- a naive timestamp column is localized in `timezone` (materialize.timezone, an IANA name) or
  refused naming the setting to write;
- a timestamp column of another type (strings, numbers, dates without a time of day) is refused:
  its meaning (epoch unit, zone, time of day) is a guess the platform does not make. A `.csv` file
  is the exception for strings: CSV has no types, so ISO 8601 text is parsed.
All refusals are permanent (exit 2): the same bytes fail the same way on a retry.

`raw_digest` is the sha256 the cache keys and the lineage record hold: of a single file, its
bytes (as before folders were read); of a folder, of each file's relative path and sha256 in
sorted order, so the same files give the same digest however the store lists them.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from components import artifacts
from components.arrow_batches import bounded_batches
from components.errors import ComponentError

if TYPE_CHECKING:
    import pyarrow.dataset as ds

    from components.lineage import DatasetRecord

__all__ = [
    "NAIVE_FIX",
    "RawData",
    "load_raw",
    "normalized_copy",
    "present",
    "raw_dataset",
    "raw_digest",
    "read_raw",
    "read_recorded",
    "utc_microseconds",
]

NAIVE_FIX = (
    "set materialize.timezone: Europe/Amsterdam (the zone the times were written in), or write timezone-aware UTC"
)
UTC_US = "datetime64[us, UTC]"


@dataclass(frozen=True)
class RawData:
    frame: pd.DataFrame
    digest: str
    """The sha256 (hex) of exactly the bytes parsed: raw_digest's value."""
    files: tuple[str, ...]
    """The data files read, relative to the folder (a single file: its own name)."""


def _is_data(relative: PurePosixPath) -> bool:
    return not any(part.startswith((".", "_")) for part in relative.parts)


def _local_files(root: Path) -> list[str]:
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and _is_data(PurePosixPath(path.relative_to(root).as_posix()))
    )


def _s3_folder(uri: str) -> tuple[str, str, list[str]]:
    """(bucket, prefix, the data files' paths under it, sorted) of an s3:// folder or dataset."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    prefix = key.rstrip("/") + "/"
    keys = [
        entry["Key"]
        for page in artifacts.s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for entry in page.get("Contents", [])
    ]
    relative = []
    for key in keys:
        name = key[len(prefix) :]
        if not name or name.endswith("/"):
            continue  # the prefix itself, or a zero-byte "folder" marker (the S3 console's Create folder)
        if {"", ".", ".."} & set(name.split("/")):
            # "a//b" or "/etc/x" joined onto the download folder would land outside it (Path("/t") / "/etc/x")
            raise ComponentError(
                "raw_data",
                f"object key {key!r} under {uri} is not a plain relative path (an empty, '.' or '..' part):"
                " reading it would write outside the download folder",
                "remove or rename that object; a dataset's keys are <prefix>/<folder>/.../<file>.parquet",
            )
        if _is_data(PurePosixPath(name)):
            relative.append(name)
    return bucket, prefix, sorted(relative)


def present(uri: str) -> bool:
    """Whether raw data is at `uri`: a file, or a folder (local or s3://) holding data files."""
    if not artifacts.is_s3(uri):
        return artifacts.local_path(uri).exists()
    return artifacts.exists(uri) or bool(_s3_folder(uri)[2])


@contextlib.contextmanager
def _fetched(step: str, uri: str, what: str) -> Iterator[tuple[Path, list[str] | None]]:
    """A local copy of the input: (the file, None), or (the folder, its data files' relative paths)."""
    if not artifacts.is_s3(uri):
        path = artifacts.local_path(uri)
        if not path.exists():
            raise ComponentError(
                step, f"{what} not found at {uri}", "check the path or URI; run the upstream step first"
            )
        yield (path, _local_files(path)) if path.is_dir() else (path, None)
        return
    if artifacts.exists(uri):
        with artifacts.fetched(uri) as path:
            yield path, None
        return
    bucket, prefix, relative = _s3_folder(uri)
    client = artifacts.s3_client()
    if not relative:
        raise ComponentError(
            step, f"{what} not found at {uri} (no object, and no data files under it)", "check the path or URI"
        )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in relative:
            if not (root / name).resolve().is_relative_to(root.resolve()):  # _s3_folder refused these already
                raise ComponentError(step, f"{what}: key {prefix + name!r} leaves the download folder", "rename it")
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, prefix + name, str(root / name))
        yield root, relative


def _digest(root: Path, files: list[str] | None) -> str:
    if files is None:
        return artifacts.sha256_file(root)
    digest = hashlib.sha256()
    for name in files:
        digest.update(f"{name}\0{artifacts.sha256_file(root / name)}\n".encode())
    return digest.hexdigest()


def _dataset(root: Path, files: list[str] | None) -> ds.Dataset:
    """The Parquet file or folder as one pyarrow dataset (a folder's hive keys as columns)."""
    import pyarrow.dataset as ds

    if files is None:
        return ds.dataset(root, format="parquet")
    # the partition keys as the text of their path (month=07 is "07"), never typed by discovery
    keys = sorted({part.split("=", 1)[0] for name in files for part in name.split("/")[:-1] if "=" in part})
    return ds.dataset(
        [str(root / name) for name in files],
        format="parquet",
        partitioning=ds.partitioning(pa.schema([(key, pa.string()) for key in keys]), flavor="hive"),
        partition_base_dir=str(root),
    )


def _unreadable(
    step: str, uri: str, what: str, root: Path, files: list[str] | None, error: Exception
) -> ComponentError:
    return ComponentError(
        step,
        f"{what} at {uri} is not a readable {'CSV' if root.suffix == '.csv' else 'Parquet'} "
        f"{'file' if files is None else 'dataset'} ({error})",
        "export the dataset as Parquet (pandas: DataFrame.to_parquet) into one file or a folder of Parquet files",
    )


def _read_table(
    step: str, uri: str, what: str, root: Path, files: list[str] | None, columns: list[str] | None
) -> pd.DataFrame:
    if files is None and root.stat().st_size == 0:
        raise ComponentError(
            step,
            f"{what} at {uri} is an empty file (0 bytes)",
            "the upstream export was cut short: re-run it and check its log",
        )
    if files == []:
        raise ComponentError(step, f"{what} at {uri} is a folder with no data files", "check the path or URI")
    try:
        if files is None and root.suffix == ".csv":
            frame = pd.read_csv(root, usecols=columns)
        else:
            frame = _dataset(root, files).to_table(columns=columns).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as error:
        raise _unreadable(step, uri, what, root, files, error) from error
    if frame.empty:
        raise ComponentError(
            step, f"{what} at {uri} has no rows", "the upstream extract selected nothing: check its window"
        )
    return frame


def utc_microseconds(
    series: pd.Series, *, column: str, timezone: str | None, step: str, csv: bool = False
) -> pd.Series:
    """`series` as `datetime64[us, UTC]`, whatever unit and zone it came in (see the module doc)."""
    if csv and (pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)):
        try:
            series = pd.to_datetime(series, format="ISO8601")
        except (ValueError, TypeError) as error:
            raise ComponentError(
                step,
                f"timestamp column '{column}' holds text that is not ISO 8601 ({error})",
                "write times as 2026-12-01T08:30:00Z",
            ) from error
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        utc = series.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(dtype):
        if not timezone:
            raise ComponentError(step, f"timestamp column '{column}' is naive ({dtype}: no time zone)", NAIVE_FIX)
        try:
            utc = series.dt.tz_localize(timezone, ambiguous="raise", nonexistent="raise").dt.tz_convert("UTC")
        except Exception as error:  # pytz's ambiguous/non-existent time errors and zoneinfo's KeyError
            raise ComponentError(
                step,
                f"timestamp column '{column}' cannot be localized in {timezone!r} ({type(error).__name__}: {error})",
                "set materialize.timezone to an IANA zone name (Europe/Amsterdam), or write timezone-aware UTC "
                "(times in a DST change are ambiguous in local time)",
            ) from error
    else:
        raise ComponentError(
            step,
            f"timestamp column '{column}' is {dtype}, not a timestamp",
            f"write '{column}' as a timestamp (pandas: pd.to_datetime(frame['{column}'], utc=True); for epoch "
            "numbers give their unit, unit='s'), timezone-aware UTC, "
            "or name another column in materialize.timestamp_column",
        )
    return utc.dt.floor("us").astype(UTC_US)


def load_raw(
    uri: str,
    *,
    timestamp_column: str | None,
    timezone: str | None,
    step: str,
    columns: Sequence[str] | None = None,
    what: str = "raw dataset",
) -> RawData:
    """Read the raw data once: the frame (timestamps normalized) and the digest of the bytes parsed.
    A frame without `timestamp_column` (or with None: validate checks the data as written) is
    returned as read: the caller's column checks name what is missing."""
    with _fetched(step, uri, what) as (root, files):
        digest = _digest(root, files)
        frame = _read_table(step, uri, what, root, files, list(columns) if columns is not None else None)
        csv = files is None and root.suffix == ".csv"
    if timestamp_column is not None and timestamp_column in frame.columns:
        frame[timestamp_column] = utc_microseconds(
            frame[timestamp_column], column=timestamp_column, timezone=timezone, step=step, csv=csv
        )
    return RawData(frame=frame, digest=digest, files=tuple(files) if files is not None else (Path(uri).name,))


def read_raw(
    uri: str, *, timestamp_column: str, timezone: str | None, step: str, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The raw data at `uri` (file, folder or hive dataset; local or s3://), its timestamp column
    as `datetime64[us, UTC]`; every way it is unusable is a permanent ComponentError."""
    return load_raw(uri, timestamp_column=timestamp_column, timezone=timezone, step=step, columns=columns).frame


def raw_digest(uri: str, *, step: str = "raw_data") -> str:
    """The sha256 of the raw data at `uri`: a file's bytes, or a folder's sorted (path, sha256) list."""
    with _fetched(step, uri, "raw dataset") as (root, files):
        return _digest(root, files)


def read_recorded(
    step: str,
    uri: str,
    what: str,
    name: str,
    *,
    timestamp_column: str | None,
    timezone: str | None,
    expected: str = "",
) -> tuple[pd.DataFrame, DatasetRecord]:
    """lineage.read_dataset for raw data: the frame as read_raw returns it and its lineage record.
    A DVC pointer is read as lineage reads it (its md5 checked), then its timestamps normalized."""
    from components import lineage

    if uri.endswith(".dvc"):
        frame, record = lineage.read_dataset(step, uri, what, name, expected=expected)
        if timestamp_column is not None and timestamp_column in frame.columns:
            frame[timestamp_column] = utc_microseconds(
                frame[timestamp_column], column=timestamp_column, timezone=timezone, step=step
            )
        return frame, record
    raw = load_raw(uri, timestamp_column=timestamp_column, timezone=timezone, step=step, what=what)
    record = lineage.describe(uri, raw.frame, name, sha256=raw.digest)
    if expected and lineage.digest_word(record) != expected:
        raise ComponentError(
            step,
            f"{what} at {uri} changed during the run: an earlier step read {expected[:19]}, this one "
            f"{lineage.digest_word(record)[:19]}",
            "something rewrote the data mid-run; write each extract to a new URI (or a lakeFS commit) and run again",
        )
    return raw.frame, record


@contextlib.contextmanager
def raw_dataset(step: str, uri: str, what: str) -> Iterator[tuple[str, ds.Dataset, tuple[str, ...]] | None]:
    """The raw Parquet data at `uri` as a pyarrow dataset to scan in batches: (its digest, the
    dataset, the files), or None for a `.csv` file (read it whole). The refusals of `read_raw`,
    in its words, for what fails while the caller scans it too."""
    with _fetched(step, uri, what) as (root, files):
        if files is None and root.suffix == ".csv":
            yield None
            return
        if (files is None and root.stat().st_size == 0) or files == []:
            _read_table(step, uri, what, root, files, None)  # raises the read's refusal (empty file, no files)
        try:
            dataset = _dataset(root, files)
            yield _digest(root, files), dataset, tuple(files) if files is not None else (Path(uri).name,)
        except (pa.ArrowException, OSError) as error:
            raise _unreadable(step, uri, what, root, files, error) from error


BATCH_ROWS = 500_000
"""Rows per batch when raw data is copied out of core (`normalized_copy`)."""


def normalized_copy(
    step: str, uri: str, what: str, target: Path, *, timestamp_column: str, timezone: str | None
) -> tuple[str, int, dict[str, str]] | None:
    """Copy the raw Parquet data at `uri` into the one file `target`, BATCH_ROWS rows at a time,
    its timestamp column normalized as `read_raw` does (`utc_microseconds`, batch by batch); the
    other columns keep their Arrow types. Returns (the digest, the rows, the pandas dtypes a
    reader of the whole data gets), or None for input it does not stream (a `.csv` file: the
    caller reads it whole). The same refusals as `read_raw`, in the same words."""
    import pyarrow.parquet as pq

    with _fetched(step, uri, what) as (root, files):
        if files is None and root.suffix == ".csv":
            return None
        if files is None and root.stat().st_size == 0:
            _read_table(step, uri, what, root, files, None)  # refuses the empty file, as a read does
        if files == []:
            _read_table(step, uri, what, root, files, None)
        digest = _digest(root, files)
        rows, nulls = 0, set()
        try:
            dataset = _dataset(root, files)
            writer: pq.ParquetWriter | None = None
            for batch in bounded_batches(dataset, batch_size=BATCH_ROWS):
                if not batch.num_rows:
                    continue
                batch = _normalized(step, batch, timestamp_column, timezone)
                writer = writer or pq.ParquetWriter(target, batch.schema)
                writer.write_batch(batch)
                rows += batch.num_rows
                nulls |= {
                    name for name, column in zip(batch.schema.names, batch.columns, strict=True) if column.null_count
                }
            if writer is not None:
                writer.close()
        except (pa.ArrowException, OSError, ValueError) as error:
            raise _unreadable(step, uri, what, root, files, error) from error
        if not rows:
            raise ComponentError(
                step, f"{what} at {uri} has no rows", "the upstream extract selected nothing: check its window"
            )
        return digest, rows, _pandas_dtypes(pq.read_schema(target), nulls)


def _normalized(step: str, batch: pa.RecordBatch, column: str, timezone: str | None) -> pa.RecordBatch:
    if column not in batch.schema.names:
        return batch  # the contract names the missing column
    index = batch.schema.get_field_index(column)
    times = utc_microseconds(batch.column(index).to_pandas(), column=column, timezone=timezone, step=step)
    return batch.set_column(index, column, pa.Array.from_pandas(times))


def _pandas_dtypes(schema: pa.Schema, nulls: set[str]) -> dict[str, str]:
    """What `to_pandas` of the whole data gives: an integer column with nulls is float64, a
    boolean one object."""
    dtypes = {str(c): str(t) for c, t in schema.empty_table().to_pandas().dtypes.items()}
    for name in nulls:
        if dtypes.get(name, "").startswith(("int", "uint")):
            dtypes[name] = "float64"
        elif dtypes.get(name) == "bool":
            dtypes[name] = "object"
    return dtypes
