"""make gpu-check: train both model types on the GPU and on the CPU, print throughput side by side.

Runs the train component itself (the same code path as the pipeline) on synthetic fraud
features, once per device, and prints row-passes/s (rows x rounds or epochs per second) with
the GPU/CPU ratio. Without a visible CUDA device it prints the CPU figures and exits 1: the
check did not run what it is for.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=200, help="XGBoost boosting rounds")
    parser.add_argument("--epochs", type=int, default=3, help="MLP epochs")
    args = parser.parse_args()

    from components.config import TrainSettings
    from components.models import gpu_visible
    from components.train import train
    from pipelines.fraud.data import generate

    gpu = gpu_visible()
    devices = ["cpu", "cuda"] if gpu else ["cpu"]
    xgboost_cuda = True
    if gpu:
        import xgboost

        xgboost_cuda = bool(xgboost.build_info().get("USE_CUDA"))
    features = [
        "amount",
        "merchant_category",
        "txn_count_1h",
        "txn_count_24h",
        "amount_avg_7d",
        "seconds_since_last_txn",
    ]
    plans: list[tuple[str, dict[str, Any]]] = [
        ("xgboost", {"num_boost_round": args.rounds, "max_depth": 6}),
        ("pytorch_mlp", {"epochs": args.epochs, "batch_size": 4096}),
    ]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.parquet"
        generate(args.rows, 1).to_parquet(data, index=False)
        for model_type, params in plans:
            for device in devices:
                if model_type == "xgboost" and device == "cuda" and not xgboost_cuda:
                    print(
                        "xgboost: this build has no CUDA (xgboost-cpu); install xgboost==3.2.0 as images/train-gpu does"
                    )
                    continue
                summary = train(
                    str(data),
                    f"{tmp}/{model_type}-{device}",
                    f"{tmp}/{model_type}-{device}.json",
                    features=features,
                    label_column="is_fraud",
                    settings=TrainSettings.model_validate(
                        {"model_type": model_type, "params": params, "device": device}
                    ),
                )
                results.setdefault(model_type, {})[device] = summary["row_passes_per_second"]
                print(
                    f"{model_type:<12} {device:<5} {summary['train_seconds']:8.2f} s  "
                    f"{summary['row_passes_per_second']:14,.0f} row-passes/s (rows x rounds or epochs)",
                    flush=True,
                )
    for model_type, figures in results.items():
        if "cuda" in figures:
            print(f"{model_type:<12} GPU/CPU throughput ratio {figures['cuda'] / figures['cpu']:.2f}x")
    print(json.dumps({"rows": args.rows, "gpu": gpu, "row_passes_per_second": results}))
    if not gpu:
        print("no CUDA device is visible: CPU figures only; run `make gpu-check` on a GPU node")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
