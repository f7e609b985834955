"""make bench: each step's time on 1M rows in-process, then the whole pipeline through kfp.local.

The engine's overhead is the local run's wall time minus the same steps called in-process,
measured in the same invocation on the same data; it is printed beside the in-process total
as a ratio. Each kfp.local task is a fresh Python process that imports its libraries again
(GX, Feast, MLflow, torch), which is most of the overhead and is also what a pod pays on the
cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def timed(label: str, results: dict[str, float], call: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    value = call()
    results[label] = time.perf_counter() - started
    print(f"  {label:<12} {results[label]:8.2f} s", flush=True)
    return value


def in_process(raw: Path, home: Path, cfg: Any) -> dict[str, float]:
    from components.evaluate import evaluate
    from components.materialize import materialize
    from components.promote import promote
    from components.register import register
    from components.services import embedded_artifact_root, embedded_tracking_uri
    from components.train import train
    from components.validate import validate
    from pipelines.fraud import pipeline as fraud

    os.environ["MLOPS_HOME"] = str(home)
    out = home / "steps"
    m = cfg.materialize
    times: dict[str, float] = {}
    timed(
        "validate",
        times,
        lambda: validate(str(raw), str(fraud.DECLARATION.folder / cfg.validate_.suite), str(out / "report")),
    )
    summary = timed(
        "materialize",
        times,
        lambda: materialize(
            str(raw),
            str(fraud.DECLARATION.folder / m.feature_repo),
            str(out / "train_set"),
            str(out / "holdout_set"),
            settings=m,
        ),
    )
    timed(
        "train",
        times,
        lambda: train(
            str(out / "train_set"),
            str(out / "model"),
            str(out / "metadata"),
            features=summary["features"],
            label_column=m.label_column,
            settings=cfg.train,
        ),
    )
    timed(
        "evaluate",
        times,
        lambda: evaluate(
            str(out / "model"),
            str(out / "metadata"),
            str(out / "holdout_set"),
            str(out / "metrics"),
            str(out / "roc.png"),
            str(out / "pr.png"),
            settings=cfg.evaluate,
        ),
    )
    timed(
        "register",
        times,
        lambda: register(
            str(out / "model"),
            str(out / "metadata"),
            str(out / "metrics"),
            str(out / "registration"),
            str(out / "card.md"),
            settings=cfg.register_,
            tracking_uri=embedded_tracking_uri(home),
            artifact_root=embedded_artifact_root(home),
            pipeline=cfg.pipeline,
            card=cfg.model_card.model_dump(),
        ),
    )
    timed(
        "promote",
        times,
        lambda: promote(
            str(out / "registration"),
            str(out / "model"),
            str(out / "isvc.yaml"),
            str(out / "repository"),
            settings=cfg.promote,
        ),
    )
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gate-threshold", type=float, help="the gate's threshold (default: the config's)")
    args = parser.parse_args()

    from pipelines.fraud import pipeline as fraud
    from pipelines.fraud.data import generate

    overrides: dict[str, Any] = {"data.rows": args.rows, "data.seed": args.seed}
    if args.gate_threshold is not None:  # tiny smoke runs train models too weak for the real gate
        overrides["evaluate.threshold"] = args.gate_threshold
    cfg = fraud.DECLARATION.config().with_overrides(overrides)
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        root = Path(tmp)
        raw = root / "raw.parquet"
        started = time.perf_counter()
        generate(args.rows, args.seed).to_parquet(raw, index=False)
        print(f"fraud benchmark: {args.rows:,} rows (generated in {time.perf_counter() - started:.1f} s, not counted)")

        print("steps called in-process (one interpreter, libraries imported once):")
        steps = in_process(raw, root / "in-process", cfg)
        steps_total = sum(steps.values())

        print("the same pipeline through kfp.local (one process per task):")
        env = {**os.environ, "MLOPS_HOME": str(root / "kfp-local")}
        started = time.perf_counter()
        done = subprocess.run(
            [
                *(sys.executable, "-m", "mlops.cli", "run", "fraud", "--data", str(raw), "--rows", str(args.rows)),
                *("--gate-threshold", str(cfg.evaluate.threshold)),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        local_total = time.perf_counter() - started
        print("\n".join(f"  {line}" for line in done.stdout.splitlines() if line.strip().startswith(("ok", "FAIL"))))
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:])
            return 1

    overhead = local_total - steps_total
    print("\nresults")
    print(f"  {'step':<12} {'seconds':>8} {'share':>7}")
    for name, seconds in steps.items():
        print(f"  {name:<12} {seconds:8.2f} {seconds / steps_total:7.1%}")
    print(f"  {'in-process':<12} {steps_total:8.2f}   (baseline)")
    print(f"  {'kfp.local':<12} {local_total:8.2f}   ratio {local_total / steps_total:.2f}x the baseline")
    print(f"  engine overhead {overhead:.2f} s ({overhead / local_total:.1%} of the local run)")
    print(
        json.dumps(
            {
                "rows": args.rows,
                "steps_seconds": {k: round(v, 3) for k, v in steps.items()},
                "in_process_seconds": round(steps_total, 3),
                "kfp_local_seconds": round(local_total, 3),
                "ratio": round(local_total / steps_total, 3),
                "overhead_seconds": round(overhead, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
