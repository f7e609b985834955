"""The stores a step uses, resolved from the platform settings, and fast checks that they answer.

Each resolver returns the platform's service when the settings name one, the embedded store
under $MLOPS_HOME on a laptop, and in the platform profile refuses to fall back (a permanent
failure naming the ConfigMap key). The checks turn the private platform's classic failures
(the design module's table: no S3 endpoint, wrong keys, an S3 that answers 500, a tracking
server that is down) into errors that name the variable or the server, in seconds rather than
after minutes of retries, and say whether a retry can help.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlsplit, urlunsplit

from components.environment import mlops_home
from components.errors import ComponentError, TransientError
from components.platform.settings import PlatformSettings, apply_client_caps, from_environment

__all__ = [
    "artifact_root",
    "check_s3_artifacts",
    "check_tracking_server",
    "embedded_artifact_root",
    "embedded_tracking_uri",
    "feast_store_config",
    "offline_root",
    "redacted",
    "redis_connection_string",
    "serving_root",
    "settings",
    "tracking_uri",
    "with_password",
]


def settings() -> PlatformSettings:
    return from_environment()


def embedded_tracking_uri(home: Path | None = None) -> str:
    return f"sqlite:///{(home or mlops_home()) / 'mlflow' / 'mlflow.db'}"


def embedded_artifact_root(home: Path | None = None) -> str:
    return ((home or mlops_home()) / "mlflow" / "artifacts").as_uri()


def tracking_uri(step: str, explicit: str | None = None) -> str:
    """The MLflow tracking URI: explicit, the platform's server, or the embedded sqlite registry."""
    return explicit or settings().require("tracking_uri", step) or embedded_tracking_uri()


def artifact_root(step: str, tracking: str, explicit: str | None = None) -> str | None:
    """Where a new experiment keeps its artifacts; None lets the tracking server decide."""
    if explicit:
        return explicit
    configured = settings().mlflow_artifact_root
    if configured:
        return configured
    return embedded_artifact_root() if tracking.startswith("sqlite") else None


def serving_root(step: str = "promote") -> str:
    """Where promote publishes model repositories: the platform's bucket, or $MLOPS_HOME/serving."""
    return settings().require("serving_root", step) or (mlops_home() / "serving").as_uri()


def offline_root(step: str = "materialize") -> str:
    """Root of the offline store: the platform's bucket, or $MLOPS_HOME/offline."""
    return settings().require("offline_store_uri", step) or str(mlops_home() / "offline")


def with_password(url: str, password: str, username: str = "") -> str:
    """The URL with the password from its Secret; `username` replaces the URL's (the transformer's
    reader role, components/platform/readonly.py, over the ConfigMap's registry URL)."""
    parts = urlsplit(url)
    if not (password or username) or parts.password or not parts.username:
        return url
    host = parts.hostname or ""
    userinfo = (username or parts.username) + (f":{password}" if password else "")
    netloc = f"{userinfo}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redis_connection_string(address: str, username: str = "", password: str | None = None) -> str:
    """Feast's `host:port[,username=...][,password=...]`; the password from its Secret's variable."""
    password = os.environ.get("MLOPS_FEAST_REDIS_PASSWORD", "") if password is None else password
    options = [f"username={username}"] * bool(username) + [f"password={password}"] * bool(password)
    return ",".join([address, *options])


def redacted(connection_string: str) -> str:
    """A connection string fit to print: the password's value replaced."""
    return ",".join(
        "password=***" if option.startswith("password=") else option for option in connection_string.split(",")
    )


