"""The CPU component image really builds and runs a step, with no registry: a debootstrap base
(images/setup-podman.sh, run by `make test`), podman with runc, and the repository's own
Containerfile and build script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def image(component_image: str) -> str:
    return component_image


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
            "mlops",
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
            "mlops",
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
