"""`mlops doctor`: the platform's known failure modes, checked live, each with its fix.

Every check answers one entry of the design module's common-failures table. Live checks read
the client environment and ask the services themselves (S3, the tracking server, PostgreSQL,
Redis); manifest checks read rendered objects (a kustomize folder or YAML files), because
this machine has no cluster. A check that cannot run says why (SKIP), never passes silently.
"""

from __future__ import annotations

import email.utils
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlops.doctor_manifests import (
    MANIFEST_CHECKS,
    check_artifact_repositories,
    check_canary_mode,
    check_gpu_memory_limits,
    check_gpu_min_scale,
)
from mlops.findings import FAIL, OK, SKIP, WARN, Context, Finding

SKEW_WARN_SECONDS = 60.0
SKEW_FAIL_SECONDS = 600.0  # S3 rejects signatures beyond 15 minutes (RequestTimeTooSkewed)
__all__ = [
    "FAIL",
    "OK",
    "SKIP",
    "WARN",
    "Context",
    "Finding",
    "check_artifact_repositories",
    "check_canary_mode",
    "check_gpu_memory_limits",
    "check_gpu_min_scale",
    "diagnose",
    "load_objects",
]


# --- client environment -----------------------------------------------------------------------


def check_platform_settings(ctx: Context) -> Finding:
    """In the platform profile every setting a step reads must be there: a pod would fail on it."""
    from components.errors import ComponentError
    from components.platform.settings import (
        CONFIGMAP,
        EMPTY_MEANS_DEFAULT,
        PlatformSettings,
        from_environment,
        variable_of,
    )

    name = "platform-settings"
    try:
        settings = from_environment(ctx.env)
    except ComponentError as error:
        return Finding(name, FAIL, error.problem, error.fix)
    if not settings.is_platform:
        return Finding(
            name, SKIP, "embedded profile: unset stores live under $MLOPS_HOME (MLOPS_PROFILE=platform to check)"
        )
    fields = [
        field
        for field in PlatformSettings.model_fields
        if field not in ("profile", "client_caps") and field not in EMPTY_MEANS_DEFAULT
    ]
    missing = [variable_of(field) for field in fields if not getattr(settings, field)]
    if missing:
        return Finding(
            name,
            FAIL,
            f"the platform profile is missing {', '.join(missing)}: steps stop on the first one they need",
            f'add them to the {CONFIGMAP} ConfigMap (cluster) or eval "$(mlops dev env)" (laptop)',
        )
    return Finding(name, OK, f"all {len(fields)} platform settings set")


def check_s3_endpoint(ctx: Context) -> Finding:
    name = "s3-endpoint"
    uses_s3 = ctx.env.get("MLOPS_PROFILE") == "platform" or ctx.env.get("MLOPS_MLFLOW_ARTIFACT_ROOT", "").startswith(
        "s3://"
    )
    endpoint = ctx.env.get("MLFLOW_S3_ENDPOINT_URL") or ctx.env.get("AWS_ENDPOINT_URL")
    if endpoint:
        return Finding(name, OK, f"MLFLOW_S3_ENDPOINT_URL={endpoint}")
    if not uses_s3:
        return Finding(name, SKIP, "no S3 artifact store configured (embedded profile)")
    return Finding(
        name,
        FAIL,
        "MLFLOW_S3_ENDPOINT_URL is not set: boto3 will try AWS and hang or fail on a private network",
        "set MLFLOW_S3_ENDPOINT_URL to the object store (e.g. http://minio.storage.svc:9000)",
    )


def check_s3_signature(ctx: Context) -> Finding:
    """Signature v2 ('s3') is rejected by MinIO, SeaweedFS and Ceph with auth v4 only."""
    name = "s3-signature"
    import botocore.session

    session = botocore.session.Session()
    if ctx.env.get("AWS_CONFIG_FILE"):
        session.set_config_variable("config_file", ctx.env["AWS_CONFIG_FILE"])
    if ctx.env.get("AWS_PROFILE"):
        session.set_config_variable("profile", ctx.env["AWS_PROFILE"])
    try:
        scoped = session.get_scoped_config()
    except Exception as error:  # a missing profile is itself a finding
        return Finding(name, FAIL, f"AWS config unreadable: {error}", "fix AWS_CONFIG_FILE / AWS_PROFILE")
    version = str((scoped.get("s3") or {}).get("signature_version", "")) if isinstance(scoped, dict) else ""
    if version in ("s3", "s3v2", "v2"):
        return Finding(
            name,
            FAIL,
            f"S3 signature version {version!r} (v2) in the AWS config; private object stores answer 403",
            "remove signature_version from the [s3] section of the AWS config, or set it to s3v4",
        )
    return Finding(name, OK, f"signature {version or 's3v4 (default)'}")


