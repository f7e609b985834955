"""Peak memory of the evaluate and drift steps, each alone in a fresh process (issue 33).

Each step is a pod of its own on the cluster, so each runs here in an interpreter of its own, on
the fraud generator's data (`benchmarks/bench.py` generate_raw) at `--rows`:
  evaluate   the real step (components/steps/evaluate.py) on a holdout of ROWS rows (the raw
             transactions: the features, the label and the other columns materialize's sets carry),
             an XGBoost model trained on 100k rows of other data;
  drift      the real step (components/steps/drift.py) against a champion in a sqlite MLflow
             registry whose training set (its reference) holds ROWS rows of the features, and a
             current window of ROWS raw rows; no Pushgateway.
With `--multiclass`, evaluate scores a LightGBM multiclass model (3 classes: merchant_category
modulo 4, 3 counted as 0; the other features) instead, which keeps 3 predictions a row.
Beside each, measured in the same run: its floor (a fresh process importing what the step imports
and reading nothing) and the whole read it replaced (the same imports, then pandas reading the
inputs whole, as the steps read them before issue 33: the least the old steps could peak at).
The goal (docs/performance.md, "Memory against rows"): each step's peak RSS at 10M rows at most
3 GB; printed met or MISSED at 10M rows, "not measured" below.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the repository's packages
    sys.path.insert(0, str(REPO))

GOAL_MB = 3_000
GOAL_ROWS = 10_000_000
FEATURES = ["amount", "merchant_category", "txn_count_1h", "txn_count_24h", "amount_avg_7d", "seconds_since_last_txn"]
LABEL = "is_fraud"
CLASS_FEATURES = [name for name in FEATURES if name != "merchant_category"]
CLASS_LABEL = "merchant_class"
MODEL = "memory-bench"


def _peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM")


def _measured(call: Callable[[], Any]) -> dict[str, float]:
    started = time.perf_counter()
    call()
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb()}


def _in_child(name: str, arguments: dict[str, Any]) -> dict[str, float]:
    """`name` in a fresh interpreter (spawn): its seconds and its peak RSS."""
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        figures: dict[str, float] = pool.apply(_run, (name, arguments))
    return figures


def _run(name: str, arguments: dict[str, Any]) -> dict[str, float]:
    os.environ.update(arguments.get("environment", {}))
    return _measured(lambda: RUNS[name](arguments))


def _evaluate_floor(arguments: dict[str, Any]) -> None:
    import importlib

    import sklearn.metrics  # noqa: F401

    import components.steps.evaluate  # noqa: F401

    importlib.import_module("lightgbm" if arguments["multiclass"] else "xgboost")  # the model's library


def _evaluate_whole(arguments: dict[str, Any]) -> None:
    import pandas as pd

    _evaluate_floor(arguments)
    frame = pd.read_parquet(arguments["holdout"])
    frame[arguments["features"]].to_numpy(dtype="float32")


def _evaluate(arguments: dict[str, Any]) -> None:
    from components.config import EvaluateSettings
    from components.steps.evaluate import evaluate

    out = Path(arguments["out"])
    evaluate(arguments["model"], arguments["metadata"], arguments["holdout"], str(out / "metrics.json"),
             str(out / "roc.png"), str(out / "pr.png"),
             settings=EvaluateSettings(gate_metric=arguments["gate"], threshold=0.0))  # fmt: skip


def _drift_floor(arguments: dict[str, Any]) -> None:
    import evidently.presets  # noqa: F401
    import mlflow  # noqa: F401

    import components.steps.drift  # noqa: F401


def _drift_whole(arguments: dict[str, Any]) -> None:
    import pandas as pd

    _drift_floor(arguments)
    pd.read_parquet(arguments["reference"])
    pd.read_parquet(arguments["current"])


def _drift(arguments: dict[str, Any]) -> None:
    from components.config import DriftSettings
    from components.steps.drift import drift

    out = Path(arguments["out"])
    drift(arguments["current"], str(out / "table.json"), str(out / "report.html"), str(out / "plot.png"),
          settings=DriftSettings(categorical_features=["merchant_category"]), pipeline="bench", model_name=MODEL,
          experiment="memory-bench")  # fmt: skip


RUNS: dict[str, Callable[[dict[str, Any]], None]] = {
    "evaluate floor": _evaluate_floor,
    "evaluate whole read": _evaluate_whole,
    "evaluate": _evaluate,
    "drift floor": _drift_floor,
    "drift whole read": _drift_whole,
    "drift": _drift,
}


def _model(work: Path, seed: int, multiclass: bool) -> tuple[str, str]:
    """A model trained by the train step on 100k rows of other data: XGBoost binary, or LightGBM
    multiclass on `_classes`'s label."""
    from bench import generate_raw  # this folder's bench.py, as floors_bench imports it

    from components.steps.train import train
    from components.train_settings import TrainSettings

    generate_raw(100_000, seed + 1000, work / "train.parquet")
    if multiclass:
        _classes(work / "train.parquet", work / "train-classes.parquet")
        settings = TrainSettings(model_type="lightgbm", objective="multiclass", params={"num_boost_round": 30})
        source, label, features = work / "train-classes.parquet", CLASS_LABEL, CLASS_FEATURES
    else:
        settings = TrainSettings(params={"num_boost_round": 60})
        source, label, features = work / "train.parquet", LABEL, FEATURES
    train(str(source), str(work / "model"), str(work / "metadata.json"), features=features, label_column=label,
          settings=settings.model_copy(update={"device": "cpu"}))  # fmt: skip
    return str(work / "model"), str(work / "metadata.json")


