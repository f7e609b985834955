"""A tenant's own stores on the cluster: its Redis (online store) and its Feast registry database.

`make golden` (pipelines/golden.py) renders them per tenant from manifests/tenants/tenants.yaml:
each tenant's Redis beside its kustomization (manifests/tenants/<name>/redis.yaml), and one Job
making every tenant's registry database on the platform's PostgreSQL
(manifests/base/postgres/tenant-databases.yaml). What every pipelines namespace shares (its
ConfigMap, the platform's PostgreSQL roles and PgBouncer) stays in pipelines/cluster.py.
"""

from __future__ import annotations

from typing import Any

from components.config import ClusterSettings
from components.platform.readonly import READER_REDIS_RULES, reader_grants, reader_name, reader_secret
from components.platform.settings import TENANT_REDIS_RULES
from pipelines.cluster import PLATFORM_DATABASES, PLATFORM_NAMESPACE, POSTGRES_CLUSTER, POSTGRES_IMAGE, POSTGRES_UID
from pipelines.pod_security import restricted_container, restricted_pod

__all__ = ["TENANT_REDIS_IMAGE", "TENANT_REDIS_MAXMEMORY", "tenant_database_sql", "tenant_databases", "tenant_redis"]


def tenant_database_sql(tenants: list[str]) -> str:
    """psql input that makes each tenant's Feast registry database, owned by its role, and closes
    every database to PUBLIC, so a role connects only where it is let in. Idempotent."""
    lines = ["\\set ON_ERROR_STOP on"]
    for database, role in PLATFORM_DATABASES.items():
        lines += [
            f"SELECT format('CREATE DATABASE %I OWNER %I', '{database}', '{role}')"
            f" WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{database}')\\gexec",
            f"GRANT CONNECT ON DATABASE {database} TO {role};",
            f"REVOKE CONNECT ON DATABASE {database} FROM PUBLIC;",
        ]
    for tenant in tenants:
        database = f"feast_{tenant}"
        lines += [
            f"SELECT format('CREATE DATABASE %I OWNER %I', '{database}', '{tenant}')"
            f" WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{database}')\\gexec",
            f"ALTER DATABASE {database} OWNER TO {tenant};",
            f"REVOKE CONNECT ON DATABASE {database} FROM PUBLIC;",
        ]
        anywhere, inside = reader_grants(tenant, database)  # the transformer's role reads, nothing more
        lines += [*anywhere, f"\\connect {database}", *inside, "\\connect postgres"]
    return "\n".join(lines) + "\n"


def tenant_databases(tenants: list[str]) -> list[dict[str, Any]]:
    """A Job that runs tenant_database_sql as the cluster's superuser, after CloudNativePG has made
    the roles (postgres_roles; until then it fails and is retried). Its name carries a hash of
    its SQL: a Job's pod template is immutable, so a new tenant makes a new Job."""
    import hashlib

    sql = tenant_database_sql(tenants)
    name = f"tenant-databases-{hashlib.sha256(sql.encode()).hexdigest()[:8]}"
    labels = {"app.kubernetes.io/name": "tenant-databases", "app.kubernetes.io/part-of": "private-mlops"}
    superuser = f"{POSTGRES_CLUSTER}-superuser"  # CloudNativePG's, with enableSuperuserAccess
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": PLATFORM_NAMESPACE, "labels": dict(labels)},
            "data": {"tenants.sql": sql},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": PLATFORM_NAMESPACE, "labels": dict(labels)},
            "spec": {
                "backoffLimit": 10,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "automountServiceAccountToken": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": POSTGRES_UID,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "psql",
                                "image": POSTGRES_IMAGE,
                                "command": ["psql", "--no-psqlrc", "--file=/sql/tenants.sql"],
                                "env": [
                                    {"name": "PGHOST", "value": f"{POSTGRES_CLUSTER}-rw.{PLATFORM_NAMESPACE}.svc"},
                                    {"name": "PGDATABASE", "value": "postgres"},
                                    {"name": "PGSSLMODE", "value": "require"},
                                    {
                                        "name": "PGUSER",
                                        "valueFrom": {"secretKeyRef": {"name": superuser, "key": "username"}},
                                    },
                                    {
                                        "name": "PGPASSWORD",
                                        "valueFrom": {"secretKeyRef": {"name": superuser, "key": "password"}},
                                    },
                                ],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "volumeMounts": [{"name": "sql", "mountPath": "/sql", "readOnly": True}],
                            }
                        ],
                        "volumes": [{"name": "sql", "configMap": {"name": name}}],
                    },
                },
            },
        },
    ]


