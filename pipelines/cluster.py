"""What every task of a pipeline gets on the cluster, for both renderers: settings, Secrets, inputs.

- Settings: the namespace's `mlops-platform` ConfigMap, whole (`envFrom` on Argo, key by key
  through kfp-kubernetes on KFP). Its data is `components.platform.settings.environment()` of the
  cluster's settings, rendered into manifests/ for each pipelines namespace by
  `platform_configmap` (`make golden`), so a pod and `mlops dev env` get the same variables.
- Credentials: Secret references, never literals in rendered YAML.
- Inputs: the few a submit may set (pipelines.declaration.RunInputs); none is a path on a disk.

A tenant's own stores (its Redis, its registry database) are pipelines/tenant_stores.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from components.config import PipelineConfig
from components.platform.buckets import S3_SECRET_KEYS
from components.platform.readonly import reader_database_secret, reader_name
from components.platform.settings import (
    CONFIGMAP,
    TENANT_CONNECTION_LIMIT,
    PlatformSettings,
    environment,
)
from pipelines.platform_services import pushgateway

__all__ = [
    "MLFLOW_AUTH_CONFIG",
    "MODEL_PULLER_SECRET_KEYS",
    "MONITORING_NAMESPACE",
    "PGBOUNCER_DATABASE_OPTIONS",
    "PGBOUNCER_SETTINGS",
    "PLATFORM_DATABASES",
    "PLATFORM_NAMESPACE",
    "POSTGRES_CLUSTER",
    "POSTGRES_IMAGE",
    "POSTGRES_UID",
    "SHARED_PIPELINES_NAMESPACE",
    "STORAGE_NAMESPACE",
    "TRAINING_POOL",
    "SecretRef",
    "cluster_settings",
    "mlflow_auth_config",
    "model_puller",
    "pgbouncer_config",
    "platform_configmap",
    "postgres_roles",
    "secret_environment",
]

TRAINING_POOL = {"mlops.private-platform.io/pool": "training-gpu"}
"""Node selector of GPU steps: the training nodes, never the inference pool."""

PLATFORM_NAMESPACE = "mlops"
STORAGE_NAMESPACE = "storage"
SHARED_PIPELINES_NAMESPACE = "mlops-pipelines"
MONITORING_NAMESPACE = "monitoring"


@dataclass(frozen=True, kw_only=True)
class SecretRef:
    env: str
    secret: str
    key: str


def cluster_settings(tenant: str = "") -> PlatformSettings:
    """The platform as a pod in a pipelines namespace sees it: in-cluster DNS names, the tenant's
    own prefix in each bucket and its own Feast registry database and role (the shared namespace
    uses the buckets' roots and the platform's `feast` role)."""
    from pipelines.tenant_pooler import pooler_host  # a tenant's own PgBouncer (issue 29), the platform's else

    prefix = f"/{tenant}" if tenant else ""
    role, database = (tenant, f"feast_{tenant}") if tenant else ("feast", "feast_registry")
    pooler = pooler_host(tenant) if tenant else f"pgbouncer.{PLATFORM_NAMESPACE}.svc.cluster.local"
    return PlatformSettings(
        profile="platform",
        tracking_uri=f"http://mlflow.{PLATFORM_NAMESPACE}.svc.cluster.local:5000",
        mlflow_artifact_root=f"s3://mlflow-artifacts{prefix}",
        s3_endpoint=f"http://minio.{STORAGE_NAMESPACE}.svc.cluster.local:9000",
        feast_registry_url=f"postgresql+psycopg://{role}@{pooler}:5432/{database}",
        # A tenant's online store is its own Redis in its namespace (tenant_redis), as user <tenant>;
        # the shared namespace uses the platform's, whose one password is the `default` user's.
        feast_redis=f"redis.{tenant or PLATFORM_NAMESPACE}.svc.cluster.local:6379",
        feast_redis_username=tenant or "default",
        offline_store_uri=f"s3://feast-offline{prefix}",
        serving_root=f"s3://models{prefix}",
        pushgateway_url=pushgateway(tenant or SHARED_PIPELINES_NAMESPACE).url,  # its own (issue 29)
    )


def platform_configmap(namespace: str, settings: PlatformSettings) -> dict[str, Any]:
    """The `mlops-platform` ConfigMap of one pipelines namespace."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIGMAP,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "private-mlops"},
            "annotations": {
                "mlops.private-platform.io/generated-by": "make golden (pipelines/cluster.py: platform_configmap)"
            },
        },
        "data": dict(sorted(environment(settings).items())),
    }


