"""The predictor refuses bytes the registry's version does not name (security review MEDIUM 2).

As an attacker with a tenant's S3 key: promote's own publish serves (positive control); the model
file and config.pbtxt overwritten in place with a consistent forgery, the model file alone, or a
forged newer version folder added: the runtime's command refuses before Triton starts, naming
`mlops verify` and the restore command; with the check off (the runtime's args run alone, as before
this fix), the forged bytes load and their sha256 is what the decision log would record.

The command run is the one manifests/base/serving/triton-runtime.yaml gives the predictor, with the
sha256 promote renders into the InferenceService, on a repository promote's publish_repository wrote.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.errors import PERMANENT_EXIT_CODE
from components.serving import served_bytes
from components.steps.promote import publish_repository, render_inference_service
from components.steps.triton_repository import write_repository
from tests.components.test_triton_formats import FEATURES, _lightgbm
from tests.conftest import REGISTRATION, REPO

# Stands in for tritonserver: loads the repository as Triton would (the newest version, the config
# parsed by Triton's protobuf) and prints the bytes' sha256 and the one the decision log records.
LOADER = """
import hashlib, pathlib, sys
from components.serving.triton_config import parse_config, sha256_of
model = next(pathlib.Path(sys.argv[1]).iterdir())
config = parse_config((model / "config.pbtxt").read_text())
version = max((p for p in model.iterdir() if p.is_dir()), key=lambda p: int(p.name))
(served,) = version.iterdir()
print("served", hashlib.sha256(served.read_bytes()).hexdigest(), "logged", sha256_of(config))
"""


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    return {"signed": _lightgbm("binary"), "forged": _lightgbm("regression")}


def _published(tmp_path: Path, model: bytes) -> tuple[dict[str, Any], Path]:
    registration: dict[str, Any] = dict(REGISTRATION) | {
        "model_name": "churn", "version": 3, "model_format": "lightgbm_text", "features": FEATURES,
        "objective": "binary", "artifact_sha256": hashlib.sha256(model).hexdigest(),
    }  # fmt: skip
    uri = publish_repository(registration, model, str(tmp_path / "serving"), gpu=True)  # type: ignore[arg-type]
    return registration, Path(uri.removeprefix("file://"))


def _pinned_env(registration: dict[str, Any]) -> dict[str, str]:
    """The predictor's environment as promote renders the InferenceService for this registration."""
    from components.config import PromoteSettings

    service = render_inference_service(registration, storage_uri="s3://models/x",  # type: ignore[arg-type]
                                       settings=PromoteSettings(namespace="fraud"), canary_percent=10)  # fmt: skip
    env = service["spec"]["predictor"]["model"]["env"]
    return {item["name"]: item["value"] for item in env}


