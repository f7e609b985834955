"""make bench (materialize engines): Feast's Ray engine on a local Ray beside the single-node engine.

The materialize step on the same synthetic fraud data (pipelines/fraud/data.py) at each size,
once per engine: `materialize.engine: local` (the out-of-core DuckDB join, the baseline, measured
in the same run) and `materialize.engine: ray` (Feast's Ray offline store on a local Ray of
`--cpus` CPUs, started once and not timed). Each prints its wall time and rows per second, and the
Ray engine its ratio to the baseline. The goals: the two engines' train and holdout sets are
equal, row for row, at every size; and equal outside the rows whose entity has another event in
the same second, which Feast's Ray store cannot tell apart (it floors event times to the second,
docs/scale-out.md). Each is printed met or MISSED, with the count of rows that differ and how many
of them are that case; the exit code follows the second. No speed goal is claimed for Ray on one
machine: the table is the price of the option (docs/scale-out.md says when to switch).

Each run is a child process with a time budget (`--budget-seconds`, default 900): a run past it is
stopped and its figure and goal print as "not measured" with the budget named, so `make bench`
always ends (before components/steps/ray_join.py, Feast's quadratic fallback had not finished the
1M-row join in 25 minutes), and a size past the budget skips the larger sizes for that engine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _run(data: Path, out: Path, engine: str) -> float:
    from components.steps.materialize import materialize
    from pipelines.fraud import pipeline as fraud

    settings = fraud.DECLARATION.config().materialize.model_copy(update={"engine": engine})
    repo = REPO / "pipelines" / "fraud" / settings.feature_repo
    started = time.perf_counter()
    materialize(str(data), str(repo), str(out / "train.parquet"), str(out / "holdout.parquet"), settings=settings,
                store_dir=str(out / "store"), offline_uri=str(out / "offline" / "fraud_events.parquet"))  # fmt: skip
    return time.perf_counter() - started


def _child(data: Path, out: Path, engine: str, cpus: int, answer: Any) -> None:
    if engine == "ray":
        from components.ray_settings import RaySettings
        from components.steps.materialize_ray import start_ray

        start_ray(RaySettings(local_cpus=cpus))  # untimed: a cluster is up before a run starts
    answer.put(_run(data, out, engine))


def _timed(data: Path, out: Path, engine: str, cpus: int, budget: float) -> float | None:
    """The engine's wall time in a child process, or None when it ran past `budget` seconds."""
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    child = context.Process(target=_child, args=(data, out, engine, cpus, answer))
    child.start()
    child.join(budget + 120)  # the child's own start (imports, Ray) is not timed
    if child.is_alive():
        child.kill()
        child.join()
        return None
    if child.exitcode != 0:
        raise SystemExit(f"the {engine} engine failed at {out} (exit {child.exitcode})")
    seconds: float = answer.get(timeout=10)
    return seconds if seconds <= budget else None


def _differences(one: Path, other: Path, raw: Path) -> tuple[int, int, int]:
    """(rows compared, rows that differ, of those the rows whose entity has another event in the
    same second: Feast's Ray store floors event times to the second, docs/scale-out.md)."""
    import pandas as pd

    events = pd.read_parquet(raw, columns=["user_id", "event_timestamp"])
    seconds = events.assign(second=events["event_timestamp"].dt.floor("s"))
    shared = seconds[seconds.duplicated(["user_id", "second"], keep=False)]
    crowded = set(zip(shared["user_id"], shared["second"], strict=True))
    compared = differ = same_second = 0
    for name in ("train.parquet", "holdout.parquet"):
        want, have = pd.read_parquet(one / name), pd.read_parquet(other / name)
        if list(want.columns) != list(have.columns) or len(want) != len(have) or not (want.dtypes == have.dtypes).all():
            print(f"  {name}: the sets differ in shape or types", flush=True)
            return len(want), len(want), 0
        unequal = ((want != have) & ~(want.isna() & have.isna())).any(axis=1)
        rows = want[unequal]
        compared += len(want)
        differ += int(unequal.sum())
        keys = zip(rows["user_id"], rows["event_timestamp"].dt.floor("s"), strict=True)
        same_second += sum(key in crowded for key in keys)
    return compared, differ, same_second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="sizes, comma-separated")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--budget-seconds", type=float, default=900.0, help="per engine run; past it: not measured")
    args = parser.parse_args()
    from pipelines.fraud.data import generate

    figures: dict[str, Any] = {}
    goals: list[tuple[str, bool | None]] = []
    over: set[str] = set()
    print(f"{'materialize':<28} {'wall s':>8} {'rows/s':>12} {'vs local':>9}", flush=True)
    for rows in (int(size) for size in args.rows.split(",")):
        with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
            folder = Path(tmp)
            data = folder / "raw.parquet"
            generate(rows, 7).to_parquet(data, index=False)
            timed: dict[str, float | None] = {}
            for engine, out in (("local", folder / "local"), ("ray", folder / f"ray-{args.cpus}")):
                timed[engine] = None if engine in over else _timed(data, out, engine, args.cpus, args.budget_seconds)
                if timed[engine] is None:
                    over.add(engine)
            local, ray = timed["local"], timed["ray"]
            for label, seconds in (("local (baseline)", local), (f"ray, {args.cpus} CPUs", ray)):
                name = f"{label} {rows:,}"
                if seconds is None:
                    print(f"{name:<28} not measured: past the {args.budget_seconds:.0f} s budget", flush=True)
                    continue
                ratio = f"{seconds / local:8.2f}x" if label.startswith("ray") and local else ""
                print(f"{name:<28} {seconds:8.1f} {rows / seconds:12,.0f} {ratio:>9}", flush=True)
            goal = f"ray equals local, row for row, at {rows:,} rows"
            outside = f"ray equals local outside same-second events at {rows:,} rows"
            if local is not None and ray is not None:
                compared, differ, same_second = _differences(folder / "local", folder / f"ray-{args.cpus}", data)
                print(f"  {differ:,} of {compared:,} rows differ, {same_second:,} of them an entity's second event"
                      " in one second", flush=True)  # fmt: skip
                goals += [(goal, differ == 0), (outside, differ == same_second)]
            else:
                goals += [(goal, None), (outside, None)]
            figures[str(rows)] = {"local_seconds": local, "ray_seconds": ray}
    for goal, met in goals:
        verdict = "not measured (an engine ran past its budget)" if met is None else ("met" if met else "MISSED")
        print(f"{goal}: {verdict}", flush=True)
    print(json.dumps(figures), flush=True)
    return 0 if all(met is not False for goal, met in goals if "outside" in goal) else 1


if __name__ == "__main__":
    raise SystemExit(main())
