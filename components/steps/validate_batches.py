"""validate in bounded batches (issue 33): the GX suite on BATCH_ROWS rows at a time, the results
combined into what one run on the whole data gives.

How each expectation combines:
- the column-map ones (values between, in a set, not null; a type list checked per value) count
  per row: the unexpected, missing and element counts add up, the percentages are recomputed
  from the sums, the sample values are the first batches' (GX's 20);
- the ones read from the column's type or the schema (a dtype, a column's existence) give the
  same answer on every batch, because each batch is converted to the dtypes of the whole data
  (an integer column with a null anywhere is float64 in every batch, as one frame would be);
- the whole-table ones are not GX's per batch but computed on the whole data in DuckDB, which
  streams the same Arrow dataset: the row count, a column's mean (`expect_column_mean_to_be_between`)
  and uniqueness (`expect_column_values_to_be_unique`, `expect_compound_columns_to_be_unique`),
  with GX's rules for their verdict (bounds, `strict_min`/`strict_max`, nulls ignored). GX runs
  the whole suite once on no rows (the first batch's columns and dtypes), for the shape and order
  of the results and its own answer where a column is missing; the batches run the suite without
  them (`per_batch_suite`), since GX's per-batch mean and uniqueness would be thrown away (its mean
  walks every value in Python looking for decimals: 0.65 s of GX's 1.95 s on a 1M-row batch). The
  sample values of a uniqueness failure are the first 20 rows whose key is duplicated anywhere.
A suite with any other expectation runs on the whole data, in memory, as before (`SUPPORTED`).
tests/components/test_validate_batches.py compares each expectation's verdict and figures with
the whole-frame run on good and bad data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from components.arrow_batches import bounded_batches, full_batches

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

__all__ = ["BATCH_ROWS", "SUPPORTED", "combined_results", "per_batch_suite", "supported"]

BATCH_ROWS = 1_000_000
PER_ROW = {
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_be_of_type",
}
SAME_ON_EVERY_BATCH = {"expect_column_to_exist"}
WHOLE_TABLE = {
    "expect_table_row_count_to_be_between",
    "expect_column_mean_to_be_between",
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
}
SUPPORTED = PER_ROW | SAME_ON_EVERY_BATCH | WHOLE_TABLE
PARTIAL = 20


def supported(suite: dict[str, Any]) -> bool:
    return all(entry.get("type") in SUPPORTED for entry in suite["expectations"])


def per_batch_suite(suite: dict[str, Any]) -> dict[str, Any] | None:
    """The suite the batches after the first run: without the whole-table expectations, which
    are computed on all the rows instead; None where nothing would be left to run."""
    kept = [entry for entry in suite["expectations"] if entry.get("type") not in WHOLE_TABLE]
    return {**suite, "expectations": kept} if kept else None


def _key(result: dict[str, Any]) -> str:
    config = result["expectation_config"]
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    return json.dumps([config["type"], kwargs], sort_keys=True, default=str)


def _frames(dataset: ds.Dataset) -> Iterator[pd.DataFrame]:
    """The dataset in BATCH_ROWS-row frames, each with the dtypes one frame of it all would have."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # a null changes the pandas dtype of an integer column (float64) and of a boolean one (object)
    # only: the first pass reads those columns alone
    typed = [f.name for f in dataset.schema if pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)]
    nullable = set()
    for batch in bounded_batches(dataset, batch_size=BATCH_ROWS, columns=typed) if typed else []:
        nullable |= {name for name, column in zip(batch.schema.names, batch.columns, strict=True) if column.null_count}
    for batch in full_batches(dataset, batch_size=BATCH_ROWS):
        if not batch.num_rows:
            continue
        columns = []
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if name in nullable and pa.types.is_integer(column.type):
                column = pc.cast(column, pa.float64())
            columns.append(column)
        frame = pa.RecordBatch.from_arrays(columns, names=batch.schema.names).to_pandas()
        for name in nullable:
            if pa.types.is_boolean(batch.schema.field(name).type):
                frame[name] = frame[name].astype(object)
        yield frame


def _add(total: dict[str, Any], result: dict[str, Any]) -> None:
    outcome, into = result.get("result") or {}, total.setdefault("result", {})
    total["success"] = total.get("success", True) and result["success"]
    if not total.get("exception_info", {}).get("raised_exception"):
        total["exception_info"] = result.get("exception_info") or {}
    if "unexpected_count" not in outcome:
        if "observed_value" in outcome and ("observed_value" not in into or not result["success"]):
            into["observed_value"] = outcome["observed_value"]
        return
    for key in ("element_count", "unexpected_count", "missing_count"):
        if key in outcome:  # not_be_null has no missing count: its nulls are the unexpected
            into[key] = into.get(key, 0) + int(outcome[key] or 0)
    samples = into.setdefault("partial_unexpected_list", [])
    samples.extend(outcome.get("partial_unexpected_list") or [])
    del samples[PARTIAL:]
    counted = into.get("element_count", 0) - into.get("missing_count", 0)
    into["unexpected_percent"] = 100.0 * into["unexpected_count"] / counted if counted else 0.0