def feast_store_config(project: str, step: str = "materialize") -> dict[str, Any] | None:
    """feature_store.yaml for the platform (SQL registry, Redis online store), or None for embedded.

    The registry's engine disables psycopg's automatic prepared statements: PgBouncer in
    transaction pooling hands each transaction to any server connection, where a statement
    prepared on another one does not exist.
    """
    current = settings()
    if not (current.feast_registry_url or current.feast_redis or current.is_platform):
        return None
    strict = current.model_copy(update={"profile": "platform"})
    registry = with_password(
        strict.require("feast_registry_url", step),
        os.environ.get("MLOPS_FEAST_REGISTRY_PASSWORD", ""),
        os.environ.get("MLOPS_FEAST_REGISTRY_USERNAME", ""),
    )
    connection = redis_connection_string(strict.require("feast_redis", step), strict.feast_redis_username)
    return {
        "project": project,
        "provider": "local",
        "registry": {
            "registry_type": "sql",
            "path": registry,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True, "connect_args": {"prepare_threshold": None}},
        },
        "online_store": {"type": "redis", "connection_string": connection},
        "offline_store": {"type": "file"},
        # For views that take Feast's own path (components/platform/online_writer.py covers the common
        # ones): pull each entity's latest row per window instead of every event. Same values
        # online, a tenth of the rows in memory at 10 events per entity; speed unchanged.
        "materialization_config": {"pull_latest_features": True, "online_write_batch_size": 10_000},
        "entity_key_serialization_version": 3,
    }


def check_tracking_server(step: str, tracking_uri: str, timeout: float = 3.0) -> None:
    """Fail in seconds, naming the server, when an http(s) tracking server does not answer.

    Down or answering 5xx is transient (the retry class waits for it); any other answer means
    the URI points at something that is not MLflow's health endpoint, which no retry fixes.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return
    url = tracking_uri.rstrip("/") + "/health"
    fix = "start it or fix MLFLOW_TRACKING_URI; models already deployed keep serving from S3 meanwhile"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status == 200:
                return
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = int(error.code)
    except (OSError, ValueError) as error:
        raise TransientError(
            step,
            f"the MLflow tracking server at {tracking_uri} is not reachable ({getattr(error, 'reason', error)})",
            fix,
        ) from error
    problem = f"the MLflow tracking server at {tracking_uri} answered HTTP {status} on /health"
    if status >= 500 or status == 429:
        raise TransientError(step, problem, fix)
    raise ComponentError(step, problem, "point MLFLOW_TRACKING_URI at the tracking server itself")


def check_s3_artifacts(step: str, location: str, timeout: float = 3.0) -> None:
    """Before writing artifacts to `location` (s3://bucket/...), prove the client can reach it.

    Without MLFLOW_S3_ENDPOINT_URL boto3 goes to AWS, which a private network answers with a
    long hang; wrong keys or a failing store would surface deep inside MLflow after retries.
    One LIST of the location's own prefix (at most one key), with a short timeout and no retries,
    classifies all three. Not HeadBucket: a tenant's key may use its prefix and nothing else of
    the bucket, and HeadBucket is a bucket-wide request it is rightly refused.
    """
    if not location.startswith("s3://"):
        return
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    apply_client_caps()
    endpoint = settings().s3_endpoint
    if not endpoint:
        raise ComponentError(
            step,
            f"artifacts go to {location}, but MLFLOW_S3_ENDPOINT_URL is not set, so the client would try AWS",
            "set MLFLOW_S3_ENDPOINT_URL to the platform's S3 endpoint (e.g. http://minio.storage.svc:9000)",
        )
    parsed = urlparse(location)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
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
        client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "", MaxKeys=1)
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
                f"S3 at {endpoint} rejected the credentials for {location!r} ({code or status})",
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that the key may list and write this prefix"
                " (a tenant's key covers s3://<bucket>/<tenant>/ only: MLOPS_MLFLOW_ARTIFACT_ROOT must be inside it)",
            ) from error
        if status == 404 or code in ("404", "NoSuchBucket"):
            raise ComponentError(
                step, f"bucket {bucket!r} does not exist at {endpoint}", "create it, or fix the artifact location"
            ) from error
        raise TransientError(
            step,
            f"S3 at {endpoint} answered {status or code} for bucket {bucket!r}: the object store is failing",
            "check the object store's health and logs (mlops doctor); MLFLOW_S3_ENDPOINT_URL points at it",
        ) from error
    except BotoCoreError as error:
        raise TransientError(
            step,
            f"S3 at {endpoint} is not reachable: {error}",
            "check MLFLOW_S3_ENDPOINT_URL and that the object store is up",
        ) from error