def check_metadata_timeout(ctx: Context) -> Finding:
    name = "aws-metadata-timeout"
    value = ctx.env.get("AWS_METADATA_SERVICE_TIMEOUT")
    if value:
        return Finding(name, OK, f"AWS_METADATA_SERVICE_TIMEOUT={value}")
    return Finding(
        name,
        WARN,
        "AWS_METADATA_SERVICE_TIMEOUT is unset: without credentials boto3 polls a cloud metadata service"
        " that does not exist here, and the step hangs without a word",
        "set AWS_METADATA_SERVICE_TIMEOUT=1 and AWS_METADATA_SERVICE_NUM_ATTEMPTS=1 (the components default them)",
    )


# --- live services ----------------------------------------------------------------------------------


def check_tracking_artifacts(ctx: Context) -> Finding:
    """The classic half-outage: runs log fine, then every model upload fails."""
    from components.environment import temporary_env
    from components.errors import ComponentError
    from components.platform.services import check_s3_artifacts, check_tracking_server

    name = "tracking-artifacts"
    uri = ctx.env.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        return Finding(name, SKIP, "no tracking server configured (MLFLOW_TRACKING_URI)")
    try:
        check_tracking_server("doctor", uri)
    except ComponentError as error:
        return Finding(name, FAIL, error.problem, error.fix)
    root = ctx.env.get("MLOPS_MLFLOW_ARTIFACT_ROOT") or _default_artifact_root(uri)
    if not root.startswith("s3://"):
        return Finding(name, OK, f"tracking server up; artifacts at {root or 'the server'}")
    try:
        with temporary_env(ctx.env, replace=True):
            check_s3_artifacts("doctor", root)
    except ComponentError as error:
        problem = f"tracking server {uri} is up, but its artifacts are not: {error.problem}"
        return Finding(name, FAIL, problem, error.fix)
    return Finding(name, OK, f"tracking server up; {root} reachable")


def _default_artifact_root(uri: str) -> str:
    import json
    import urllib.request

    try:
        url = f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/get?experiment_id=0"
        with urllib.request.urlopen(url, timeout=3) as response:
            location = json.loads(response.read())["experiment"]["artifact_location"]
    except Exception:
        return ""
    return str(location).rsplit("/", 1)[0] if str(location).startswith("s3://") else str(location)


def _postgres_url(ctx: Context) -> str:
    from components.platform.services import with_password

    url = ctx.env.get("MLOPS_DOCTOR_POSTGRES_URL") or with_password(
        ctx.env.get("MLOPS_FEAST_REGISTRY_URL", ""), ctx.env.get("MLOPS_FEAST_REGISTRY_PASSWORD", "")
    )
    return url.replace("postgresql+psycopg2://", "postgresql://").replace("postgresql+psycopg://", "postgresql://")


def check_postgres_connections(ctx: Context) -> Finding:
    """Parallel writers beyond max_connections fail with 'too many clients' unless pooled."""
    name = "postgres-connections"
    url = _postgres_url(ctx)
    if not url:
        return Finding(name, SKIP, "no PostgreSQL URL (MLOPS_DOCTOR_POSTGRES_URL or MLOPS_FEAST_REGISTRY_URL)")
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3, prepare_threshold=None, autocommit=True) as connection:
            rows = connection.execute(
                "select current_setting('max_connections')::int,"
                " current_setting('superuser_reserved_connections')::int, inet_server_port()"
            ).fetchone()
    except psycopg.Error as error:
        return Finding(name, FAIL, f"PostgreSQL at {urlparse(url).hostname} refused: {str(error).strip()}", "")
    assert rows is not None
    max_connections, reserved, server_port = rows
    usable = max_connections - reserved
    client_port = urlparse(url).port or 5432
    pooled = server_port is not None and int(server_port) != client_port
    via = f"through a pooler on :{client_port} to :{server_port}" if pooled else "directly"
    if pooled:
        return Finding(name, OK, f"max_connections {max_connections}, reached {via}: writers queue in the pool")
    if usable < ctx.planned_writers:
        return Finding(
            name,
            FAIL,
            f"max_connections {max_connections} ({usable} for applications) < {ctx.planned_writers} planned"
            f" parallel writers, reached {via}: expect 'too many clients already'",
            "put PgBouncer (transaction pooling) in front and point clients at it, or raise max_connections",
        )
    return Finding(name, OK, f"max_connections {max_connections} covers {ctx.planned_writers} writers ({via})")


