"""The data steps beside their floors (issue 33 item 3), measured in the same run on the same data.

- **validate** against a pyarrow computation of the same checks: the suite's expectations read from
  the pipeline's own suite file (not a copy), each computed with pyarrow.compute on the table read
  whole. The floor's verdict for every expectation must equal the step's (the step's report lists its
  failures), or the run stops: a floor that checks something else measures nothing.
  Goal: validate within 2x the floor.
- **materialize** against the join and the online write, each measured alone on the store the step
  just wrote: the point-in-time join is the step's own DuckDB ASOF JOIN query (generated from the Feast
  views, components/steps/point_in_time.py) executed alone, with no input copy, contract check,
  registry apply or set writing; the online write is the columnar writer rewriting the same rows for
  every online view. Goal: materialize within 3x their sum.

Each step runs in a fresh interpreter of its own (benchmarks/bench.py: StepProcesses); the floors run
in this process after them, with the libraries already imported. Data generation is not counted.

    .venv/bin/python benchmarks/floors_bench.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    import pyarrow as pa

    from components.config import PipelineConfig

GOALS = {"validate": 2.0, "materialize": 3.0}
"""Issue 33: the most a step may take, as a multiple of its floor."""


def _generate(rows: int, seed: int, path: Path) -> None:
    from pipelines.fraud.data import generate

    generate(rows, seed).to_parquet(path, index=False)


def _numpy_name(kind: pa.DataType) -> str:
    """The dtype name pandas gives a column of this Arrow type (what GX's type expectations read)."""
    import numpy as np

    return np.dtype(kind.to_pandas_dtype()).name


def _within(value: float, kwargs: dict[str, Any]) -> bool:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    return (low is None or value >= low) and (high is None or value <= high)


def expectation_holds(table: pa.Table, kind: str, kwargs: dict[str, Any]) -> bool:
    """One expectation computed with pyarrow (nulls ignored where GX ignores them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind == "expect_table_row_count_to_be_between":
        return _within(table.num_rows, kwargs)
    if kind == "expect_column_to_exist":
        return kwargs["column"] in table.column_names
    if kwargs["column"] not in table.column_names:
        return False  # GX fails every expectation on a column that is not there
    values = table.column(kwargs["column"])
    present = values.drop_null()
    if kind == "expect_column_values_to_not_be_null":
        return values.null_count == 0
    if kind == "expect_column_values_to_be_unique":
        return bool(pc.count_distinct(present).as_py() == len(present))
    if kind == "expect_column_values_to_be_in_type_list":
        return _numpy_name(values.type) in kwargs["type_list"]
    if kind == "expect_column_values_to_be_of_type":
        wanted = kwargs["type_"]
        return pa.types.is_timestamp(values.type) if wanted == "Timestamp" else _numpy_name(values.type) == wanted
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        outside = [pc.less(present, low)] if low is not None else []
        outside += [pc.greater(present, high)] if high is not None else []
        return not any(pc.any(test).as_py() is True for test in outside)
    if kind == "expect_column_values_to_be_in_set":
        return bool(pc.all(pc.is_in(present, value_set=pa.array(kwargs["value_set"], type=present.type))).as_py())
    if kind == "expect_column_mean_to_be_between":
        return _within(pc.mean(present).as_py(), kwargs)
    raise SystemExit(f"floors_bench: the suite's {kind} has no pyarrow form here; add one to expectation_holds")


def validate_floor(raw: Path, suite: dict[str, Any]) -> tuple[float, int]:
    """Seconds to read the data and compute every expectation with pyarrow; the number that failed."""
    import pyarrow.parquet as pq

    started = time.perf_counter()
    table = pq.read_table(raw)
    failed = sum(not expectation_holds(table, entry["type"], entry["kwargs"]) for entry in suite["expectations"])
    return time.perf_counter() - started, failed


def materialize_floor(cfg: PipelineConfig, store_dir: Path, offline: str) -> dict[str, float]:
    """The step's point-in-time join alone and its online write alone, on the store it wrote."""
    from components.duckdb_session import connect
    from components.platform import online_writer
    from components.steps import point_in_time
    from components.steps.materialize import open_store

    settings = cfg.materialize
    store = open_store(settings.project, str(store_dir))
    joins = point_in_time.view_joins(store, settings.feature_service)
    if joins is None:
        raise SystemExit("floors_bench: the fraud service's views are not plain file sources; no DuckDB join")
    query = point_in_time.joined_query(offline, [(view, view.path) for view in joins], settings, None)
    with connect() as db:
        started = time.perf_counter()
        db.execute(f"CREATE TABLE joined AS {query}")
        join = time.perf_counter() - started
    first, last = point_in_time.time_range(offline, settings.timestamp_column)
    views = [view for view in store.list_feature_views() if view.online]
    started = time.perf_counter()
    for view in views:
        online_writer.materialize_view(store, view, _moment(first), _after(last))
    return {"join": join, "online_write": time.perf_counter() - started}


def _moment(value: Any) -> datetime:
    import pandas as pd

    moment: datetime = pd.Timestamp(value).to_pydatetime()
    return moment


def _after(value: Any) -> datetime:
    """The end of a write interval that includes `value` (materialize adds one microsecond too)."""
    return _moment(value) + timedelta(microseconds=1)


def _config(rows: int, seed: int) -> PipelineConfig:
    from pipelines.fraud import pipeline as fraud

    return fraud.DECLARATION.config().with_overrides({"data.rows": rows, "data.seed": seed})


def measure(rows: int, seed: int, root: Path) -> dict[str, Any]:
    """Both steps in fresh processes, then their floors; every figure in seconds."""
    from bench import StepProcesses  # this folder's bench.py, as bench_stack is imported

    from components.steps.materialize import materialize
    from components.steps.validate import load_suite, validate
    from pipelines.fraud import pipeline as fraud

    cfg, folder, raw = _config(rows, seed), fraud.DECLARATION.folder, root / "raw.parquet"
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(_generate, (rows, seed, raw))
    suite_path = folder / cfg.validate_.suite
    run = StepProcesses()
    run.timed("validate", partial(validate, str(raw), str(suite_path), str(root / "report.json")))
    step_failed = len(json.loads((root / "report.json").read_text())["failed_expectations"])
    store_dir, offline = root / "store", str(root / "offline" / "fraud_events.parquet")
    sets = (str(root / "train.parquet"), str(root / "holdout.parquet"))
    repo = str(folder / cfg.materialize.feature_repo)
    located = partial(materialize, store_dir=str(store_dir), offline_uri=offline)
    run.timed("materialize", partial(located, str(raw), repo, *sets, settings=cfg.materialize))
    floor_seconds, floor_failed = validate_floor(raw, load_suite(str(suite_path)))
    if floor_failed != step_failed:
        raise SystemExit(f"floors_bench: the pyarrow floor failed {floor_failed} expectations, the step {step_failed}")
    parts = materialize_floor(cfg, store_dir, offline)
    return {
        "rows": rows,
        "validate": {"step": run.times["validate"]["seconds"], "floor": floor_seconds},
        "materialize": {"step": run.times["materialize"]["seconds"], "floor": sum(parts.values()), **parts},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlops-bench-floors-") as tmp:
        figures = measure(args.rows, args.seed, Path(tmp))
    print(f"\nthe data steps beside their floors, {args.rows:,} rows (seconds)")
    print(f"  {'step':<12} {'step':>8} {'floor':>8} {'ratio':>7}  goal")
    for name, goal in GOALS.items():
        step, floor = figures[name]["step"], figures[name]["floor"]
        ratio = step / max(floor, 1e-9)
        verdict = "met" if ratio <= goal else "MISSED"
        print(f"  {name:<12} {step:8.2f} {floor:8.2f} {ratio:6.1f}x  <= {goal:.0f}x {verdict}")
    parts = figures["materialize"]
    print(f"  (materialize's floor: the join {parts['join']:.2f} s + the online write {parts['online_write']:.2f} s)")
    print(json.dumps(figures, default=lambda value: round(value, 3) if isinstance(value, float) else value))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
