"""The XGBoost train step's data, read from the Parquet training set in bounded batches (issue 33).

Before this module the train step read the whole set (or a worker's whole shard) into pandas,
turned it into one float32 matrix and built an `xgb.QuantileDMatrix` from that: the float frame,
the matrix and the quantized matrix were all in memory at once. Now:

- the checks read only what they need: the schema (every feature present and numeric) and the
  label column alone (the label checks, the label totals and the labels XGBoost is given, 4
  bytes a row as float32);
- the features reach XGBoost through an `xgboost.DataIter` that reads `batch_rows` rows at a
  time from the Parquet file (this worker's rows only: the row groups holding them, cut to its
  bounds), so at most one batch is ever held as Arrow and float32;
- XGBoost builds its quantized matrix (one byte a value with the default 256 bins) from those
  batches, sketching the quantiles batch by batch and merging the sketches;
- the other kinds (pytorch_mlp, LightGBM, scikit-learn) still train on one float32 matrix in
  memory (the MLP's epochs shuffle over every row), now filled batch by batch (`read_matrix`)
  with no pandas frame beside it: the same values and layout, so the same model bytes.

A set that fits in one batch gives the same model bytes as the in-memory path (one batch is
what XGBoost's own single-matrix path feeds itself). Across batches XGBoost merges per-batch
quantile sketches, which may place a bin cut elsewhere; on the CPU, with xgboost 3.2.0, it was
measured not to: the same model bytes at every batch size tried (997 to 20,000 rows on the test
set, 250k and 1M on the 8M-row fraud set). tests/components/test_train_bounded.py holds the step
to a stated tolerance and, separately, to that measured fact.

Measured 2026-12-06 (the fraud training set of a 10M-row run, 8M rows and 6 features, 200 rounds;
the train step alone in a fresh process, peak RSS by /usr/bin/time; load average 4 to 5, so the
seconds are not comparable): peak RSS 1,253 MB with 1M-row batches, 1,138 MB with 250k, against
2,359 MB for the whole-frame path it replaced; at 800k rows 581 MB, 546 MB and 622 MB. Growth:
about 98 bytes a training row (XGBoost's quantized matrix and its per-row training state:
gradients, predictions, row partitions), over about 0.5 GB of imports and one batch. 1M-row
batches are the default (`train.batch_rows`): 250k saves about 10 % for four times the
batches. `ExtMemQuantileDMatrix` (the quantized pages in a disk cache under
`DataIter(cache_prefix=...)`, read back every round; `on_host` concerns the GPU only) was measured
on the same 8M rows: 934 MB against 1,065 MB for the in-memory QuantileDMatrix built from the same
batches, with 20 rounds taking 34 s against 6 to 16 s: it saves only the quantized matrix, not the
per-row state, so the in-memory QuantileDMatrix is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components.config import TrainSettings
from components.errors import ComponentError
from components.steps.distributed import World, shard_bounds

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import xgboost as xgb

__all__ = [
    "BATCH_ROWS",
    "ParquetShard",
    "batches",
    "data_window",
    "feature_matrix",
    "not_numeric",
    "open_shard",
    "quantile_matrix",
    "read_matrix",
]

STEP = "train"
BATCH_ROWS: int = TrainSettings.model_fields["batch_rows"].default
"""`train.batch_rows`'s default: about 50 MB of Arrow and 24 MB of float32 for the fraud set's 6 features."""


@dataclass(frozen=True)
class ParquetShard:
    """This worker's rows of a Parquet training set: `rows` rows from the row groups `groups`,
    after skipping the first `skip` rows of the first of them."""

    path: Path
    groups: tuple[int, ...]
    skip: int
    rows: int

    def empty_frame(self) -> pd.DataFrame:
        """The set's columns with the pandas dtypes a reader of the whole file would get."""
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.path).schema_arrow.empty_table().to_pandas()

    def column(self, name: str) -> pd.Series:
        """One column of this shard (at least one row), read alone: the label."""
        (table,) = batches(self, [name], self.rows)
        return table.to_pandas()[name]