def check_redis_memory(ctx: Context) -> Finding:
    name = "redis-memory"
    address = ctx.env.get("MLOPS_FEAST_REDIS", "")
    if not address:
        return Finding(name, SKIP, "no Redis online store configured (MLOPS_FEAST_REDIS)")
    import redis

    from components.platform.services import redacted, redis_connection_string
    from components.serving.online_reader import redis_client

    connection = redis_connection_string(
        address, ctx.env.get("MLOPS_FEAST_REDIS_USERNAME", ""), ctx.env.get("MLOPS_FEAST_REDIS_PASSWORD", "")
    )
    address = redacted(address)  # never print a password someone put in the address
    try:
        client = redis_client(connection)
        maxmemory = int(client.config_get("maxmemory")["maxmemory"])
        policy = str(client.config_get("maxmemory-policy")["maxmemory-policy"])
    except redis.exceptions.NoPermissionError:
        return Finding(
            name,
            SKIP,
            f"the Redis user at {address} may not read CONFIG: a tenant's user administers nothing,"
            " the platform sets its memory limit",
        )
    except Exception as error:
        problem = redacted(str(error))
        return Finding(
            name, FAIL, f"Redis at {address} did not answer: {problem}", "check MLOPS_FEAST_REDIS and the pod"
        )
    if maxmemory == 0:
        return Finding(
            name,
            FAIL,
            f"Redis at {address} has no maxmemory: it grows until the kernel OOM-kills it, losing the online store",
            "set maxmemory below the container limit (about 75%) and maxmemory-policy allkeys-lru",
        )
    if policy == "noeviction" or policy.startswith("volatile-"):
        return Finding(
            name,
            FAIL,
            f"maxmemory-policy {policy}: once full, Feast's writes fail (OOM command not allowed)",
            "set maxmemory-policy allkeys-lru; an evicted entity is refilled by `mlops materialize --rebuild`",
        )
    return Finding(name, OK, f"maxmemory {maxmemory // (1 << 20)} MiB, {policy}")


def check_clock_skew(ctx: Context) -> Finding:
    """Signed S3 requests fail beyond 15 minutes of skew; tokens and schedules drift before that."""
    name = "clock-skew"
    endpoint = ctx.env.get("MLFLOW_S3_ENDPOINT_URL") or ctx.env.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return Finding(name, SKIP, "no S3 endpoint to compare clocks with")
    import urllib.error
    import urllib.request

    try:
        sent = ctx.now()
        with urllib.request.urlopen(endpoint, timeout=3) as response:
            date = response.headers.get("Date")
    except urllib.error.HTTPError as error:  # 403 for an anonymous request still carries a Date
        date = error.headers.get("Date")
    except OSError as error:
        return Finding(name, FAIL, f"S3 at {endpoint} not reachable: {error}", "check MLFLOW_S3_ENDPOINT_URL")
    if not date:
        return Finding(name, SKIP, f"S3 at {endpoint} sent no Date header")
    skew = email.utils.parsedate_to_datetime(date).timestamp() - sent
    detail = f"this machine is {abs(skew):.0f} s {'behind' if skew > 0 else 'ahead of'} S3 at {endpoint}"
    if abs(skew) >= SKEW_FAIL_SECONDS:
        return Finding(name, FAIL, detail + " (RequestTimeTooSkewed soon or now)", "sync both clocks with NTP/chrony")
    if abs(skew) >= SKEW_WARN_SECONDS:
        return Finding(name, WARN, detail, "sync both clocks with NTP/chrony")
    return Finding(name, OK, f"clock within {abs(skew):.0f} s of S3")


LIVE_CHECKS = (
    check_platform_settings,
    check_s3_endpoint,
    check_s3_signature,
    check_metadata_timeout,
    check_tracking_artifacts,
    check_postgres_connections,
    check_redis_memory,
    check_clock_skew,
)


def load_objects(path: Path) -> list[dict[str, Any]]:
    """Rendered objects from a kustomize folder, a YAML file, or a folder of YAML files."""
    import yaml

    from mlops.lint import render

    if path.is_dir() and (path / "kustomization.yaml").exists():
        return render(path)
    files = sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
    return [doc for file in files for doc in yaml.safe_load_all(file.read_text()) if isinstance(doc, dict)]


def diagnose(ctx: Context) -> list[Finding]:
    findings = []
    for check in (*LIVE_CHECKS, *MANIFEST_CHECKS):
        try:
            findings.append(check(ctx))
        except Exception as error:  # a crashing check is reported, and does not hide the others
            findings.append(Finding(check.__name__.removeprefix("check_"), FAIL, f"check crashed: {error!r}"))
    return findings