def _classes(raw: Path, target: Path) -> None:
    """The raw data's features but merchant_category, and a 3-class label made from it, a batch at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    partial = target.with_name(target.name + ".partial")  # renamed when whole: a killed run leaves no half file
    writer = None
    for batch in ds.dataset(raw).to_batches(columns=[*CLASS_FEATURES, "merchant_category"], batch_size=500_000):
        code = pc.bit_wise_and(batch.column("merchant_category"), 3)
        label = pc.if_else(pc.equal(code, 3), 0, code).cast(pa.int64())
        table = pa.Table.from_arrays([*(batch.column(name) for name in CLASS_FEATURES), label],
                                     names=[*CLASS_FEATURES, CLASS_LABEL])  # fmt: skip
        writer = writer or pq.ParquetWriter(partial, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()
        partial.replace(target)


def _champion(tracking_uri: str, reference: Path, artifacts: Path) -> None:
    """A registered version whose run holds `reference` where register keeps the training set
    (the run's artifacts under `artifacts`, not MLflow's default ./mlruns)."""
    from mlflow import MlflowClient

    from components.steps.register import REFERENCE_ARTIFACT

    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment(MODEL, artifact_location=artifacts.as_uri())
    run = client.create_run(experiment)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        target.symlink_to(reference)
        client.log_artifact(run.info.run_id, str(target), str(Path(REFERENCE_ARTIFACT).parent))
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(MODEL, "champion", version.version)


def _data(rows: int, seed: int, folder: Path) -> tuple[Path, Path]:
    """The raw data (one file, or past bench's chunk size a folder) and the reference: its features."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from bench import CHUNK_ROWS, generate_raw

    raw = folder / (f"raw-{rows}.parquet" if rows <= CHUNK_ROWS else f"raw-{rows}")
    if not raw.exists():  # each written under another name and renamed when whole (kept for reuse)
        generate_raw(rows, seed, raw.with_name(raw.name + ".partial"))
        raw.with_name(raw.name + ".partial").replace(raw)
    reference = folder / f"reference-{rows}.parquet"
    if not reference.exists():
        dataset = ds.dataset(raw)
        partial = reference.with_name(reference.name + ".partial")
        with pq.ParquetWriter(partial, dataset.schema.empty_table().select(FEATURES).schema) as writer:
            for batch in dataset.to_batches(columns=FEATURES, batch_size=500_000):
                writer.write_batch(batch)
        partial.replace(reference)
    return raw, reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", help="a folder to keep the generated data in (reused when present)")
    parser.add_argument("--steps", default="evaluate,drift")
    parser.add_argument("--multiclass", action="store_true", help="evaluate a LightGBM multiclass model")
    parser.add_argument(
        "--no-whole-read",
        action="store_true",
        help="skip the whole-read baseline (at 100M rows it is about 15 GB of pandas: this machine's memory)",
    )
    args = parser.parse_args(argv)
    steps = [step for step in args.steps.split(",") if step]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = Path(args.data) if args.data else work
        folder.mkdir(parents=True, exist_ok=True)
        raw, reference = _data(args.rows, args.seed, folder)
        holdout = raw  # evaluate's holdout: ROWS rows of the same shape (a pipeline's holdout is a fraction)
        if args.multiclass:
            holdout = folder / f"classes-{args.rows}.parquet"
            if not holdout.exists():
                _classes(raw, holdout)
        model, metadata = _model(work, args.seed, args.multiclass)
        tracking = f"sqlite:///{work}/mlflow.db"
        _champion(tracking, reference, work / "artifacts")
        environment = {"MLFLOW_TRACKING_URI": tracking, "MLOPS_PUSHGATEWAY_URL": "", "DO_NOT_TRACK": "1",
                       "MLOPS_HOME": str(work / "home")}  # fmt: skip
        arguments = {
            "model": model, "metadata": metadata, "holdout": str(holdout), "reference": str(reference),
            "current": str(raw), "out": str(work), "environment": environment,
            "features": CLASS_FEATURES if args.multiclass else FEATURES,
            "gate": "accuracy" if args.multiclass else "roc_auc",
            "multiclass": args.multiclass,
        }  # fmt: skip
        results: dict[str, dict[str, float]] = {}
        for step in steps:
            for what in (f"{step} floor", f"{step} whole read", step):
                if not (args.no_whole_read and what.endswith("whole read")):
                    results[what] = _in_child(what, arguments)
    model_kind = "LightGBM multiclass (3 classes)" if args.multiclass else "XGBoost binary"
    print(f"evaluate ({model_kind}) and drift, each alone in a fresh process, {args.rows:,} rows")
    print(f"{'what':<22} {'peak MB':>9} {'seconds':>8} {'over floor MB':>14}")
    for step in steps:
        floor = results[f"{step} floor"]["peak_mb"]
        for what in (f"{step} floor", f"{step} whole read", step):
            if what not in results:
                print(f"{what:<22} {'not measured (--no-whole-read)':>33}")
                continue
            figures = results[what]
            print(
                f"{what:<22} {figures['peak_mb']:9,.0f} {figures['seconds']:8.1f} {figures['peak_mb'] - floor:14,.0f}"
            )
    for step in steps:
        peak = results[step]["peak_mb"]
        if args.rows >= GOAL_ROWS:
            verdict = "met" if peak <= GOAL_MB else "MISSED"
            print(f"goal: {step} at {args.rows:,} rows at most {GOAL_MB:,} MB: {peak:,.0f} MB, {verdict}")
        else:
            print(f"goal: {step} at 10M rows at most {GOAL_MB:,} MB: not measured at this size ({peak:,.0f} MB)")
    print(json.dumps({what: figures for what, figures in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
