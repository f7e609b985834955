"""make gpu-check: the train component's GPU paths against the same code on the CPU cores.

Made to run on a lent GPU machine as it is (its own python3 with CUDA torch, pandas, pyarrow and
scikit-learn; no network; benchmarks/gpu_check.sh carries the few small wheels it lacks):
- the PyTorch MLP through the train component, on 1M and 10M rows, on `cuda` and on `cpu`;
- the same, as a 2-process DDP run (torchrun, the torch-distributed runtime's variables) on the
  one GPU;
- XGBoost's `hist` on both devices where a CUDA build of XGBoost is installed (its CUDA wheel is
  too large to carry; the machine has none, so it says so).
Prints each figure beside its CPU baseline (a ratio) and writes one JSON of figures to `--out`
($OUT on the device machine). Without a visible CUDA device it prints the CPU figures and exits
1 (the check did not do its job) unless `--allow-cpu`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

FEATURES = [f"f{index}" for index in range(8)]


def synthetic(rows: int, seed: int = 1) -> Any:
    """A training set of the shape the fraud pipeline trains on: 8 numeric features, a rare
    positive class that depends on them. Generated with numpy: 10M rows in seconds."""
    import numpy as np
    import pandas as pd

    generator = np.random.default_rng(seed)
    features = generator.standard_normal((rows, len(FEATURES)), dtype=np.float32)
    signal = features[:, 0] * 1.5 - features[:, 1] + 0.5 * features[:, 2] * features[:, 3]
    label = (signal + generator.standard_normal(rows, dtype=np.float32) > 3.0).astype(np.int8)
    frame = pd.DataFrame(features, columns=FEATURES)
    frame["is_fraud"] = label
    return frame


def fit(data: Path, folder: Path, settings: dict[str, Any]) -> dict[str, Any]:
    from components.config import TrainSettings
    from components.steps.train import train

    name = "-".join(str(value) for value in settings.values() if isinstance(value, str))
    started = time.perf_counter()
    summary = train(str(data), str(folder / f"{name}.model"), str(folder / f"{name}.json"), features=FEATURES,
                    label_column="is_fraud", settings=TrainSettings.model_validate(settings))  # fmt: skip
    return {**summary, "wall_seconds": round(time.perf_counter() - started, 3)}


def line(label: str, result: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    ratio = f"  {result['row_passes_per_second'] / baseline['row_passes_per_second']:6.2f}x cpu" if baseline else ""
    return (f"{label:<34} {result['train_seconds']:9.2f} s {result['row_passes_per_second']:16,.0f} row-passes/s"
            f"{ratio}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="1000000,10000000", help="training set sizes, comma-separated")
    parser.add_argument("--epochs", type=int, default=2, help="MLP epochs")
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=100, help="XGBoost boosting rounds (CUDA builds only)")
    parser.add_argument("--ddp-rows", type=int, default=1_000_000, help="rows of the 2-process DDP run")
    parser.add_argument("--out", default=os.environ.get("OUT") or "build/gpu-check", help="folder of the JSON")
    parser.add_argument("--allow-cpu", action="store_true", help="exit 0 without a GPU (the smoke test)")
    args = parser.parse_args()

    import torch

    from components.steps.model_formats import gpu_visible

    gpu = gpu_visible()
    devices = ["cpu", "cuda"] if gpu else ["cpu"]
    mlp = {"epochs": args.epochs, "batch_size": args.batch_size}
    figures: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if gpu else None,
        "cpu_cores": os.cpu_count(),
        "runs": [],
    }
    xgboost_installed, xgboost_cuda = False, False
    try:
        import xgboost

        xgboost_installed, xgboost_cuda = True, bool(xgboost.build_info().get("USE_CUDA"))
    except ImportError:
        pass
    print(f"python {figures['python']}, torch {figures['torch']}, {figures['gpu'] or 'no GPU'}, "
          f"{figures['cpu_cores']} cores")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        folder = Path(tmp)
        for rows in [int(text) for text in args.rows.split(",")]:
            data = folder / f"train-{rows}.parquet"
            synthetic(rows).to_parquet(data, index=False)
            plans = [("pytorch_mlp", {"params": mlp})]
            if xgboost_installed and (xgboost_cuda or not gpu):
                plans.append(("xgboost", {"params": {"num_boost_round": args.rounds, "max_depth": 6}}))
            for model_type, extra in plans:
                baseline = None
                for device in devices:
                    result = fit(data, folder, {"model_type": model_type, "device": device, **extra})
                    figures["runs"].append({"model_type": model_type, "rows": rows, "device": device, "workers": 1,
                                            **result})  # fmt: skip
                    print(line(f"{model_type} {rows:,} rows {device}", result, baseline), flush=True)
                    baseline = baseline or result
            if rows == args.ddp_rows or rows == min(int(text) for text in args.rows.split(",")):
                device = "cuda" if gpu else "cpu"
                settings = {"model_type": "pytorch_mlp", "device": device, "params": mlp,
                            "distributed": {"workers": 2, "runtime": "torch-distributed"}}  # fmt: skip
                result = fit(data, folder, settings)
                single = next(r for r in figures["runs"] if r["rows"] == rows and r["device"] == device
                              and r["model_type"] == "pytorch_mlp")  # fmt: skip
                figures["runs"].append({"model_type": "pytorch_mlp", "rows": rows, "device": device, "workers": 2,
                                        **result})  # fmt: skip
                print(line(f"pytorch_mlp {rows:,} rows DDP x2 {device}", result, None)
                      + f"  {result['row_passes_per_second'] / single['row_passes_per_second']:6.2f}x one process",
                      flush=True)  # fmt: skip
    if not xgboost_installed:
        print("xgboost: not installed here (its wheel is too large to carry): the images' train-gpu image has it")
    elif gpu and not xgboost_cuda:
        print("xgboost: no CUDA build here (its wheel is too large to carry): the images' train-gpu image has it")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-check.json").write_text(json.dumps(figures, indent=2, default=str))
    print(f"figures: {out / 'gpu-check.json'}")
    if not gpu:
        print("no CUDA device is visible: CPU figures only; run `make gpu-check` on a GPU node")
        return 0 if args.allow_cpu else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