def _start(repository: Path, env: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Start the predictor as the runtime says, tritonserver replaced by LOADER; check=False runs the
    runtime's args alone (the check off). The check runs without site-packages (-I -S), as in the
    Triton image, which has none of this package's dependencies."""
    runtime = yaml.safe_load((REPO / "manifests/base/serving/triton-runtime.yaml").read_text())
    (container,) = runtime["spec"]["containers"]
    command = [
        str(REPO / "components/serving/served_bytes.py") if part.endswith("/served_bytes.py")
        else f"--repository={repository}" if part.startswith("--repository=")
        else sys.executable if part == "python3" else part
        for part in container["command"]
    ]  # fmt: skip
    command[1:1] = ["-I", "-S"]
    assert container["args"][0] == "tritonserver" and "--model-store=/mnt/models" in container["args"]
    served = [sys.executable, "-c", LOADER, str(repository)]
    argv = command + served if check else served
    return subprocess.run(argv, cwd=REPO, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True)


def test_promotes_own_publish_serves(models: dict[str, bytes], tmp_path: Path) -> None:
    """Positive control: the bytes promote published start, and the logged sha256 is the registry's."""
    registration, repository = _published(tmp_path, models["signed"])
    env = _pinned_env(registration)
    assert env == {served_bytes.EXPECTED_SHA256_ENV: registration["artifact_sha256"]}
    started = _start(repository, env)
    assert started.returncode == 0, started.stderr
    assert started.stdout.split() == [
        "served",
        registration["artifact_sha256"],
        "logged",
        registration["artifact_sha256"],
    ]
    assert served_bytes.REFUSED_EXIT_CODE == PERMANENT_EXIT_CODE


def _forge(repository: Path, forged: bytes, registration: dict[str, Any], version: int) -> None:
    """What a tenant key can do: PUT a consistent repository (the platform's own writer, the forged
    bytes' own sha256 in the config) over the published names."""
    scratch = repository.parent / "forgery"
    write_repository(scratch, "churn", version, "lightgbm_text", forged, FEATURES, gpu=True, regression=True)
    shutil.copytree(scratch, repository, dirs_exist_ok=True)


def test_a_tenant_key_overwrite_is_refused_and_serves_with_the_check_off(
    models: dict[str, bytes], tmp_path: Path
) -> None:
    registration, repository = _published(tmp_path, models["signed"])
    env, forged_sha = _pinned_env(registration), hashlib.sha256(models["forged"]).hexdigest()
    _forge(repository, models["forged"], registration, 3)
    refused = _start(repository, env)
    assert refused.returncode == PERMANENT_EXIT_CODE and not refused.stdout, refused
    assert f"has sha256 {forged_sha}, not {registration['artifact_sha256']}" in refused.stderr
    assert "mlops verify churn" in refused.stderr and "mc cp --version-id" in refused.stderr
    assert "Immutable artifacts" in refused.stderr
    # Broken on purpose: without the check the forgery serves and the decision log records its hash.
    unchecked = _start(repository, env, check=False)
    assert unchecked.returncode == 0, unchecked.stderr
    assert unchecked.stdout.split() == ["served", forged_sha, "logged", forged_sha]


def test_the_model_file_alone_a_newer_version_or_no_pin_is_refused(models: dict[str, bytes], tmp_path: Path) -> None:
    registration, repository = _published(tmp_path, models["signed"])
    env, model_file = _pinned_env(registration), repository / "churn" / "3" / "model.txt"
    model_file.write_bytes(models["forged"])  # the config still names the registered sha256
    refused = _start(repository, env)
    assert refused.returncode == PERMANENT_EXIT_CODE and "not signed off" in refused.stderr, refused
    assert _start(repository, env, check=False).stdout.split()[1] == hashlib.sha256(models["forged"]).hexdigest()

    registration, repository = _published(tmp_path / "newer", models["signed"])
    _forge(repository, models["forged"], registration, 4)  # Triton serves the newest version folder
    refused = _start(repository, env)
    assert refused.returncode == PERMANENT_EXIT_CODE and "2 version folders ['3', '4']" in refused.stderr, refused
    assert _start(repository, env, check=False).stdout.split()[1] == hashlib.sha256(models["forged"]).hexdigest()

    registration, repository = _published(tmp_path / "unpinned", models["signed"])
    refused = _start(repository, {})
    assert refused.returncode == PERMANENT_EXIT_CODE and "no pinned model sha256" in refused.stderr, refused


def test_a_config_naming_another_sha256_is_refused(models: dict[str, bytes], tmp_path: Path) -> None:
    """The bytes are the registry's but the config records another sha256 (what the log would name)."""
    registration, repository = _published(tmp_path, models["signed"])
    config = repository / "churn" / "config.pbtxt"
    config.write_text(config.read_text().replace(registration["artifact_sha256"], "0" * 64))
    with pytest.raises(served_bytes.ServedBytesError, match=r"records mlops_model_sha256 \['0{64}'\]"):
        served_bytes.verify_repository(repository, registration["artifact_sha256"])
