"""What scaling out costs and buys on this machine: one process against two, and trials per minute.

Rows printed:
  <model> 1 process     the train step as it runs in one pod (the baseline)
  <model> 2 workers     the same step as two workers started as Kubeflow Trainer's runtime starts
                        them (torchrun + gloo DDP; XGBoost's collective with a RabitTracker), on
                        the same rows: wall time (process starts included) and row-passes/s
  tune parallel 1, 2    `mlops tune`'s trials per minute (Optuna, train and evaluate of each trial;
                        each search also validates and materializes its data once)
On 2 cores little gain is to be expected from two workers; the figures are the overhead a team
pays for the option of N nodes, measured in the same run as the baseline.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

RUNTIMES = {"xgboost": "xgboost-distributed", "pytorch_mlp": "torch-distributed"}
PARAMS = {"xgboost": {"num_boost_round": 100, "max_depth": 6}, "pytorch_mlp": {"epochs": 2, "batch_size": 4096}}


def _train(data: Path, folder: Path, model_type: str, workers: int) -> dict[str, Any]:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from gpu_check import FEATURES

    from components.config import TrainSettings
    from components.steps.train import train

    settings = TrainSettings(
        model_type=model_type,  # type: ignore[arg-type]
        device="cpu",
        params=PARAMS[model_type],
        distributed={"workers": workers, "runtime": RUNTIMES[model_type]} if workers > 1 else None,
    )
    started = time.perf_counter()
    summary = train(str(data), str(folder / f"{model_type}-{workers}"), str(folder / f"{model_type}-{workers}.json"),
                    features=FEATURES, label_column="is_fraud", settings=settings)  # fmt: skip
    return {**summary, "wall_seconds": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trials", type=int, default=8, help="trials per tuning measurement")
    parser.add_argument("--tune-rows", type=int, default=20_000, help="rows of the tuning runs' dataset")
    parser.add_argument("--models", default=",".join(RUNTIMES), help="the model kinds trained (default: both)")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    if unknown := sorted(set(models) - set(RUNTIMES)):
        parser.error(f"--models: {', '.join(unknown)} is not one of {', '.join(RUNTIMES)}")

    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from gpu_check import synthetic

    figures: dict[str, Any] = {"rows": args.rows}
    print(f"{'':<24} {'wall s':>8} {'row-passes/s':>16} {'vs 1 process':>13}")
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        folder = Path(tmp)
        data = folder / "train.parquet"
        synthetic(args.rows).to_parquet(data, index=False)
        for model_type in models:
            single = _train(data, folder, model_type, 1)
            double = _train(data, folder, model_type, 2)
            for label, result, baseline in (("1 process", single, None), ("2 workers", double, single)):
                ratio = (
                    f"{result['row_passes_per_second'] / baseline['row_passes_per_second']:12.2f}x" if baseline else ""
                )
                print(f"{model_type + ' ' + label:<24} {result['wall_seconds']:8.2f} "
                      f"{result['row_passes_per_second']:16,.0f} {ratio:>13}", flush=True)  # fmt: skip
            figures[model_type] = {"one": single, "two": double}
        figures["tune"] = _tuning(args, folder)
    print(json.dumps(figures, default=str))
    return 0


def _tuning(args: argparse.Namespace, folder: Path) -> dict[str, float]:
    """Trials per minute at parallel 1 and 2, the same search on the same data, embedded MLflow."""
    from pipelines.fraud import pipeline as fraud
    from pipelines.fraud.data import generate
    from pipelines.tune import tune

    data = folder / "raw.parquet"
    generate(args.tune_rows, 5).to_parquet(data, index=False)
    rates: dict[str, float] = {}
    # once first, unmeasured: the first search in a process pays the imports and Feast's warm-up, and
    # creates the tracking database's schema, which the measured searches then share (each search
    # logs a parent run of its own): a new database per search timed MLflow's migrations as trials
    tracking_uri = f"sqlite:///{folder}/mlflow.db"
    warm = fraud.DECLARATION.config().with_overrides({"tune.trials": 1, "tune.parallel": 1})
    tune(fraud.DECLARATION, warm, str(data), folder / "tune-warm", tracking_uri=tracking_uri)
    for parallel in (1, 2):
        cfg = fraud.DECLARATION.config().with_overrides({"tune.trials": args.trials, "tune.parallel": parallel})
        started = time.perf_counter()
        result = tune(fraud.DECLARATION, cfg, str(data), folder / f"tune-{parallel}", tracking_uri=tracking_uri)
        seconds = time.perf_counter() - started
        rates[f"parallel_{parallel}"] = 60 * len(result.trials) / seconds
        baseline = rates.get("parallel_1", rates[f"parallel_{parallel}"])
        print(f"{'tune parallel ' + str(parallel):<24} {seconds:8.2f} {rates[f'parallel_{parallel}']:13.1f} trials/min"
              f" {rates[f'parallel_{parallel}'] / baseline:9.2f}x", flush=True)  # fmt: skip
    return rates


if __name__ == "__main__":
    raise SystemExit(main())
