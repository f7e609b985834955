"""make bench (materialize engines): Feast's Ray engine on a local Ray beside the single-node engine.

The materialize step on the same synthetic fraud data (pipelines/fraud/data.py) at each size,
once per engine: `materialize.engine: local` (the out-of-core DuckDB join, the baseline, measured
in the same run) and `materialize.engine: ray` (Feast's Ray offline store on a local Ray of
`--cpus` CPUs, started once and not timed). Each prints its wall time and rows per second, and the
Ray engine its ratio to the baseline. The goal: the two engines' train and holdout sets are equal,
row for row, at every size (MISSED otherwise). No speed goal is claimed for Ray on one machine:
the table is the price of the option (docs/scale-out.md says when to switch).
"""

from __future__ import annotations

import argparse
import json
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


def _equal(one: Path, other: Path) -> bool:
    import pandas as pd

    for name in ("train.parquet", "holdout.parquet"):
        try:
            pd.testing.assert_frame_equal(pd.read_parquet(other / name), pd.read_parquet(one / name), check_exact=True)
        except AssertionError as error:
            print(f"  {name} differs: {str(error).splitlines()[0]}", flush=True)
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="sizes, comma-separated")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    args = parser.parse_args()
    from components.ray_settings import RaySettings
    from components.steps.materialize_ray import start_ray
    from pipelines.fraud.data import generate

    start_ray(RaySettings(local_cpus=args.cpus))  # once, untimed: a cluster is up before a run starts
    figures: dict[str, Any] = {}
    goals: list[tuple[str, bool]] = []
    print(f"{'materialize':<28} {'wall s':>8} {'rows/s':>12} {'vs local':>9}", flush=True)
    for rows in (int(size) for size in args.rows.split(",")):
        with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
            folder = Path(tmp)
            data = folder / "raw.parquet"
            generate(rows, 7).to_parquet(data, index=False)
            local = _run(data, folder / "local", "local")
            ray = _run(data, folder / "ray", "ray")
            for label, seconds, ratio in (("local (baseline)", local, ""), (f"ray, {args.cpus} CPUs", ray,
                                                                                f"{ray / local:8.2f}x")):  # fmt: skip
                print(f"{label + f' {rows:,}':<28} {seconds:8.1f} {rows / seconds:12,.0f} {ratio:>9}", flush=True)
            goals.append((f"ray equals local, row for row, at {rows:,} rows", _equal(folder / "local", folder / "ray")))
            figures[str(rows)] = {"local_seconds": local, "ray_seconds": ray}
    for goal, met in goals:
        print(f"{goal}: {'met' if met else 'MISSED'}", flush=True)
    print(json.dumps(figures), flush=True)
    return 0 if all(met for _, met in goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
