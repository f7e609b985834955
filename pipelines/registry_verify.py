"""Each tenant's nightly `mlops verify --push`: a CronWorkflow in its namespace (issue 34 item 4).

Why a CronWorkflow in the tenant's namespace: the check reads what the tenant's own identities may read
(its MLflow user sees its models, its S3 key its prefixes), and pushes its result to the namespace's own
Pushgateway (components/steps/notify.py deliver_verification, pipelines/tenant_monitoring.py), whose
scrape fixes the namespace, so RegistryVerifyFailed names the tenant whose version is not whole. The pod
is a pipeline pod as the reference pipelines render it (pipelines/argo.py): the component image, the
`pipeline-runner` ServiceAccount, the namespace's `mlops-platform` ConfigMap and the tenant's S3 and
MLflow Secrets (pipelines/cluster.py secret_environment's names), restricted pod security. It is
rendered beside each tenant's kustomization by `make golden` and admitted by the same Gatekeeper
policies as every other pod the platform renders (tests/policies/test_platform_admits_itself.py).

Exit 1 (a version MISSING or CORRUPT) fails the workflow after the push; only exit 75 (the registry or
a store not answering) is retried.

Only the tenants' namespaces get one, not the shared mlops-pipelines: no model is registered from it.
A pipeline registers as the MLflow user of the namespace it runs in (cluster.namespace: each installed
pipeline names its tenant's), and that user's Secret, tenant-mlflow-credentials, exists in each tenant's
namespace only (manifests/out-of-band-secrets.yaml; the shared namespace holds Argo's artifact key and
the model puller's). So the shared namespace has no models of its own to check, and no MLflow user a
check there could read the registry as; a platform-wide walk would need the tracking server's admin,
which no pipelines namespace may hold. tests/pipelines/test_registry_verify.py holds the namespaces
that get a check equal to those with an MLflow user, derived from the manifests, not listed.
"""

from __future__ import annotations

from typing import Any

from pipelines.tenant_cron import tenant_cron_workflow

__all__ = ["SCHEDULE", "VERIFY_FILE", "VERIFY_NAME", "verify_cron_workflow"]

VERIFY_FILE = "registry-verify.yaml"
VERIFY_NAME = "registry-verify"
SCHEDULE = "30 4 * * *"
"""Nightly, in UTC: after the database's base backup (pipelines/backups.py, 02:00 UTC)."""


def verify_cron_workflow(tenant: str, image: str) -> dict[str, Any]:
    """The tenant's nightly registry check (pipelines/tenant_cron.py: the pod every such job runs as)."""
    return tenant_cron_workflow(
        tenant,
        image,
        name=VERIFY_NAME,
        step="verify",
        command=["mlops", "verify", "--push"],
        schedule=SCHEDULE,
        service_account="pipeline-runner",
        resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        deadline_seconds=7200,
        starting_deadline_seconds=3600,
    )
