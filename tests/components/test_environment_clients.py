"""temporary_env drops the S3 clients libraries cache per endpoint but not per credential.

MLflow caches its boto3 client by endpoint (`_cached_get_s3_client`, the environment's keys are not
part of the key), so code that acts as one identity after another in one process (the tests, a warm
worker's children) would sign with the earlier identity's key. The control shows the cache doing
exactly that when the environment changes without temporary_env."""

from __future__ import annotations

import pytest

from components.environment import temporary_env

ENDPOINT = "http://127.0.0.1:9"  # never called: a client is made, no request is sent


def _keys(name: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": name, "AWS_SECRET_ACCESS_KEY": f"{name}-secret", "AWS_DEFAULT_REGION": "us-east-1"}


def _signing_key(client: object) -> str:
    credentials = client._request_signer._credentials  # type: ignore[attr-defined]
    return str(credentials.access_key)


def test_each_environment_gets_a_client_with_its_own_key() -> None:
    from mlflow.store.artifact import s3_artifact_repo

    with temporary_env(_keys("first-identity")):
        first = s3_artifact_repo._get_s3_client(s3_endpoint_url=ENDPOINT)
    with temporary_env(_keys("second-identity")):
        second = s3_artifact_repo._get_s3_client(s3_endpoint_url=ENDPOINT)
    assert _signing_key(first) == "first-identity" and _signing_key(second) == "second-identity"


def test_control_without_the_drop_the_cache_signs_with_the_earlier_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.store.artifact import s3_artifact_repo

    s3_artifact_repo._cached_get_s3_client.cache_clear()
    for name, value in _keys("first-identity").items():
        monkeypatch.setenv(name, value)
    first = s3_artifact_repo._get_s3_client(s3_endpoint_url=ENDPOINT)
    for name, value in _keys("second-identity").items():
        monkeypatch.setenv(name, value)
    again = s3_artifact_repo._get_s3_client(s3_endpoint_url=ENDPOINT)
    assert again is first and _signing_key(again) == "first-identity"
    s3_artifact_repo._cached_get_s3_client.cache_clear()
