"""How the tests run a `make bench` script on tiny inputs, and what every such run must show.

Shared by tests/test_benchmarks.py (the scripts that need no services, or services of their own)
and the integration modules that run a script on the session's running stack through its
`--stack` option (tests/integration/test_benchmarks_on_the_stack.py, and the fidelity benchmark
in tests/integration/test_cluster_fidelity.py): one runner, one set of checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

__all__ = ["PROGRESS_BAR", "assert_printed_its_table", "run_benchmark"]

PROGRESS_BAR = ("Calculating Metrics", "it/s]")


def run_benchmark(script: str, arguments: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """benchmarks/SCRIPT ARGUMENTS in a fresh interpreter, with its own MLOPS_HOME."""
    env = {**os.environ, "MLOPS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, f"benchmarks/{script}", *arguments],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def assert_printed_its_table(done: subprocess.CompletedProcess[str], last_table_line: str) -> None:
    """It exited 0, printed the line of its table, and no progress bar leaked into its output."""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert last_table_line in done.stdout, done.stdout[-3000:]
    assert not any(bar in done.stdout + done.stderr for bar in PROGRESS_BAR), "a progress bar leaked into the output"
