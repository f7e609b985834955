"""A writer killed with SIGKILL mid-write leaves no partial artifact where readers look."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from components import artifacts
from tests.conftest import REPO

SLOW_WRITER = """
import sys, time
from components import artifacts
with artifacts.atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as handle:
        for _ in range(10_000):
            handle.write(b"x" * 65536)
            handle.flush()
            time.sleep(0.01)
"""


def test_sigkill_mid_write_leaves_the_previous_artifact_intact(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    artifacts.write_bytes(target, b"previous model")
    writer = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)], cwd=REPO)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".model.bin.") and p.stat().st_size > 1 << 20 for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline, "the writer never started writing"
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    assert target.read_bytes() == b"previous model"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.bin"]
    assert leftovers and all(name.startswith(".model.bin.") and name.endswith(".tmp") for name in leftovers)
    # the next attempt replaces the artifact whole
    artifacts.write_bytes(target, b"new model")
    assert target.read_bytes() == b"new model"


def test_sigkill_during_a_parquet_write_never_exposes_a_torn_file(tmp_path: Path) -> None:
    target = tmp_path / "train_set.parquet"
    code = (
        "import sys, numpy as np, pandas as pd; from components import artifacts;"
        "frame = pd.DataFrame({'x': np.arange(30_000_000, dtype='int64')});"
        "artifacts.write_parquet(sys.argv[1], frame)"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, str(target)], cwd=REPO)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".train_set.parquet.") for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline and writer.poll() is None, "the writer never started writing"
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    assert not target.exists()
    artifacts.write_parquet(target, pd.DataFrame({"x": [1, 2, 3]}))
    assert pd.read_parquet(target)["x"].tolist() == [1, 2, 3]