TENANT_REDIS_IMAGE = "registry.mlops.internal/mirror/redis:7.2"
TENANT_REDIS_MAXMEMORY = "1gb"  # below the container's limit, so it evicts (allkeys-lru) rather than dies
REDIS_UID = 999
"""The redis image's own user (and the group that owns its volumes)."""

# The users file, written at each start from the passwords (their Secrets) and the rule lines:
# `default` off, the tenant's user and its read-only reader (the scoring transformer's,
# components/platform/readonly.py) by their passwords' sha256, no other user. Nobody administers it by
# command; the platform changes it through this manifest and a restart.
_WRITE_ACL = """set -eu
umask 077
hash=$(printf '%s' "$REDIS_PASSWORD" | sha256sum | cut -d' ' -f1)
reader_hash=$(printf '%s' "$READER_PASSWORD" | sha256sum | cut -d' ' -f1)
printf 'user default off\\nuser %s on #%s %s\\nuser %s on #%s %s\\n' \\
  "$TENANT" "$hash" "$(cat /etc/redis/tenant-rules)" "$READER" "$reader_hash" "$(cat /etc/redis/reader-rules)" \\
  > /acl/users.acl
"""


def tenant_redis(tenant: str) -> list[dict[str, Any]]:
    """A tenant's own online store in its namespace: a Redis whose users are the tenant, denied
    administration (TENANT_REDIS_RULES), and its reader, which may only read hashes (the scoring
    transformer's, READER_REDIS_RULES), with its own memory, reachable from its namespace only.
    The passwords are `tenant-redis-credentials` (key `password`), the Secret its pipelines read,
    and the reader's `tenant-redis-reader-credentials` (key `password`), the transformer's."""
    labels = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/part-of": "private-mlops"}
    secret = str(ClusterSettings.model_fields["redis_credentials_secret"].default)
    password: dict[str, Any] = {
        "name": "REDIS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}},
    }
    reader: list[dict[str, Any]] = [
        {"name": "READER", "value": reader_name(tenant)},
        {"name": "READER_PASSWORD", "valueFrom": {"secretKeyRef": {"name": reader_secret(secret), "key": "password"}}},
    ]
    config = "\n".join(
        [
            "aclfile /acl/users.acl",
            f"maxmemory {TENANT_REDIS_MAXMEMORY}",
            "maxmemory-policy allkeys-lru",
            'save ""',
            "appendonly no",
            "protected-mode yes",
            "",
        ]
    )
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "tenant-redis", "namespace": tenant, "labels": dict(labels)},
            "data": {
                "redis.conf": config,
                "tenant-rules": TENANT_REDIS_RULES,
                "reader-rules": READER_REDIS_RULES,
                "write-acl.sh": _WRITE_ACL,
            },
        },
        _redis_statefulset(tenant, labels, [{"name": "TENANT", "value": tenant}, password, *reader]),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "redis", "namespace": tenant, "labels": dict(labels)},
            "spec": {
                "selector": {"app.kubernetes.io/name": "redis"},
                "ports": [{"name": "redis", "port": 6379, "targetPort": 6379}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "redis-from-own-namespace", "namespace": tenant},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 6379}]}],
            },
        },
    ]


def _redis_statefulset(tenant: str, labels: dict[str, str], env: list[dict[str, Any]]) -> dict[str, Any]:
    """The tenant's Redis: an init container writes the users file from `env` (the passwords), then
    redis-server reads it; both restricted, its memory its own, the users file in memory only."""

    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "redis", "namespace": tenant, "labels": dict(labels)},
        "spec": {
            "serviceName": "redis",
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "redis"}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": restricted_pod(REDIS_UID),
                    "initContainers": [
                        {
                            "name": "users",
                            "image": TENANT_REDIS_IMAGE,
                            "command": ["sh", "/etc/redis/write-acl.sh"],
                            "env": env,
                            "securityContext": restricted_container(),
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"memory": "32Mi"},
                            },
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/redis"},
                                {"name": "acl", "mountPath": "/acl"},
                            ],
                        }
                    ],
                    "containers": [
                        {
                            "name": "redis",
                            "image": TENANT_REDIS_IMAGE,
                            "command": ["redis-server", "/etc/redis/redis.conf"],
                            "ports": [{"name": "redis", "containerPort": 6379}],
                            "readinessProbe": {"tcpSocket": {"port": 6379}},
                            "securityContext": restricted_container(),
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "1536Mi"},
                                "limits": {"memory": "1536Mi"},
                            },
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/redis"},
                                {"name": "acl", "mountPath": "/acl"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "tenant-redis"}},
                        {"name": "acl", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                    ],
                },
            },
        },
    }
