"""Where the platform's services are: one typed model, turned into environment variables in one place.

These are the platform connection settings, the same for every pipeline of a namespace; what one
pipeline sets for its steps (its config.yaml) is the other settings model, components.config.

A step reads the platform from its environment. On the cluster that environment comes from the
`mlops-platform` ConfigMap (`envFrom`, the non-secret settings below) and from Secrets (the
credentials in `SECRET_VARIABLES`); on a laptop `mlops dev env` prints the same variables for
the loopback stack. Both are made by `environment()`, and `from_environment()` reads them back.

Two profiles:
- embedded (a laptop, the default): whatever is not set lives under $MLOPS_HOME (sqlite, files);
- platform (`MLOPS_PROFILE=platform`, every pod): nothing falls back to an embedded store. A
  setting that is missing stops the step as a permanent failure naming the ConfigMap key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from components.errors import ComponentError

__all__ = [
    "CLIENT_CAPS",
    "CONFIGMAP",
    "EMPTY_MEANS_DEFAULT",
    "PUSHGATEWAY_CREDENTIALS",
    "SECRET_VARIABLES",
    "TENANT_CONNECTION_LIMIT",
    "TENANT_REDIS_RULES",
    "TENANT_SERVER_CONNECTIONS",
    "PlatformSettings",
    "apply_client_caps",
    "configmap_keys",
    "environment",
    "from_environment",
    "variable_of",
]

CONFIGMAP = "mlops-platform"
"""The ConfigMap each pipelines namespace holds; every step gets it through `envFrom`."""

# Caps applied unless the operator decides otherwise: a broken store must fail in seconds, and
# the step's retry class (not a client's hidden loop) decides when to try again.
CLIENT_CAPS: dict[str, str] = {
    "AWS_METADATA_SERVICE_TIMEOUT": "1",
    "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "1",
    "AWS_MAX_ATTEMPTS": "2",
    "AWS_RETRY_MODE": "standard",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

EMPTY_MEANS_DEFAULT = frozenset({"feast_redis_username", "pushgateway_url"})
"""Platform settings whose empty value has a meaning (Redis's default user), so a platform
profile is complete without them."""

TENANT_CONNECTION_LIMIT = 10
"""Direct PostgreSQL connections a tenant's role may hold, on the cluster and the loopback stack:
PgBouncer caps only the pooled ones, and a role with no limit could take every slot of
max_connections from the platform and the other tenants."""

TENANT_SERVER_CONNECTIONS = 5
"""PgBouncer's server connections per tenant role (max_user_connections), on the cluster and the
loopback stack: one tenant's burst cannot take the whole pool."""

TENANT_REDIS_RULES = "~* &* +@all -@admin -@dangerous"
"""A tenant's user on its own Redis, on the cluster and the loopback stack: its keys, and nothing
that administers the instance (FLUSHALL/FLUSHDB, CONFIG, SHUTDOWN, DEBUG, KEYS, ACL, CLIENT KILL,
MONITOR, ...: @admin and @dangerous). A Redis per tenant, because Feast's keys end with the
project name and no ACL key pattern can be exact (`~*fraud` also matches project `xfraud`)."""

SECRET_VARIABLES: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "the tenant's S3 access key",
    "AWS_SECRET_ACCESS_KEY": "the tenant's S3 secret key",
    "MLFLOW_TRACKING_USERNAME": "the tenant's MLflow user",
    "MLFLOW_TRACKING_PASSWORD": "the tenant's MLflow password",
    "MLOPS_FEAST_REGISTRY_PASSWORD": "the password of the Feast registry's database role",
    "MLOPS_FEAST_REDIS_PASSWORD": "the Redis online store's password",
}
"""Credentials: from Secrets on the cluster, never in the ConfigMap or the rendered YAML."""

PUSHGATEWAY_CREDENTIALS = ("MLOPS_PUSHGATEWAY_USERNAME", "MLOPS_PUSHGATEWAY_PASSWORD")
"""Basic auth for the tenant's own Pushgateway, on loopback only (`mlops tenant env` sets them;
components/platform/pushgateway_client.py sends them). On the cluster no ConfigMap or Secret carries them:
each tenant's Pushgateway runs in its namespace and a NetworkPolicy admits only that namespace
(pipelines/tenant_monitoring.py); on loopback, where no NetworkPolicy exists, the password is what
keeps pricing off fraud's gateway (issue 29). Unset, a push goes without credentials."""


def _env(name: str) -> Any:
    return {"env": name}


