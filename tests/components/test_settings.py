"""The platform settings: one model to environment and back, the platform profile never falls back to
an embedded store, and a half-set environment is refused by name and classified permanent or transient."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from components.errors import TRANSIENT_EXIT_CODE, ComponentError, TransientError
from components.platform import services, settings
from components.platform.settings import PlatformSettings, variable_of

PLATFORM_VARIABLES = {variable_of(field) for field in PlatformSettings.model_fields if field != "client_caps"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in PLATFORM_VARIABLES | {"AWS_ENDPOINT_URL", "FSSPEC_S3_ENDPOINT_URL", "MLOPS_FEAST_REDIS_PASSWORD"}:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))


def test_settings_round_trip_through_the_environment() -> None:
    from pipelines.cluster import cluster_settings

    for configured in (cluster_settings(), cluster_settings("fraud")):
        env = settings.environment(configured)
        assert settings.from_environment(env) == configured
        assert env["AWS_ENDPOINT_URL"] == env["FSSPEC_S3_ENDPOINT_URL"] == configured.s3_endpoint
        assert env["AWS_MAX_ATTEMPTS"] == "2" and env["MLFLOW_DISABLE_TELEMETRY"] == "true"
        assert not set(env) & set(settings.SECRET_VARIABLES), "credentials never go into the ConfigMap"


def test_no_platform_variables_keep_the_embedded_stores(tmp_path: Path) -> None:
    assert services.feast_store_config("fraud") is None
    assert services.tracking_uri("register") == f"sqlite:///{tmp_path / 'home' / 'mlflow' / 'mlflow.db'}"
    assert services.serving_root() == (tmp_path / "home" / "serving").as_uri()
    assert services.offline_root() == str(tmp_path / "home" / "offline")


@pytest.mark.parametrize(
    ("field", "resolve"),
    [
        ("tracking_uri", lambda: services.tracking_uri("register")),
        ("serving_root", lambda: services.serving_root("promote")),
        ("offline_store_uri", lambda: services.offline_root("materialize")),
        ("feast_redis", lambda: services.feast_store_config("fraud")),
    ],
)
def test_platform_profile_never_falls_back_and_names_the_configmap_key(
    monkeypatch: pytest.MonkeyPatch, field: str, resolve: Any
) -> None:
    from pipelines.cluster import cluster_settings

    complete = settings.environment(cluster_settings("fraud"))
    for key, value in complete.items():
        monkeypatch.setenv(key, value)
    resolve()  # positive control: with every key set the resolver answers
    monkeypatch.delenv(variable_of(field))
    with pytest.raises(ComponentError) as caught:
        resolve()
    assert not isinstance(caught.value, TransientError)
    assert f"{variable_of(field)} is not set" in caught.value.problem
    assert f"add the key {variable_of(field)} to the mlops-platform ConfigMap" in caught.value.fix
    assert "mlops dev env" in caught.value.fix


def test_a_misspelled_profile_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_PROFILE", "platfrom")
    with pytest.raises(ComponentError, match="MLOPS_PROFILE is 'platfrom'"):
        settings.from_environment()


def test_platform_store_config_disables_prepared_statements_for_pgbouncer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_FEAST_REGISTRY_URL", "postgresql+psycopg://feast@127.0.0.1:6432/feast")
    monkeypatch.setenv("MLOPS_FEAST_REGISTRY_PASSWORD", "s3cret")
    monkeypatch.setenv("MLOPS_FEAST_REDIS", "127.0.0.1:6379")
    config = services.feast_store_config("fraud")
    assert config is not None
    assert config["registry"]["registry_type"] == "sql"
    assert config["registry"]["path"] == "postgresql+psycopg://feast:s3cret@127.0.0.1:6432/feast"
    assert config["registry"]["sqlalchemy_config_kwargs"]["connect_args"] == {"prepare_threshold": None}
    assert config["online_store"] == {"type": "redis", "connection_string": "127.0.0.1:6379"}
    assert config["materialization_config"]["pull_latest_features"] is True
    monkeypatch.setenv("MLOPS_FEAST_REDIS_PASSWORD", "r3dis")
    redis_config = services.feast_store_config("fraud")
    assert redis_config is not None
    assert redis_config["online_store"]["connection_string"] == "127.0.0.1:6379,password=r3dis"


def test_a_tracking_server_that_is_down_fails_in_seconds_naming_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        services.check_tracking_server("register", f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < 5
    assert f"MLflow tracking server at http://127.0.0.1:{port} is not reachable" in caught.value.problem
    assert "MLFLOW_TRACKING_URI" in caught.value.fix
    assert caught.value.exit_code == TRANSIENT_EXIT_CODE and "failure: transient (exit 75" in str(caught.value)


def test_s3_artifacts_without_an_endpoint_are_refused_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with pytest.raises(ComponentError) as caught:
        services.check_s3_artifacts("register", "s3://mlflow-artifacts/1")
    assert "MLFLOW_S3_ENDPOINT_URL is not set" in caught.value.problem
    assert not caught.value.retryable and "failure: permanent (exit 2" in str(caught.value)