POSTGRES_CLUSTER = "mlops-postgres"


def postgres_roles(tenants: list[str]) -> dict[str, Any]:
    """A patch of the CloudNativePG Cluster with every login role it manages: the platform's
    `feast` and one per tenant (the role its Feast registry URL names), each tenant's with a
    connection limit. The passwords are Secrets `<role>-db-credentials` (basic-auth, in the
    platform namespace) that the platform team creates; the tenant's pods get the same password
    in their own namespace's feast credentials Secret."""
    roles: list[dict[str, Any]] = [
        {"name": "feast", "ensure": "present", "login": True, "passwordSecret": {"name": "feast-db-credentials"}},
        {
            "name": "katib",
            "ensure": "present",
            "login": True,
            "comment": "Katib's DB manager, through PgBouncer (manifests/katib/)",
            "passwordSecret": {"name": "katib-db-credentials"},
        },
        {
            "name": "argo",
            "ensure": "present",
            "login": True,
            "comment": "Argo's workflow archive, through PgBouncer (pipelines/argo_settings.py)",
            "passwordSecret": {"name": "argo-db-credentials"},
        },
    ]
    for tenant in tenants:
        roles.append(
            {
                "name": tenant,
                "ensure": "present",
                "login": True,
                "inherit": False,
                "connectionLimit": TENANT_CONNECTION_LIMIT,
                "comment": f"tenant {tenant}: its Feast registry database feast_{tenant}",
                "passwordSecret": {"name": f"{tenant}-db-credentials"},
            }
        )
        comment = f"tenant {tenant}'s scoring transformer: SELECT on feast_{tenant} (components/platform/readonly.py)"
        secret = {"name": reader_database_secret(tenant)}
        reader = {"name": reader_name(tenant), "comment": comment, "passwordSecret": secret}
        roles.append({**roles[-1], **reader})  # as capped as the tenant's role
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": POSTGRES_CLUSTER, "namespace": PLATFORM_NAMESPACE},
        "spec": {"managed": {"roles": roles}},
    }


MLFLOW_AUTH_CONFIG = "mlflow-auth"


def mlflow_auth_config() -> dict[str, Any]:
    """The tracking server's basic_auth.ini (components.platform.tracking_auth.auth_config, as on a laptop):
    NO_PERMISSIONS by default, each tenant's names in its own namespace, its users in the
    mlflow_auth database through PgBouncer. No secret in it: libpq reads PGPASSWORD, and the admin
    comes from MLFLOW_AUTH_ADMIN_USERNAME and _PASSWORD, both from Secrets."""
    from components.platform.tracking_auth import auth_config

    database = f"postgresql+psycopg2://mlflow@pgbouncer.{PLATFORM_NAMESPACE}.svc:5432/mlflow_auth"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": MLFLOW_AUTH_CONFIG, "namespace": PLATFORM_NAMESPACE},
        "data": {"basic_auth.ini": auth_config(database)},
    }


PGBOUNCER_SETTINGS = {
    "listen_addr": "0.0.0.0",
    "listen_port": "5432",
    "pool_mode": "transaction",
    "max_client_conn": "2000",
    "default_pool_size": "20",
    "reserve_pool_size": "5",
    "server_reset_query": "DISCARD ALL",
    "auth_type": "scram-sha-256",
    "auth_file": "/etc/pgbouncer/userlist/userlist.txt",
    "ignore_startup_parameters": "extra_float_digits,options",
    # Katib's DB manager prepares its statements (lib/pq through database/sql): in transaction
    # pooling PgBouncer (>= 1.21) must track them, or the next transaction meets a server
    # connection that never saw the statement ("prepared statement ... does not exist")
    "max_prepared_statements": "200",
}
PGBOUNCER_DATABASE_OPTIONS = {"argo": "pool_mode=session"}
"""Per-database settings that differ from PGBOUNCER_SETTINGS. Argo's archive (lib/pq through upper/db)
sends each parameterised query as Parse+Describe+Sync, then Bind+Execute+Sync on the unnamed
statement: in transaction pooling the server connection goes back to the pool at the first Sync,
and PgBouncer tracks only named statements (max_prepared_statements), so the Bind can reach a
server that never parsed it. In session pooling each of the controller's few connections keeps
its server (argo_settings.ARCHIVE_POOL caps them)."""


