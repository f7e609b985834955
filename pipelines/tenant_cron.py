"""One builder for the platform's CronWorkflows in a tenant's namespace: a pipeline pod on a schedule.

The nightly registry check (pipelines/registry_verify.py) and the hourly canary analysis
(pipelines/canary_cron.py) both run one `mlops` command as a pipeline pod does (pipelines/argo.py): the
component image, the namespace's `mlops-platform` ConfigMap, the tenant's S3 and MLflow Secrets under the
names its pipeline steps read (ClusterSettings' defaults, pipelines/cluster.py secret_environment),
restricted pod security, and a retry on exit 75 only (a permanent failure, exit 2, is never retried).
What differs, the command, the schedule, the ServiceAccount and the resources, is each caller's.
"""

from __future__ import annotations

from typing import Any

from components.config import ClusterSettings
from components.platform.buckets import S3_SECRET_KEYS
from components.platform.settings import CONFIGMAP

__all__ = ["SECRETS", "tenant_cron_workflow"]

SECRETS = (  # the variable, the ClusterSettings field naming its Secret, the key
    *((variable, "s3_credentials_secret", key) for variable, key in S3_SECRET_KEYS.items()),
    ("MLFLOW_TRACKING_USERNAME", "mlflow_credentials_secret", "username"),
    ("MLFLOW_TRACKING_PASSWORD", "mlflow_credentials_secret", "password"),
)


def tenant_cron_workflow(
    tenant: str,
    image: str,
    *,
    name: str,
    step: str,
    command: list[str],
    schedule: str,
    service_account: str,
    resources: dict[str, dict[str, str]],
    deadline_seconds: int,
    starting_deadline_seconds: int,
) -> dict[str, Any]:
    """A CronWorkflow `name` in `tenant` whose one template, `step`, runs `command` on `schedule` (UTC),
    one run at a time."""
    fields = ClusterSettings.model_fields  # the Secrets' names a tenant's pipeline steps read (secret_environment)
    env = [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": fields[field].default, "key": key}}}
        for variable, field, key in SECRETS
    ]
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "private-mlops",
        "mlops.private-platform.io/team": tenant,
    }
    container = {
        "image": image,
        "command": command,
        "envFrom": [{"configMapRef": {"name": CONFIGMAP}}],
        "env": [{"name": "HOME", "value": "/tmp"}, *env],
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": name, "namespace": tenant, "labels": dict(labels)},
        "spec": {
            "schedules": [schedule],
            "timezone": "UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": starting_deadline_seconds,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "workflowSpec": {
                "entrypoint": step,
                "serviceAccountName": service_account,
                "activeDeadlineSeconds": deadline_seconds,
                "podMetadata": {"labels": dict(labels)},
                "podGC": {"strategy": "OnPodSuccess", "deleteDelayDuration": "10m"},
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "fsGroup": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "ttlStrategy": {"secondsAfterSuccess": 604800, "secondsAfterFailure": 1209600},
                "templates": [
                    {
                        "name": step,
                        "container": container,
                        "retryStrategy": {
                            "limit": 3,
                            "retryPolicy": "Always",
                            "expression": "asInt(lastRetry.exitCode) == 75",
                            "backoff": {"duration": "60s", "factor": 2, "cap": "600s"},
                        },
                    }
                ],
            },
        },
    }
