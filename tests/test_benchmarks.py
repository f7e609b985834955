"""Benchmarks that cannot rot: each `make bench` script runs here on tiny inputs, once, and must
print its table. The figures are not asserted (they mean nothing at this size); that the code
still runs against today's components, services and images is.

The scripts that measure the platform's services (platform, offline store, fidelity) run on the
session's running stacks through their `--stack` option instead (tests/integration/
test_benchmarks_on_the_stack.py): starting a stack of their own here timed PostgreSQL's initdb and
MLflow's schema creation again for each."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmark_runs import assert_printed_its_table, run_benchmark
from tests.conftest import REPO

pytestmark = pytest.mark.integration

# script, tiny arguments, a line of the table it prints at the end
SMOKE = {
    # one engine: kfp.local's own subprocess path adds 30 s here and is compared task by task with the
    # warm worker in tests/pipelines/test_warm_worker.py
    "bench.py": (["--sizes", "3000", "--gate-threshold", "0", "--engines", "warm"], "s per task"),
    "serving_bench.py": (["--requests", "30", "--seconds", "0.3"], '"serving"'),
    "request_path_bench.py": (["--rows", "3000", "--requests", "30"], "decision log adds at most 5% to p99: "),
    "drift_bench.py": (["--rows", "3000"], "x floor"),
    # evaluate and drift each in a fresh process beside its floor and the whole read; 10M's goal is not measured
    "memory_bench.py": (["--rows", "3000"], "over floor MB"),
    # validate and materialize beside their floors; the floor's verdicts must equal the step's or it fails
    "floors_bench.py": (["--rows", "3000"], "materialize's floor: the join"),
    # the local Ray engine beside the single-node one; the equality goal is met or the run fails
    "ray_bench.py": (["--rows", "3000"], "ray equals local, row for row, at 3,000 rows: met"),
    # the real rebuild on real services, read back through Feast; the 1M goal is "not measured" here.
    # Services of its own: it flushes Redis, and its Redis has the tenant's memory limit
    "rebuild_bench.py": (["--entities", "3000", "--sample", "500"], "equal to the offline latest rows"),
    # services of its own too: it deletes PostgreSQL's data directory and restores it with barman-cloud
    "recovery_bench.py": (["--models", "1", "--versions", "2", "--commits", "1", "--archive-timeout", "1"], "RTO goal"),
    # one model kind: two PyTorch workers against one are run and compared in tests/components/test_distributed.py
    "scale_bench.py": (["--rows", "3000", "--trials", "2", "--tune-rows", "3000", "--models", "xgboost"], "trials/min"),
    # Feast's SQLite table and upsert as the table grows; the goal's verdict means nothing at this size
    "online_write_bench.py": (["--entities", "3000", "--batch", "1000"], "the last batch within 1.2x of the first"),
}


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs_on_tiny_inputs_and_prints_its_table(script: str, tmp_path: Path) -> None:
    arguments, last_table_line = SMOKE[script]
    assert_printed_its_table(run_benchmark(script, arguments, tmp_path), last_table_line)


# What the lent GPU machine's own Python holds (benchmarks/gpu_check.sh): these and what they need.
GPU_MACHINE_PACKAGES = ("torch", "numpy", "pandas", "pyarrow", "scikit-learn")


def _bare_site(folder: Path) -> Path:
    """A site folder holding only the GPU machine's packages and their dependencies, as links into
    this venv (their metadata says which files are theirs): nothing else of the pinned stack."""
    import re
    from importlib import metadata

    folder.mkdir()
    wanted, seen = list(GPU_MACHINE_PACKAGES), set[str]()
    while wanted:
        name = re.sub(r"[-_.]+", "-", wanted.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(name)
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                wanted.append(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0])
        for file in dist.files or []:
            top = file.parts[0]
            if top.startswith("..") or top == "__pycache__" or (folder / top).exists():
                continue
            source = Path(str(dist.locate_file(top)))
            if source.exists():
                (folder / top).symlink_to(source)
    return folder


def test_gpu_check_runs_in_a_bare_venv_with_only_the_carried_wheels_and_says_it_had_no_gpu(tmp_path: Path) -> None:
    """Issue 33: on the lent GPU machine (its own Python with torch, numpy, pandas, pyarrow and
    scikit-learn, nothing else) the check stopped at `import yaml`: `make gpu-wheels` carried
    pydantic alone. Here a venv holding only those packages gets the wheels `make gpu-wheels`
    downloads (for this Python), and `make gpu-check`'s script trains the MLP on the CPU, one
    process and two (DDP through torchrun, as on the GPU machine), writes its JSON, says it saw no
    GPU, and exits 1. Without the carried wheels it names what is missing and exits 2. It runs in a
    copy of the working tree, as the machine does: there the DDP workers' `mlops step train` was
    refused, because no installed entry point declared a pipeline."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = subprocess.run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (Path(purelib) / "gpu-machine.pth").write_text(str(_bare_site(tmp_path / "machine")) + "\n")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    wheels = tmp_path / "wheels"
    subprocess.run(["make", "-s", "gpu-wheels", f"GPU_WHEELS={wheels}", f"GPU_PYTHON_VERSION={version}"],
                   cwd=REPO, check=True, capture_output=True, text=True, timeout=600)  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"MLOPS_HOME": str(tmp_path), "PYTHON": str(venv / "bin/python"), "PATH": f"{venv / 'bin'}:{env['PATH']}"}
    arguments = ["--rows", "3000", "--ddp-rows", "3000", "--epochs", "1", "--out", str(tmp_path)]

    # the machine gets a copy of the working tree (tracked and untracked files, nothing ignored):
    # no egg-info, so no entry point registers a pipeline there
    tree = tmp_path / "tree"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)

    lacking = subprocess.run(["bash", "benchmarks/gpu_check.sh", *arguments], cwd=tree, capture_output=True,
                             text=True, timeout=600, env={**env, "GPU_WHEELS": str(tmp_path / "none")})  # fmt: skip
    assert lacking.returncode == 2 and "lacks pydantic PyYAML" in lacking.stderr, lacking.stderr[-3000:]

    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", *arguments], cwd=tree, capture_output=True,
                          text=True, timeout=600, env={**env, "GPU_WHEELS": str(wheels)})  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no CUDA device is visible" in done.stdout and "DDP x2 cpu" in done.stdout
    figures = json.loads((tmp_path / "gpu-check.json").read_text())
    runs = {(run["model_type"], run["workers"]) for run in figures["runs"]}
    assert {("pytorch_mlp", 1), ("pytorch_mlp", 2)} <= runs and figures["gpu"] is None
    assert "xgboost: not installed here" in done.stdout  # the machine has none: said, not a crash