def _within(value: float | None, kwargs: dict[str, Any]) -> bool:
    """GX's bounds rule: min_value and max_value inclusive unless strict_min/strict_max; None: no bound."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None and (value < low or (kwargs.get("strict_min") and value == low)):
        return False
    return not (high is not None and (value > high or (kwargs.get("strict_max") and value == high)))


def _whole_table(
    entry: dict[str, Any], query: Callable[[str], list[tuple[Any, ...]]], columns: set[str], rows: int
) -> dict[str, Any]:
    """One whole-table expectation's result, in GX's shape, from aggregates on all the rows."""
    from components.duckdb_session import quote

    kind, kwargs = entry["expectation_config"]["type"], entry["expectation_config"]["kwargs"]
    result = {**entry, "exception_info": entry.get("exception_info") or {}}
    if kind == "expect_table_row_count_to_be_between":
        return {**result, "success": _within(rows, kwargs), "result": {"observed_value": rows}}
    names = kwargs.get("column_list") or [kwargs.get("column")]
    if not set(names) <= columns:
        return entry  # GX's own answer: the column is missing
    if kind == "expect_column_mean_to_be_between":
        ((mean,),) = query(f"SELECT avg({quote(names[0])}::DOUBLE) FROM data")
        return {**result, "success": _within(mean, kwargs), "result": {"observed_value": mean}}
    keys = ", ".join(quote(name) for name in names)
    present = " AND ".join(f"{quote(name)} IS NOT NULL" for name in names)
    if kind == "expect_compound_columns_to_be_unique":  # GX's ignore_row_if: all_values_are_missing
        present = " OR ".join(f"{quote(name)} IS NOT NULL" for name in names)
    duplicated = f"SELECT {keys} FROM data WHERE {present} GROUP BY {keys} HAVING count(*) > 1"
    ((unexpected, missing),) = query(
        f"SELECT coalesce(sum(n), 0), (SELECT count(*) FROM data WHERE NOT ({present})) FROM"
        f" (SELECT count(*) AS n FROM data WHERE {present} GROUP BY {keys} HAVING count(*) > 1)"
    )
    samples: list[Any] = []
    if unexpected:
        same = " AND ".join(f"d.{quote(name)} IS NOT DISTINCT FROM u.{quote(name)}" for name in names)
        picked = ", ".join(f"d.{quote(name)}" for name in names)
        found = query(f"SELECT {picked} FROM data AS d JOIN ({duplicated}) AS u ON {same} LIMIT {PARTIAL}")
        pairs = [dict(zip(names, row, strict=True)) for row in found]
        samples = [row[0] for row in found] if len(names) == 1 else pairs
    nonmissing = rows - int(missing)
    outcome = {
        "element_count": rows,
        "unexpected_count": int(unexpected),
        "missing_count": int(missing),
        "unexpected_percent": 100.0 * int(unexpected) / nonmissing if nonmissing else 0.0,
        "partial_unexpected_list": samples,
    }
    return {**result, "success": not unexpected, "result": outcome}


def combined_results(
    dataset: ds.Dataset,
    run: Callable[[pd.DataFrame], list[dict[str, Any]]],
    per_batch: Callable[[pd.DataFrame], list[dict[str, Any]]] | None,
) -> tuple[list[dict[str, Any]], int, dict[str, str]]:
    """The whole suite (`run`) on none of the first batch's rows, `per_batch` (`per_batch_suite`'s;
    None where it is empty) on every batch, and the whole-table expectations on all the rows,
    combined in GX's order: the results, the rows and the pandas dtypes of the whole data."""
    from components.duckdb_session import connect

    totals: dict[str, dict[str, Any]] = {}
    rows, columns, dtypes = 0, set(dataset.schema.names), dict[str, str]()
    for frame in _frames(dataset):
        if not rows:
            for template in run(frame.iloc[:0]):
                whole = template["expectation_config"]["type"] in WHOLE_TABLE
                totals[_key(template)] = template if whole else {"expectation_config": template["expectation_config"]}
        rows += len(frame)
        dtypes = dtypes or {str(c): str(t) for c, t in frame.dtypes.items()}
        for result in per_batch(frame) if per_batch is not None else []:
            _add(totals.setdefault(_key(result), {"expectation_config": result["expectation_config"]}), result)
    if not totals:  # no rows at all: GX on the empty frame, as one read would have
        import pandas as pd

        return run(pd.DataFrame({name: [] for name in dataset.schema.names})), 0, {}
    with connect() as db:
        scanner: pa.RecordBatchReader | ds.Dataset = dataset
        db.register("data", scanner)
        results = [
            _whole_table(total, lambda sql: db.execute(sql).fetchall(), columns, rows)
            if total["expectation_config"]["type"] in WHOLE_TABLE
            else total
            for total in totals.values()
        ]
    return results, rows, dtypes
