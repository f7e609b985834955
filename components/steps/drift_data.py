"""drift's two inputs with bounded memory (issue 33): a seeded uniform sample of each side, and
the facts about the whole data a sample could miss.

The drift step used to read the current window and the champion's training set whole, so its
peak grew with both. Now each side is a pyarrow dataset scanned BATCH_ROWS rows at a time (one
Parquet file, a folder, a hive dataset; local or s3://, components/raw_data.py), of which it keeps:
- a uniform sample of at most `limit` rows without replacement (the pipeline's
  `drift.sample_rows`, components/drift_settings.py, default SAMPLE_ROWS), drawn in one pass as a
  bottom-k sample: every row gets a key from a
  generator seeded with SEED, the rows with the k smallest keys are the sample, kept in the data's
  order (so the same data gives the same sample). At or under the limit every row is kept and the
  figures are exactly the whole-data ones;
- from the whole data: the row count, each column's count of values (a column empty in the
  window is refused even when a sample would hold one value), and each categorical feature's
  distinct values (a category the reference never saw is named even when it is too rare for a
  sample to hold it).
Evidently's tests run on the samples; the table records both sizes. What a sample changes, and the
tolerance tests/components/test_drift_sampled.py checks (docs/monitoring.md, "Bounded memory"):
- the KS statistic: the sample's empirical distribution lies within eps = sqrt(ln(2/delta) / (2n))
  of the whole data's (Dvoretzky-Kiefer-Wolfowitz; sampling without replacement only tightens it),
  so |D_sample - D_whole| <= eps_reference + eps_current; at n = 1M per side and delta = 1e-6 each,
  at most 0.0054 (KS_TOLERANCE);
- each category's share: within the same eps of the whole data's (Hoeffding), so the
  chi-squared statistic, which grows with the rows compared, is of the sample's size;
- the verdict: the same wherever the drift is clear of the test's detection limit at n rows
  (a KS distance several times 1.36 * sqrt(2/n), 0.0019 at 1M); a smaller shift, which the
  whole 10M rows would call significant, may read as no drift on the sample.
A `.csv` current window (`mlops drift --current file.csv`) is read whole, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.arrow_batches import bounded_batches
from components.drift_settings import SAMPLE_ROWS
from components.errors import ComponentError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

__all__ = [
    "BATCH_ROWS",
    "KS_TOLERANCE",
    "SAMPLE_ROWS",
    "SEED",
    "Window",
    "check_columns",
    "ks_tolerance",
    "read_current",
    "read_window",
    "sample_dataset",
    "statistic",
    "whole",
]

STEP = "drift"
SEED = 33
BATCH_ROWS = 500_000
DELTA = 1e-6
"""The chance, per side, that a sample's distribution lies further than eps from the whole data's."""


def ks_tolerance(reference_sampled: int | None, current_sampled: int | None) -> float:
    """The bound on |D_sample - D_whole| for samples of these sizes (None: the whole side, eps 0)."""
    return sum(math.sqrt(math.log(2 / DELTA) / (2 * n)) for n in (reference_sampled, current_sampled) if n)


KS_TOLERANCE = ks_tolerance(SAMPLE_ROWS, SAMPLE_ROWS)


@dataclass(frozen=True)
class Window:
    """One side of the comparison: the rows compared and what is known of the whole data."""

    frame: pd.DataFrame
    """Every row, or a seeded uniform sample of them."""
    rows: int
    """Rows in the whole data."""
    non_null: dict[str, int]
    """Each column's count of values (not null, not NaN) in the whole data."""
    categories: dict[str, frozenset[Any]]
    """The categorical features' distinct values in the whole data."""

    @property
    def sampled(self) -> int | None:
        """The sample's size, or None when every row is compared."""
        return len(self.frame) if len(self.frame) < self.rows else None


def _categories(values: pd.Series) -> frozenset[Any]:
    return frozenset(v.item() if hasattr(v, "item") else v for v in values.dropna().unique())


def whole(frame: pd.DataFrame, categorical: list[str]) -> Window:
    """A frame already in memory, compared whole."""
    return Window(
        frame=frame,
        rows=len(frame),
        non_null={name: int(frame[name].notna().sum()) for name in frame.columns},
        categories={name: _categories(frame[name]) for name in categorical if name in frame.columns},
    )


def _count_values(column: pa.Array) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc

    count = int(len(column) - column.null_count)
    if pa.types.is_floating(column.type):
        count -= int(pc.sum(pc.is_nan(column)).as_py() or 0)
    return count