def pgbouncer_config() -> dict[str, Any]:
    """The platform's PgBouncer's ConfigMap: the platform's databases only (a database it does not
    list, it does not route). Each tenant's registry goes through a PgBouncer of its own, whose
    client slots no other tenant can take (pipelines/tenant_pooler.py, issue 29)."""
    server = f"host={POSTGRES_CLUSTER}-rw.{PLATFORM_NAMESPACE}.svc port=5432"
    lines = ["[databases]"]
    for database in PLATFORM_DATABASES:
        options = PGBOUNCER_DATABASE_OPTIONS.get(database)
        lines.append(f"{database} = {server} dbname={database}" + (f" {options}" if options else ""))
    lines += ["[pgbouncer]", *(f"{key} = {value}" for key, value in PGBOUNCER_SETTINGS.items())]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "pgbouncer", "namespace": PLATFORM_NAMESPACE},
        "data": {"pgbouncer.ini": "\n".join(lines) + "\n"},
    }


POSTGRES_IMAGE = "registry.mlops.internal/mirror/cloudnative-pg/postgresql:15.10"
POSTGRES_UID = 26  # the postgres user of CloudNativePG's images
PLATFORM_DATABASES = {
    "mlflow": "mlflow",
    "mlflow_auth": "mlflow",
    "feast_registry": "feast",
    "katib": "katib",
    "argo": "argo",
}
"""Each platform database and its owning role; katib holds Katib's trial observations, argo Argo's
workflow archive (the run history that outlives a Workflow's TTL)."""


MODEL_PULLER_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
"""The data keys of the model puller's Secret (KServe's inferenceservice-config credentials.s3)."""


def model_puller(
    namespace: str, settings: PlatformSettings, service_account: str = "model-puller"
) -> list[dict[str, Any]]:
    """The predictor's ServiceAccount and its Secret, annotated the way KServe's storage initializer
    reads an S3 endpoint. The Secret's data (MODEL_PULLER_SECRET_KEYS) is the tenant's read-only
    key on its serving prefix; the platform team adds it, so no key is ever in a manifest."""
    endpoint = urlsplit(settings.s3_endpoint)
    secret = f"{service_account}-s3"
    https = endpoint.scheme == "https"
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/part-of": "private-mlops"},
                "annotations": {
                    "serving.kserve.io/s3-endpoint": endpoint.netloc,
                    "serving.kserve.io/s3-usehttps": "1" if https else "0",
                    "serving.kserve.io/s3-verifyssl": "1" if https else "0",
                    "serving.kserve.io/s3-region": settings.s3_region,
                    "mlops.private-platform.io/keys": f"{', '.join(MODEL_PULLER_SECRET_KEYS)}: read-only on "
                    f"{settings.serving_root}/*, added by the platform team",
                },
            },
            "type": "Opaque",
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": service_account, "namespace": namespace},
            "secrets": [{"name": secret}],
        },
    ]


def secret_environment(cfg: PipelineConfig) -> list[SecretRef]:
    """Every credential a step may read (components.platform.settings.SECRET_VARIABLES), by Secret and key."""
    cluster = cfg.cluster
    return [
        *(SecretRef(env=env, secret=cluster.s3_credentials_secret, key=key) for env, key in S3_SECRET_KEYS.items()),
        SecretRef(env="MLFLOW_TRACKING_USERNAME", secret=cluster.mlflow_credentials_secret, key="username"),
        SecretRef(env="MLFLOW_TRACKING_PASSWORD", secret=cluster.mlflow_credentials_secret, key="password"),
        SecretRef(env="MLOPS_FEAST_REGISTRY_PASSWORD", secret=cluster.feast_credentials_secret, key="password"),
        SecretRef(env="MLOPS_FEAST_REDIS_PASSWORD", secret=cluster.redis_credentials_secret, key="password"),
    ]
