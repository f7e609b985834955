"""Each tenant's hourly canary analysis: `mlops canary-analysis` as a CronWorkflow, with the rights it needs.

Issue 32 item 4: on the cluster a canary is judged once `promote.canary_window` has passed, and the
verdict (promote, roll back, wait) is applied through the lifecycle `mlops promote` uses. The sweep
(mlops/canary_sweep.py) runs hourly in each tenant's namespace, so a canary waits at most an hour past
its window; each model's window is its own pipeline's, read at run time.

It runs as its own ServiceAccount, `canary-analyst` (components/steps/promote_identity.py: the
promotion guard lets that identity apply a sign-off already recorded, and nothing else applies as it),
not as `pipeline-runner`, which holds no serving rights. Its Role grants what the code calls and
nothing more, derived from components/steps/serving_api.py
(the coordinates mlops/kube.py calls): read, create and replace the namespace's
InferenceServices and the AuthorizationPolicy and NetworkPolicy promote applies beside each
(serving_api.API), and the Argo executor's workflowtaskresults. One cluster-scoped read besides, through a
ClusterRole and ClusterRoleBinding of the tenant's own (`canary-analyst-<tenant>`): get on Gatekeeper's
ValidatingWebhookConfiguration, that one name (serving_api.GATEKEEPER_CONFIGURATION), whose failure policy
the analysis checks before it trusts a dry run (mlops/admission_control.py). tests/cluster/ derives the requests from
mlops/kube.py's client calls and checks them against this Role on the assembled platform, with the
NetworkPolicies (the API server, MLflow, the object store) and the admission policies.

Each version's error rate and p99 come from the platform's Prometheus (tenant_monitoring.PROMETHEUS_URL:
on the cluster the analysis reads them there, as the transformer scrape stores them), through a
NetworkPolicy rendered beside it. Inside the pod there is no policy folder and no OPA engine, so the
sweep asks the API server to judge each object first (dryRun=All runs the installed Gatekeeper) and
applies nothing unless all pass.
"""

from __future__ import annotations

from typing import Any

from components.steps.promote_identity import ANALYST_SERVICE_ACCOUNT
from components.steps.serving_api import API, GATEKEEPER_CONFIGURATION, WEBHOOK_CONFIGURATIONS
from pipelines.tenant_cron import tenant_cron_workflow
from pipelines.tenant_monitoring import PROMETHEUS, PROMETHEUS_PORT, PROMETHEUS_URL

__all__ = ["ANALYSIS_FILE", "ANALYSIS_NAME", "SCHEDULE", "analysis_objects", "analyst_cluster_rules", "analyst_rules"]

ANALYSIS_FILE = "canary-analysis.yaml"
ANALYSIS_NAME = "canary-analysis"
SCHEDULE = "17 * * * *"
"""Hourly, off the hour (other jobs start on it)."""


def analyst_rules() -> list[dict[str, Any]]:
    """What the analysis calls: the objects promote applies (serving_api.API), read, created or replaced at
    the version read; and the Argo executor's report of its step."""
    rules = [
        {"apiGroups": [group], "resources": [plural], "verbs": ["get", "create", "update"]}
        for group, _, plural in API.values()
    ]
    rules.append({"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]})
    return rules


def analyst_cluster_rules() -> list[dict[str, Any]]:
    """What the analysis reads outside its namespace: Gatekeeper's webhook configuration, by its one name."""
    group, _, plural = WEBHOOK_CONFIGURATIONS
    return [
        {"apiGroups": [group], "resources": [plural], "resourceNames": [GATEKEEPER_CONFIGURATION], "verbs": ["get"]}
    ]


def analysis_objects(tenant: str, image: str) -> list[dict[str, Any]]:
    """The ServiceAccount, its Role and RoleBinding, its ClusterRole and ClusterRoleBinding (named for the
    tenant: cluster-scoped names are shared by every tenant), the hourly CronWorkflow and its egress to
    Prometheus."""
    meta = {"name": ANALYST_SERVICE_ACCOUNT, "namespace": tenant}
    cluster_meta = {"name": f"{ANALYST_SERVICE_ACCOUNT}-{tenant}"}
    subjects = [{"kind": "ServiceAccount", "name": ANALYST_SERVICE_ACCOUNT, "namespace": tenant}]
    cron = tenant_cron_workflow(
        tenant,
        image,
        name=ANALYSIS_NAME,
        step="analyze",
        command=[
            "mlops",
            "canary-analysis",
            "--namespace",
            tenant,
            "--admission",
            "cluster",
            "--prometheus",
            PROMETHEUS_URL,
        ],
        schedule=SCHEDULE,
        service_account=ANALYST_SERVICE_ACCOUNT,
        resources={"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
        deadline_seconds=1800,
        starting_deadline_seconds=600,
    )
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": dict(meta),
            "rules": analyst_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": dict(meta),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ANALYST_SERVICE_ACCOUNT},
            "subjects": subjects,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": dict(cluster_meta),
            "rules": analyst_cluster_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": dict(cluster_meta),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_meta["name"]},
            "subjects": [dict(subject) for subject in subjects],
        },
        cron,
        _to_prometheus(tenant, cron["spec"]["workflowSpec"]["podMetadata"]["labels"]["app.kubernetes.io/name"]),
    ]


def _to_prometheus(tenant: str, name: str) -> dict[str, Any]:
    """The analysis pod's way to Prometheus's query API (the namespace's pods have no egress by default)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{name}-to-prometheus", "namespace": tenant},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": PROMETHEUS.namespace}},
                            "podSelector": {"matchLabels": dict(PROMETHEUS.labels)},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": PROMETHEUS_PORT}],
                }
            ],
        },
    }
