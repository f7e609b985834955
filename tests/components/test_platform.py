"""The platform profile is chosen by environment, and a half-set environment is refused by name."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from components import platform
from components.errors import ComponentError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (platform.PROFILE, platform.FEAST_REGISTRY, platform.FEAST_REDIS):
        monkeypatch.delenv(name, raising=False)


def test_no_platform_variables_keep_the_embedded_stores(tmp_path: Path) -> None:
    assert platform.feast_store_config(tmp_path, "fraud") is None


def test_platform_profile_without_redis_names_the_missing_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(platform.PROFILE, "platform")
    monkeypatch.setenv(platform.FEAST_REGISTRY, "postgresql+psycopg://u:p@127.0.0.1:6432/feast")
    with pytest.raises(ComponentError) as caught:
        platform.feast_store_config(tmp_path, "fraud")
    assert "MLOPS_FEAST_REDIS is not set" in caught.value.problem
    assert "mlops dev env" in caught.value.fix


def test_platform_store_config_disables_prepared_statements_for_pgbouncer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(platform.FEAST_REGISTRY, "postgresql+psycopg://u:p@127.0.0.1:6432/feast")
    monkeypatch.setenv(platform.FEAST_REDIS, "127.0.0.1:6379")
    config = platform.feast_store_config(tmp_path, "fraud")
    assert config is not None
    assert config["registry"]["registry_type"] == "sql"
    assert config["registry"]["sqlalchemy_config_kwargs"]["connect_args"] == {"prepare_threshold": None}
    assert config["online_store"] == {"type": "redis", "connection_string": "127.0.0.1:6379"}
    assert config["materialization_config"]["pull_latest_features"] is True


def test_a_tracking_server_that_is_down_fails_in_seconds_naming_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    started = time.monotonic()
    with pytest.raises(ComponentError) as caught:
        platform.check_tracking_server("register", f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < 5
    assert f"MLflow tracking server at http://127.0.0.1:{port} is not reachable" in caught.value.problem
    assert "MLFLOW_TRACKING_URI" in caught.value.fix


def test_s3_artifacts_without_an_endpoint_are_refused_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with pytest.raises(ComponentError) as caught:
        platform.check_s3_artifacts("register", "s3://mlflow-artifacts/1")
    assert "MLFLOW_S3_ENDPOINT_URL is not set" in caught.value.problem
