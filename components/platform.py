"""The platform profile: the same steps on PostgreSQL, Redis, S3 and an MLflow server, by environment.

Embedded defaults (sqlite, files under $MLOPS_HOME) serve a laptop. On the platform the
steps read where the services are from the environment, which the cluster sets from a
ConfigMap and Secrets and `mlops dev env` sets on a laptop:

    MLOPS_PROFILE=platform          refuse to fall back to embedded stores silently
    MLFLOW_TRACKING_URI             the tracking server (backend on PostgreSQL)
    MLFLOW_S3_ENDPOINT_URL          the S3 server that holds MLflow's artifacts (direct mode)
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    MLOPS_FEAST_REGISTRY_URL        Feast's SQL registry (postgresql+psycopg://..., via PgBouncer)
    MLOPS_FEAST_REDIS               Feast's Redis online store (host:port)
    MLOPS_SERVING_ROOT              where promote publishes serving repositories (s3://models)

The checks here turn the private platform's classic failures (the design module's table:
no S3 endpoint, wrong keys, an S3 that answers 500, a tracking server that is down) into
errors that name the variable or the server, in seconds rather than after minutes of retries.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from components.errors import ComponentError

PROFILE = "MLOPS_PROFILE"
FEAST_REGISTRY = "MLOPS_FEAST_REGISTRY_URL"
FEAST_REDIS = "MLOPS_FEAST_REDIS"
SERVING_ROOT = "MLOPS_SERVING_ROOT"
S3_ENDPOINT = "MLFLOW_S3_ENDPOINT_URL"

# Caps applied unless the operator decides otherwise: a broken store must fail in seconds.
CLIENT_DEFAULTS = {
    "AWS_METADATA_SERVICE_TIMEOUT": "1",
    "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "1",
    "AWS_MAX_ATTEMPTS": "2",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def apply_client_defaults() -> None:
    for key, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)


def is_platform() -> bool:
    return os.environ.get(PROFILE, "embedded") == "platform"


def _required(step: str, variable: str, what: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        raise ComponentError(
            step,
            f"{variable} is not set, and the platform profile (MLOPS_PROFILE=platform) needs {what}",
            f"set {variable} (on a laptop: eval \"$(mlops dev env)\"; on the cluster: the pipeline's ConfigMap)",
        )
    return value


def feast_store_config(store_dir: Path, project: str, step: str = "materialize") -> dict[str, Any] | None:
    """feature_store.yaml for the platform (SQL registry, Redis online store), or None for embedded.

    The registry's engine disables psycopg's automatic prepared statements: PgBouncer in
    transaction pooling hands each transaction to any server connection, where a statement
    prepared on another one does not exist.
    """
    registry = os.environ.get(FEAST_REGISTRY, "")
    redis = os.environ.get(FEAST_REDIS, "")
    if not (registry or redis or is_platform()):
        return None
    registry = _required(step, FEAST_REGISTRY, "Feast's SQL registry on PostgreSQL")
    redis = _required(step, FEAST_REDIS, "Feast's Redis online store")
    return {
        "project": project,
        "provider": "local",
        "registry": {
            "registry_type": "sql",
            "path": registry,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True, "connect_args": {"prepare_threshold": None}},
        },
        "online_store": {"type": "redis", "connection_string": redis},
        "offline_store": {"type": "file"},
        # For views that take Feast's own path (components/online_writer.py covers the common
        # ones): pull each entity's latest row per window instead of every event. Same values
        # online, a tenth of the rows in memory at 10 events per entity; speed unchanged.
        "materialization_config": {"pull_latest_features": True, "online_write_batch_size": 10_000},
        "entity_key_serialization_version": 3,
    }


def check_tracking_server(step: str, tracking_uri: str, timeout: float = 3.0) -> None:
    """Fail in seconds, naming the server, when an http(s) tracking server does not answer."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"answered HTTP {response.status} on /health"
    except urllib.error.HTTPError as error:
        problem = f"answered HTTP {error.code} on /health"
    except (OSError, ValueError) as error:
        problem = f"is not reachable ({getattr(error, 'reason', error)})"
    raise ComponentError(
        step,
        f"the MLflow tracking server at {tracking_uri} {problem}",
        "start it or fix MLFLOW_TRACKING_URI; models already deployed keep serving from S3 meanwhile",
    )


def check_s3_artifacts(step: str, location: str, timeout: float = 3.0) -> None:
    """Before writing artifacts to `location` (s3://bucket/...), prove the client can reach it.

    Without MLFLOW_S3_ENDPOINT_URL boto3 goes to AWS, which a private network answers with a
    long hang; wrong keys or a failing store would surface deep inside MLflow after retries.
    One HeadBucket with a short timeout and no retries classifies all three.
    """
    if not location.startswith("s3://"):
        return
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    apply_client_defaults()
    endpoint = os.environ.get(S3_ENDPOINT) or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise ComponentError(
            step,
            f"artifacts go to {location}, but {S3_ENDPOINT} is not set, so the client would try AWS",
            f"set {S3_ENDPOINT} to the platform's S3 endpoint (e.g. http://minio.storage.svc:9000)",
        )
    bucket = urlparse(location).netloc
    # A fresh session: the default one caches the credentials it first found.
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        config=Config(
            signature_version="s3v4",
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
        ),
    )
    try:
        client.head_bucket(Bucket=bucket)
    except NoCredentialsError as error:
        raise ComponentError(
            step,
            f"no S3 credentials for {endpoint}",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (from the tenant's Secret)",
        ) from error
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if status in (401, 403) or code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "403"):
            raise ComponentError(
                step,
                f"S3 at {endpoint} rejected the credentials for bucket {bucket!r} ({code or status})",
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that the key may use this bucket",
            ) from error
        if status == 404 or code in ("404", "NoSuchBucket"):
            raise ComponentError(
                step, f"bucket {bucket!r} does not exist at {endpoint}", "create it, or fix the artifact location"
            ) from error
        raise ComponentError(
            step,
            f"S3 at {endpoint} answered {status or code} for bucket {bucket!r}: the object store is failing",
            f"check the object store's health and logs (mlops doctor); {S3_ENDPOINT} points at it",
        ) from error
    except BotoCoreError as error:
        raise ComponentError(
            step,
            f"S3 at {endpoint} is not reachable: {error}",
            f"check {S3_ENDPOINT} and that the object store is up",
        ) from error


def serving_root(default: str) -> str:
    return os.environ.get(SERVING_ROOT) or default
