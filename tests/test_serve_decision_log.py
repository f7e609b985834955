"""Where `mlops serve --with-features` sends the local transformer's decisions (issue 32 item 5): the
reader's derivation (components.platform.decisions.decision_log_root), so `mlops audit` finds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.cli.serving import _decision_log_environment


def test_local_profile_logs_under_mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    for name in ("MLOPS_PROFILE", "MLOPS_DECISION_LOG_URI", "MLOPS_NAMESPACE", "MLOPS_SERVING_ROOT"):
        monkeypatch.delenv(name, raising=False)
    assert _decision_log_environment("fraud") == {
        "MLOPS_DECISION_LOG_URI": f"{tmp_path.resolve().as_posix()}/decisions/",
        "MLOPS_NAMESPACE": "local",
    }


def test_platform_profile_logs_in_the_tenants_prefix_of_the_decisions_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_PROFILE", "platform")
    for name in ("MLOPS_DECISION_LOG_URI", "MLOPS_NAMESPACE", "MLOPS_MLFLOW_ARTIFACT_ROOT", "MLOPS_OFFLINE_STORE_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_SERVING_ROOT", "s3://models/acme")  # `mlops tenant env`
    assert _decision_log_environment("fraud") == {
        "MLOPS_DECISION_LOG_URI": "s3://decisions/acme/",
        "MLOPS_NAMESPACE": "acme",
    }
    monkeypatch.setenv("MLOPS_SERVING_ROOT", "s3://models")  # `mlops dev env`: no tenant's prefix
    assert _decision_log_environment("fraud") == {
        "MLOPS_DECISION_LOG_URI": "s3://decisions/fraud/",
        "MLOPS_NAMESPACE": "fraud",
    }