def _to_frame(table: pa.Table, nullable: set[str]) -> pd.DataFrame:
    """The sample as pandas types the whole data: an integer column with a null anywhere is float64."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = [
        pc.cast(column, pa.float64()) if name in nullable and pa.types.is_integer(column.type) else column
        for name, column in zip(table.column_names, table.columns, strict=True)
    ]
    return pa.Table.from_arrays(columns, names=table.column_names).to_pandas()


def sample_dataset(
    dataset: ds.Dataset, columns: list[str], categorical: list[str], *, limit: int, seed: int = SEED
) -> Window:
    """A bottom-k sample of at most `limit` rows of `columns`, in one pass of BATCH_ROWS-row batches;
    the whole data's row count, value counts and categorical features' distinct values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    rows, values = 0, dict.fromkeys(columns, 0)
    seen: dict[str, set[Any]] = {name: set() for name in categorical if name in columns}
    held: list[pa.Table] = []
    keys: list[np.ndarray] = []
    threshold, kept = 1.0, 0
    schema = dataset.schema
    for batch in bounded_batches(dataset, columns=columns, batch_size=BATCH_ROWS):
        rows += batch.num_rows
        for name in columns:
            values[name] += _count_values(batch.column(name))
        for name in seen:
            seen[name].update(v for v in pc.unique(batch.column(name).drop_null()).to_pylist() if v == v)
        drawn = rng.random(batch.num_rows)
        chosen = np.flatnonzero(drawn < threshold)  # a row above the k-th smallest key so far never enters
        if not len(chosen):
            continue
        held.append(pa.Table.from_batches([batch.take(pa.array(chosen))]))
        keys.append(drawn[chosen])
        kept += len(chosen)
        if kept >= 2 * limit:
            held, keys, threshold, kept = _reduced(held, keys, limit)
    if kept > limit:
        held, keys, threshold, kept = _reduced(held, keys, limit)
    table = pa.concat_tables(held) if held else schema.empty_table().select(columns)
    nullable = {name for name in columns if values[name] < rows}
    frame = _to_frame(table, nullable)
    categories = {name: frozenset(_as_dtype(frame[name], found)) for name, found in seen.items()}
    return Window(frame=frame, rows=rows, non_null=values, categories=categories)


def _as_dtype(column: pd.Series, found: set[Any]) -> set[Any]:
    """Distinct values as the frame's column holds them (an integer column with nulls reads as float)."""
    return {float(v) for v in found} if column.dtype.kind == "f" else found


def _reduced(
    held: list[pa.Table], keys: list[np.ndarray], limit: int
) -> tuple[list[pa.Table], list[np.ndarray], float, int]:
    """The `limit` rows with the smallest keys, in their order of arrival."""
    import pyarrow as pa

    table = pa.concat_tables(held)
    drawn = np.concatenate(keys)
    index = np.sort(np.argpartition(drawn, limit - 1)[:limit])
    return [table.take(pa.array(index))], [drawn[index]], float(drawn[index].max()), limit


def read_window(
    uri: str, features: list[str] | None, categorical: list[str], *, what: str, limit: int = SAMPLE_ROWS
) -> Window:
    """The data at `uri` (file, folder, hive dataset, DVC pointer; local or s3://) sampled as the
    module says, at most `limit` rows (`drift.sample_rows`): the columns of `features` it holds
    (None: every column)."""
    from components.lineage import data_location
    from components.raw_data import load_raw, raw_dataset

    location = data_location(uri)
    with raw_dataset(STEP, location, what) as opened:
        if opened is None:  # a .csv file: read whole
            frame = load_raw(location, timestamp_column=None, timezone=None, step=STEP, what=what).frame
            return whole(frame, categorical)
        _, dataset, _ = opened
        names = dataset.schema.names
        columns = names if features is None else [name for name in features if name in names]
        window = sample_dataset(dataset, columns, categorical, limit=limit)
    if not window.rows:
        raise ComponentError(
            STEP, f"{what} at {uri} has no rows", "the upstream extract selected nothing: check its window"
        )
    return window


def read_current(uri: str) -> pd.DataFrame:
    """The whole window, every column (a Parquet file, folder or hive dataset, a CSV, or the data a
    DVC pointer names), as written (components/raw_data.py); the step reads it with read_window."""
    from components.lineage import data_location
    from components.raw_data import load_raw

    return load_raw(data_location(uri), timestamp_column=None, timezone=None, step=STEP, what="current data").frame


def check_columns(current: Window, features: list[str], categorical: list[str]) -> None:
    from components.tabular import require_columns

    fix = "compare data of the shape the model scores: the raw dataset the pipeline validates"
    require_columns(STEP, current.frame, features, "the current data", kind="the model's feature(s)", fix=fix)
    unknown = [name for name in categorical if name not in features]
    if unknown:
        raise ComponentError(
            STEP,
            f"drift.categorical_features names {unknown}, which the model does not use (features: {features})",
            "list only the model's features in drift.categorical_features",
        )
    empty = [name for name in features if current.non_null.get(name, 0) == 0]
    if empty:
        raise ComponentError(
            STEP,
            f"feature(s) {empty} have no values in the current window",
            "the extract lost the column's values: check the upstream export",
        )


def statistic(method: str, name: str, reference: Window, current: Window) -> tuple[float | None, list[Any]]:
    """The test statistic Evidently's p-value comes from (Evidently reports only the p-value), on the
    rows compared; a category of the whole current data the whole reference never held makes it
    infinite (None) and is named."""
    from scipy import stats

    ref, cur = reference.frame[name].dropna(), current.frame[name].dropna()
    if method == "ks":
        return float(stats.ks_2samp(ref.to_numpy(), cur.to_numpy()).statistic), []
    known = reference.categories.get(name, _categories(reference.frame[name]))
    found = current.categories.get(name, _categories(current.frame[name]))
    new = sorted(found - known, key=str)
    if new:
        return None, new
    ref_counts, cur_counts = ref.value_counts(), cur.value_counts()
    expected = ref_counts * (len(cur) / len(ref))
    observed = cur_counts.reindex(expected.index, fill_value=0)
    return float((((observed - expected) ** 2) / expected).sum()), []
