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


def test_the_transformer_command_promote_renders_starts_in_the_image(image: str) -> None:
    """The InferenceService's transformer runs the command promote renders, from this image's own
    /opt/transformer environment (kserve pins psutil<6, apart from the pipeline's stack). With no
    predictor to read the model's columns from, it stops with exit 75 (transient: the pod restarts
    until its predictor is up), naming what it waited for."""
    from components.config import transformer_settings
    from components.steps.promote import render_transformer
    from pipelines.fraud import pipeline as fraud

    cfg = fraud.DECLARATION.config()
    (container,) = render_transformer("fraud-detector", transformer_settings(cfg, image), cfg.promote)["containers"]
    # what KServe's controller adds to a transformer's arguments
    kserve_args = ["--model_name=fraud-detector", "--predictor_host=127.0.0.1:1", "--http_port=8080"]
    run = subprocess.run(
        ["podman", "run", "--rm", "--network=none", image, *container["command"], *container["args"], *kserve_args,
         "--predictor-wait-seconds=1"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 75, run.stdout[-2000:] + run.stderr[-2000:]
    assert "the predictor at 127.0.0.1:1 did not serve fraud-detector" in run.stdout + run.stderr
    versions = subprocess.run(
        ["podman", "run", "--rm", image, container["command"][0], "-c",
         "import importlib.metadata as m; print(m.version('kserve'), m.version('psutil'), m.version('feast'))"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert versions.stdout.split() == ["0.21.0", "5.9.8", "0.67.0"], versions.stdout + versions.stderr
