"""The platform's keys of Argo's workflow-controller ConfigMap, and only those (`make golden`
renders them into manifests/base/argo/controller-config.yaml).

Argo's controller (and its server) read `workflow-controller-configmap` in their own namespace,
one top-level setting per data key (argo-workflows config/controller.go, parseConfigMap). The
cluster owns that ConfigMap: its SSO, metrics, artifact repository and limits are somebody
else's. So the platform sends only the keys it needs, applied server-side as its own field
manager: a ConfigMap's `data` is a granular map, each key owned by whoever applied it, so the
cluster's other keys stay as they are and a key both set with different values is a conflict the
apply reports, never a silent overwrite (docs/install.md, "Argo's settings").

- workflowDefaults: how long a finished Workflow stays in Kubernetes (ttlStrategy) and podGC.
- persistence: the workflow archive in PostgreSQL, through PgBouncer, kept ARCHIVE_TTL_DAYS,
  longer than any Workflow's TTL, so the run history an auditor asks for outlives the objects.
- executor: the image (mirrored, so the allowed-registries policy admits Argo's own init and wait
  containers: Argo's default is quay.io/argoproj/argoexec) and the security context they run
  with, so a pipelines namespace can enforce the `restricted` Pod Security profile.
- namespaceParallelism: one tenant's burst cannot hold every running slot.
"""

from __future__ import annotations

from typing import Any

import yaml

from pipelines.cluster import PGBOUNCER_SETTINGS, PLATFORM_DATABASES, PLATFORM_NAMESPACE

__all__ = [
    "ARCHIVE_CLIENTS",
    "ARCHIVE_DATABASE",
    "ARCHIVE_POOL",
    "ARCHIVE_ROLE",
    "ARCHIVE_SECRET",
    "ARCHIVE_TTL_DAYS",
    "ARGOEXEC_IMAGE",
    "ARGO_NAMESPACE",
    "CONTROLLER_CONFIGMAP",
    "DAY",
    "FIELD_MANAGER",
    "PLATFORM_KEYS",
    "WORKFLOW_TTL",
    "archive_persistence",
    "controller_config",
]

ARGO_NAMESPACE = "argo"
CONTROLLER_CONFIGMAP = "workflow-controller-configmap"
ARGOEXEC_IMAGE = "registry.mlops.internal/mirror/argoproj/argoexec:v4.1.2"
"""Argo's executor (init and wait containers of every step pod), from the platform's mirror: the
version of the Argo the CRDs in docs/install.md come from."""
FIELD_MANAGER = "private-mlops"
"""The field manager docs/install.md applies with (`kubectl apply --server-side --field-manager`)."""

DAY = 86400
WORKFLOW_TTL = {"secondsAfterSuccess": 7 * DAY, "secondsAfterFailure": 14 * DAY}
"""A finished Workflow (and its pods' record in the UI) stays a week, two when it failed."""
ARCHIVE_TTL_DAYS = 400
"""The archived record stays 400 days: a yearly audit still finds last year's runs."""

ARCHIVE_DATABASE = "argo"
ARCHIVE_ROLE = PLATFORM_DATABASES[ARCHIVE_DATABASE]
ARCHIVE_SECRET = f"{ARCHIVE_ROLE}-db-credentials"
"""kubernetes.io/basic-auth (username, password): in the platform namespace for CloudNativePG's
managed role, and the same in Argo's namespace, where the controller and the server read it."""
ARCHIVE_CLIENTS = ("workflow-controller", "argo-server")
"""The processes that open the archive, one replica each: each holds up to maxOpenConns server
connections (more argo-server replicas need a larger pool_size on PgBouncer's argo route)."""
ARCHIVE_POOL = {"maxIdleConns": 2, "maxOpenConns": 8}
"""In session pooling (PGBOUNCER_DATABASE_OPTIONS) each client connection holds a server one, so
both clients together stay within PgBouncer's default_pool_size."""

PLATFORM_KEYS = ("namespaceParallelism", "workflowDefaults", "executor", "persistence")
"""The only data keys the platform sets in the controller's ConfigMap."""


def archive_persistence() -> dict[str, Any]:
    """Argo's `persistence` (config/config.go: PersistConfig, PostgreSQLConfig): archive every
    finished Workflow to the `argo` database through PgBouncer, as the `argo` role. PgBouncer
    pools that database in session mode (pipelines.cluster.PGBOUNCER_DATABASE_OPTIONS says why)."""
    # PgBouncer terminates no client TLS here (no client_tls_* setting): Argo then sends sslmode=disable
    tls = any(key.startswith("client_tls") for key in PGBOUNCER_SETTINGS)
    return {
        "archive": True,
        "archiveTTL": f"{ARCHIVE_TTL_DAYS}d",
        "connectionPool": dict(ARCHIVE_POOL),
        "postgresql": {
            "host": f"pgbouncer.{PLATFORM_NAMESPACE}.svc",
            "port": int(PGBOUNCER_SETTINGS["listen_port"]),
            "database": ARCHIVE_DATABASE,
            "tableName": "argo_workflows",
            "userNameSecret": {"name": ARCHIVE_SECRET, "key": "username"},
            "passwordSecret": {"name": ARCHIVE_SECRET, "key": "password"},
            "ssl": tls,
        },
    }


def _yaml(value: dict[str, Any]) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False)


def controller_config() -> dict[str, Any]:
    """The ConfigMap to apply server-side: only PLATFORM_KEYS in its data, never Argo's single
    `config` key (with it, Argo refuses every other key of the ConfigMap)."""
    data = {
        "namespaceParallelism": "8",
        "workflowDefaults": _yaml({"spec": {"ttlStrategy": dict(WORKFLOW_TTL), "podGC": {"strategy": "OnPodSuccess"}}}),
        "executor": _yaml(
            {
                "image": ARGOEXEC_IMAGE,
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                "securityContext": {
                    "runAsNonRoot": True,
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            }
        ),
        "persistence": _yaml(archive_persistence()),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONTROLLER_CONFIGMAP,
            "namespace": ARGO_NAMESPACE,
            "annotations": {
                "mlops.private-platform.io/generated-by": "make golden (pipelines/argo_settings.py: controller_config)",
                "mlops.private-platform.io/apply": (
                    f"server-side, field manager {FIELD_MANAGER}: sets only its data keys (docs/install.md)"
                ),
                # an Argo CD install applies it server-side too, so it merges the same way
                "argocd.argoproj.io/sync-options": "ServerSideApply=true",
            },
        },
        "data": data,
    }
