"""A writer killed with SIGKILL mid-write leaves no partial artifact where readers look, and the next
writer of the same target sweeps the debris; a folder being replaced is never missing."""

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
    assert all(f"-{writer.pid}." in name for name in leftovers), "temporary names carry the writer's pid"
    # the next attempt replaces the artifact whole, and sweeps what the dead writer left
    artifacts.write_bytes(target, b"new model")
    assert target.read_bytes() == b"new model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


def test_a_live_writers_temporary_file_is_never_swept(tmp_path: Path) -> None:
    """Positive control for the sweep: a concurrent writer that is alive keeps its file."""
    target = tmp_path / "model.bin"
    with artifacts.atomic_path(target) as mine:
        mine.write_bytes(b"being written")
        assert artifacts.sweep_debris(target) == []
        assert mine.exists()
    assert target.read_bytes() == b"being written"


def test_a_replaced_folder_is_never_missing_for_a_reader(tmp_path: Path) -> None:
    """atomic_dir swaps the folders in one rename: a reader polling through 200 replacements sees
    the old or the new folder, whole, every time."""
    import threading

    target = tmp_path / "repository"
    with artifacts.atomic_dir(target) as first:
        (first / "config.pbtxt").write_text("version 0")
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append((target / "config.pbtxt").read_text())
            except FileNotFoundError:
                seen.append("MISSING")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in range(1, 201):
            with artifacts.atomic_dir(target) as replacement:
                (replacement / "config.pbtxt").write_text(f"version {version}")
    finally:
        stop.set()
        reader.join()
    assert "MISSING" not in seen and len(seen) > 200
    assert (target / "config.pbtxt").read_text() == "version 200"
    assert [p.name for p in tmp_path.iterdir()] == ["repository"]


SLOW_DIR_WRITER = """
import sys, time
from components import artifacts
with artifacts.atomic_dir(sys.argv[1]) as tmp:
    (tmp / "part").write_bytes(b"x")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_killed_folder_writer_is_swept_by_the_next(tmp_path: Path) -> None:
    target = tmp_path / "repository"
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_DIR_WRITER, str(target)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".repository.")], "the kill left its folder"
    with artifacts.atomic_dir(target) as replacement:
        (replacement / "config.pbtxt").write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repository"]


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_set.parquet"]
