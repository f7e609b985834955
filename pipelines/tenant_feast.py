"""A tenant's scheduled Feast refresh: one CronJob per pipeline the tenant runs, in its namespace.

Rendered by pipelines/tenancy.py from the tenant declaration (`make golden`). It runs
components/steps/feast_refresh.py with the stores of that namespace's `mlops-platform` ConfigMap and the
tenant's own Secrets, the same a step of the pipeline reads, so the online store it refreshes is
the one the tenant's pipelines and transformer read (the platform-wide CronJob it replaces wrote
stores no tenant read).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from components.platform.buckets import S3_SECRET_KEYS
from components.platform.settings import CONFIGMAP

if TYPE_CHECKING:
    from pipelines.tenancy import Tenant, TenantPipeline

__all__ = ["FEAST_REFRESH_SCHEDULE", "FEAST_SECRET_FIELDS", "feast_cronjob"]


FEAST_REFRESH_SCHEDULE = "*/30 * * * *"
FEAST_SECRET_FIELDS = {
    **{variable: ("s3_credentials_secret", key) for variable, key in S3_SECRET_KEYS.items()},
    "MLOPS_FEAST_REGISTRY_PASSWORD": ("feast_credentials_secret", "password"),
    "MLOPS_FEAST_REDIS_PASSWORD": ("redis_credentials_secret", "password"),
}
"""What the refresh reads from the tenant's Secrets, as a pipeline step does (pipelines/cluster.py:
secret_environment): its prefix-scoped S3 key, its registry role's and its Redis user's passwords."""


def feast_cronjob(tenant: Tenant, pipeline: TenantPipeline, image: str) -> dict[str, Any]:
    """The scheduled refresh of one pipeline's online store (components/steps/feast_refresh.py), in the
    tenant's namespace: its stores come from that namespace's `mlops-platform` ConfigMap (registry
    feast_<tenant>, Redis redis.<tenant>.svc, offline store under the tenant's S3 prefix) and its
    Secrets, the same a step of the pipeline reads, so it writes exactly what the pipeline reads."""
    labels = {
        "app.kubernetes.io/name": "feast-materialize",
        "app.kubernetes.io/part-of": "private-mlops",
        "mlops.private-platform.io/feast-project": pipeline.project,
    }
    secrets = [
        {"name": env, "valueFrom": {"secretKeyRef": {"name": pipeline.secret(field), "key": key}}}
        for env, (field, key) in FEAST_SECRET_FIELDS.items()
    ]
    command = [
        "python",
        "-m",
        "components.steps.feast_refresh",
        "--project",
        pipeline.project,
        "--store-dir",
        "/tmp/feast",
    ]
    container = {
        "name": "materialize",
        "image": image,
        "command": command,
        "envFrom": [{"configMapRef": {"name": CONFIGMAP}}],
        "env": [{"name": "HOME", "value": "/tmp"}, *secrets],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
        },
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": f"feast-materialize-{pipeline.project}", "namespace": tenant.name, "labels": dict(labels)},
        "spec": {
            "schedule": FEAST_REFRESH_SCHEDULE,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 1500,
                    "template": {
                        "metadata": {"labels": dict(labels)},
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": False,
                            "priorityClassName": "training-batch",
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": 65532,
                                "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [container],
                            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "256Mi"}}],
                        },
                    },
                }
            },
        },
    }
