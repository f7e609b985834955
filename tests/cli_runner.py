"""`mlops` as a user or a pipeline task runs it, for the tests: `python -m mlops.cli` in a process
of its own, from this checkout, its output captured and a failing exit returned, not raised, so a
test reads the code, stdout and stderr (issue 30: the tests had grown three `mlops()` runners and
a dozen inline copies of this call)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import REPO

__all__ = ["mlops"]


def mlops(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path = REPO, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`mlops ARGS` with `env` (this process's environment when None), from `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "mlops.cli", *args],
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
