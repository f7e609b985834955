"""Benchmarks that cannot rot: each `make bench` script runs here on tiny inputs, once, and must
print its table. The figures are not asserted (they mean nothing at this size); that the code
still runs against today's components, services and images is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

# script, tiny arguments, a line of the table it prints at the end
SMOKE = {
    "bench.py": (["--sizes", "3000", "--gate-threshold", "0"], "s per task"),
    "platform_bench.py": (["--rows", "4000", "--entities", "400", "--iterations", "30"], "one log_batch call"),
    "serving_bench.py": (["--requests", "30", "--seconds", "0.3"], '"serving"'),
    "request_path_bench.py": (["--rows", "3000", "--requests", "30"], '"request_path"'),
    "offline_store_bench.py": (["--rows", "3000"], "equal row for row"),
    "drift_bench.py": (["--rows", "3000"], "x floor"),
    "scale_bench.py": (["--rows", "3000", "--trials", "2", "--tune-rows", "3000"], "trials/min"),
}
PROGRESS_BAR = ("Calculating Metrics", "it/s]")


def _run(script: str, arguments: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLOPS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, f"benchmarks/{script}", *arguments],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs_on_tiny_inputs_and_prints_its_table(script: str, tmp_path: Path) -> None:
    arguments, last_table_line = SMOKE[script]
    done = _run(script, arguments, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert last_table_line in done.stdout, done.stdout[-3000:]
    assert not any(bar in done.stdout + done.stderr for bar in PROGRESS_BAR), "a progress bar leaked into the output"


@pytest.mark.image
def test_fidelity_benchmark_runs_on_tiny_inputs(component_image: str, tmp_path: Path) -> None:
    done = _run("fidelity_bench.py", ["--rows", "3000", "--image", component_image], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "whole run" in done.stdout


def test_gpu_check_runs_its_cpu_path_and_says_it_did_not_run_without_a_gpu(tmp_path: Path) -> None:
    """No GPU here: `make gpu-check`'s script trains the MLP on the CPU, one process and two (DDP
    through torchrun, as on the GPU machine), writes its JSON, says so, and exits 1."""
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--rows", "3000", "--ddp-rows", "3000", "--epochs", "1",
         "--out", str(tmp_path)],
        cwd=REPO, env={**os.environ, "MLOPS_HOME": str(tmp_path)}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no CUDA device is visible" in done.stdout and "DDP x2 cpu" in done.stdout
    figures = json.loads((tmp_path / "gpu-check.json").read_text())
    runs = {(run["model_type"], run["workers"]) for run in figures["runs"]}
    assert {("pytorch_mlp", 1), ("pytorch_mlp", 2), ("xgboost", 1)} <= runs and figures["gpu"] is None