def open_shard(path: Path, uri: str, world: World, what: str) -> ParquetShard:
    """The row groups of `path` (fetched from `uri`) that hold this worker's rows; every way the
    file can be unusable is the ComponentError the in-memory reader raised."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.is_file() and path.stat().st_size == 0:
        raise ComponentError(
            STEP,
            f"{what} at {uri} is an empty file (0 bytes)",
            "the upstream export was cut short: re-run it and check its log",
        )
    try:
        metadata = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as error:
        raise ComponentError(
            STEP,
            f"{what} at {uri} is not a readable Parquet file ({error})",
            "export the dataset as Parquet (pandas: DataFrame.to_parquet) and point the step at it",
        ) from error
    if metadata.num_rows == 0:
        raise ComponentError(
            STEP, f"{what} at {uri} has no rows", "the upstream extract selected nothing: check its window"
        )
    start, stop = shard_bounds(metadata.num_rows, world)
    if stop <= start:
        raise ComponentError(
            STEP,
            f"worker {world.rank} of {world.size} got no rows of {what} ({uri})",
            "use fewer workers than the training set has rows",
        )
    groups: list[int] = []
    offset = first = 0
    for index in range(metadata.num_row_groups):
        rows = metadata.row_group(index).num_rows
        if offset + rows > start and offset < stop:
            if not groups:
                first = offset
            groups.append(index)
        offset += rows
    return ParquetShard(path, tuple(groups), start - first, stop - start)


def batches(shard: ParquetShard, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
    """The shard's `columns`, `batch_rows` rows at a time (the last batch may be shorter); the
    reader's own record batches never cross a row group, so they are gathered up to the size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    parquet = pq.ParquetFile(shard.path)
    skip, left = shard.skip, shard.rows
    schema = pa.schema([parquet.schema_arrow.field(name) for name in columns])
    pending: list[pa.RecordBatch] = []
    held = 0
    stream = parquet.iter_batches(batch_size=min(batch_rows, 65_536), row_groups=list(shard.groups), columns=columns)
    for record in stream:
        if skip:
            dropped = min(skip, record.num_rows)
            record, skip = record.slice(dropped), skip - dropped
        record = record.slice(0, left)
        left -= record.num_rows
        if record.num_rows:
            pending.append(record)
            held += record.num_rows
        while held >= batch_rows:
            table = pa.Table.from_batches(pending, schema=schema).combine_chunks()
            yield table.slice(0, batch_rows)
            rest = table.slice(batch_rows)
            pending, held = rest.to_batches(), rest.num_rows
        if left == 0:
            break
    if held:
        yield pa.Table.from_batches(pending, schema=schema).combine_chunks()


def feature_matrix(table: pa.Table, features: list[str]) -> np.ndarray:
    """The batch's features as float32, each column converted as pandas' `to_numpy(float32)`
    converts it (nulls as NaN, integers and booleans by value), so the values are the same."""
    matrix = np.empty((table.num_rows, len(features)), dtype=np.float32)
    for index, name in enumerate(features):
        values = table.column(name).to_numpy()
        if values.dtype == object:  # booleans with nulls: pandas reads them as objects
            raise not_numeric({name: "object"})
        matrix[:, index] = values
    return matrix


def read_matrix(shard: ParquetShard, features: list[str], batch_rows: int) -> np.ndarray:
    """The shard's features as one float32 matrix, filled batch by batch, for the kinds that
    train on a matrix in memory (4 bytes a value, never a pandas frame beside it). Column-major,
    as pandas' `to_numpy` gives it, so a reduction over it (the MLP's scaling) sums in the same
    order and gives the same bits."""
    matrix = np.empty((len(features), shard.rows), dtype=np.float32).T
    offset = 0
    for table in batches(shard, features, batch_rows):
        matrix[offset : offset + table.num_rows] = feature_matrix(table, features)
        offset += table.num_rows
    return matrix


def not_numeric(dtypes: dict[str, str]) -> ComponentError:
    """The refusal of feature columns that are not numbers (their names and dtypes)."""
    return ComponentError(
        STEP,
        f"feature column(s) {list(dtypes)} are not numeric ({', '.join(f'{c}: {t}' for c, t in dtypes.items())})",
        "encode them as numbers upstream (e.g. category codes) or drop them from the features",
    )


def quantile_matrix(
    shard: ParquetShard, labels: np.ndarray, features: list[str], batch_rows: int = BATCH_ROWS
) -> xgb.QuantileDMatrix:
    """XGBoost's quantized training matrix, built from the shard's batches (`labels`: the shard's
    labels, as float32, in row order)."""
    import xgboost as xgb

    class ParquetBatches(xgb.DataIter):
        """Feeds XGBoost one batch per `next`; `reset` starts the file again (XGBoost reads it
        several times: once for the shape, once for the sketch, once to quantize)."""

        def __init__(self) -> None:
            super().__init__(release_data=True)
            self._stream: Iterator[pa.Table] | None = None
            self._offset = 0

        def next(self, input_data: Any) -> bool:
            if self._stream is None:
                self._stream = batches(shard, features, batch_rows)
            table = next(self._stream, None)
            if table is None:
                return False
            stop = self._offset + table.num_rows
            input_data(data=feature_matrix(table, features), label=labels[self._offset : stop], feature_names=features)
            self._offset = stop
            return True

        def reset(self) -> None:
            self._stream, self._offset = None, 0

    return xgb.QuantileDMatrix(ParquetBatches())


def data_window(frame: pd.DataFrame | None, train_set: str) -> list[str] | None:
    """The first and last event time of the training set (of the whole set: a worker's frame is
    its shard, so the leader then reads the time column alone)."""
    if frame is None:
        import pandas as pd
        import pyarrow.parquet as pq

        from components import artifacts

        with artifacts.fetched(train_set) as path:
            schema = pq.read_schema(path)
            columns = [field.name for field in schema if str(field.type).startswith("timestamp")]
            frame = pd.read_parquet(path, columns=columns[:1])
    timestamps = frame.select_dtypes(include=["datetimetz", "datetime"])
    if timestamps.empty:
        return None
    return [timestamps.iloc[:, 0].min().isoformat(), timestamps.iloc[:, 0].max().isoformat()]
