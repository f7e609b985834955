"""The CPU component image really builds and runs a step, with no registry: a debootstrap base
(images/setup-podman.sh, run by `make test`), podman with runc, and the repository's own
Containerfile and build script."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.image
TAG = "localhost/private-mlops/component:test"


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run `make images-setup` (make test does) before this test")
    built = subprocess.run(
        ["bash", "images/build.sh", "component", TAG],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return TAG


def test_component_image_runs_validate_on_a_sample(image: str, tmp_path: Path) -> None:
    from pipelines.fraud.data import generate

    generate(2000, 3).to_parquet(tmp_path / "sample.parquet", index=False)
    tmp_path.chmod(0o777)
    run = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "-v",
            f"{tmp_path}:/data:Z",
            image,
            "step",
            "validate",
            "--dataset",
            "/data/sample.parquet",
            "--suite-path",
            "/opt/venv/lib/python3.11/site-packages/pipelines/fraud/expectations.json",
            "--report-path",
            "/data/report.json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["success"] is True and summary["rows"] == 2000
    assert json.loads((tmp_path / "report.json").read_text())["success"] is True


def test_component_image_refuses_bad_input_with_exit_2(image: str, tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_text("not parquet")
    tmp_path.chmod(0o777)
    run = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "-v",
            f"{tmp_path}:/data:Z",
            image,
            "step",
            "validate",
            "--dataset",
            "/data/bad.parquet",
            "--suite-path",
            "/nonexistent.json",
            "--report-path",
            "/data/report.json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 2 and "fix:" in run.stderr
    assert not (tmp_path / "report.json").exists()