class PlatformSettings(BaseModel):
    """The non-secret settings of the platform, one field per ConfigMap key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: Literal["embedded", "platform"] = Field(
        "embedded",
        description="platform: every store is a service and nothing falls back to $MLOPS_HOME.",
        json_schema_extra=_env("MLOPS_PROFILE"),
    )
    tracking_uri: str = Field(
        "",
        description="The MLflow tracking server (backend on PostgreSQL).",
        json_schema_extra=_env("MLFLOW_TRACKING_URI"),
    )
    mlflow_artifact_root: str = Field(
        "",
        description="Where new experiments keep their artifacts (s3://mlflow-artifacts/<tenant>).",
        json_schema_extra=_env("MLOPS_MLFLOW_ARTIFACT_ROOT"),
    )
    s3_endpoint: str = Field(
        "",
        description="The S3 API of the object store; without it clients try AWS and hang.",
        json_schema_extra=_env("MLFLOW_S3_ENDPOINT_URL"),
    )
    s3_region: str = Field(
        "us-east-1", description="The region the object store signs with.", json_schema_extra=_env("AWS_DEFAULT_REGION")
    )
    feast_registry_url: str = Field(
        "",
        description="Feast's SQL registry, without its password (postgresql+psycopg://feast@pgbouncer:5432/feast).",
        json_schema_extra=_env("MLOPS_FEAST_REGISTRY_URL"),
    )
    feast_redis: str = Field(
        "", description="Feast's Redis online store, host:port.", json_schema_extra=_env("MLOPS_FEAST_REDIS")
    )
    feast_redis_username: str = Field(
        "",
        description="The Redis ACL user of the tenant's online store (empty: Redis's default user).",
        json_schema_extra=_env("MLOPS_FEAST_REDIS_USERNAME"),
    )
    offline_store_uri: str = Field(
        "",
        description="Root of the offline store: validated data as Parquet, at <root>/<project>/<run>/.",
        json_schema_extra=_env("MLOPS_OFFLINE_STORE_URI"),
    )
    serving_root: str = Field(
        "",
        description="Where promote publishes Triton model repositories (s3://models/<tenant>).",
        json_schema_extra=_env("MLOPS_SERVING_ROOT"),
    )
    pushgateway_url: str = Field(
        "",
        description="The Prometheus Pushgateway the drift step pushes its figures to (empty: no push).",
        json_schema_extra=_env("MLOPS_PUSHGATEWAY_URL"),
    )
    client_caps: dict[str, str] = Field(
        default_factory=lambda: dict(CLIENT_CAPS),
        description="Timeouts and retry caps of the S3 and MLflow clients, one variable each.",
    )

    @property
    def is_platform(self) -> bool:
        return self.profile == "platform"

    def require(self, field: str, step: str) -> str:
        """The field's value; in the platform profile a missing value is a permanent failure."""
        value: str = getattr(self, field)
        if value or not self.is_platform:
            return value
        variable = variable_of(field)
        description = PlatformSettings.model_fields[field].description or field
        raise ComponentError(
            step,
            f"{variable} is not set, and the platform profile (MLOPS_PROFILE=platform) never falls back to an "
            f"embedded store: it needs {description[0].lower()}{description[1:].rstrip('.')}",
            f"on the cluster: add the key {variable} to the {CONFIGMAP} ConfigMap of this namespace (rendered in "
            f'manifests/ by `make golden`); on a laptop: eval "$(mlops dev env)"',
        )


def variable_of(field: str) -> str:
    extra = PlatformSettings.model_fields[field].json_schema_extra
    assert isinstance(extra, dict), field
    return str(extra["env"])


def _fields_with_variables() -> dict[str, str]:
    return {
        name: str(info.json_schema_extra["env"])
        for name, info in PlatformSettings.model_fields.items()
        if isinstance(info.json_schema_extra, dict)
    }


# Variables that carry the same value for clients that read another name (boto3, s3fs).
_ALIASES = {"MLFLOW_S3_ENDPOINT_URL": ("AWS_ENDPOINT_URL", "FSSPEC_S3_ENDPOINT_URL")}


def environment(settings: PlatformSettings) -> dict[str, str]:
    """The settings as environment variables: the ConfigMap's data, and what `mlops dev env` prints.

    Empty values are left out, so an embedded laptop keeps its defaults.
    """
    from components.environment import AIRGAP_DEFAULTS

    env: dict[str, str] = {}
    for field, variable in _fields_with_variables().items():
        value = str(getattr(settings, field))
        if value:
            env[variable] = value
            for alias in _ALIASES.get(variable, ()):
                env[alias] = value
    return {**env, **settings.client_caps, **AIRGAP_DEFAULTS}


def configmap_keys() -> set[str]:
    """Every key a fully configured platform's ConfigMap carries."""
    full = PlatformSettings(**{field: "x" for field in _fields_with_variables() if field != "profile"})
    return set(environment(full.model_copy(update={"profile": "platform"})))


def from_environment(env: Mapping[str, str] | None = None) -> PlatformSettings:
    """The settings a step sees: the process environment, or `env`."""
    source = os.environ if env is None else env
    values: dict[str, Any] = {}
    for field, variable in _fields_with_variables().items():
        value = source.get(variable, "")
        if not value:
            for alias in _ALIASES.get(variable, ()):
                value = value or source.get(alias, "")
        if value:
            values[field] = value
    if values.get("profile") not in (None, "embedded", "platform"):
        raise ComponentError(
            "settings",
            f"MLOPS_PROFILE is {values['profile']!r}",
            "set MLOPS_PROFILE to platform (services) or embedded (a laptop), or leave it unset",
        )
    values["client_caps"] = {key: source.get(key) or default for key, default in CLIENT_CAPS.items()}
    return PlatformSettings(**values)


def apply_client_caps() -> None:
    """Put the client caps into this process's environment unless the operator decided otherwise."""
    for key, value in CLIENT_CAPS.items():
        os.environ.setdefault(key, value)
