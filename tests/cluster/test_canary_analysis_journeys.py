"""The tenant's hourly canary analysis does its job on the assembled platform, and nothing more (issue 32).

The pod is the rendered CronWorkflow `canary-analysis` of each tenant (pipelines/canary_cron.py) as Argo
runs it: its podMetadata labels plus Argo's `workflows.argoproj.io/workflow`, its ServiceAccount, its
container's environment. Its journeys are derived, not listed:

- every Kubernetes call of mlops/kube.py (read the live service, apply it and who may call it, the
  SelfSubjectReview of a production sign-off), as the `canary-analyst` ServiceAccount, in its namespace;
  and, cluster-wide, the get of Gatekeeper's ValidatingWebhookConfiguration by its one name (--admission
  cluster checks it fails closed), which its ClusterRole grants and nothing more;
  each object it writes is what promote renders, admitted by the installed Gatekeeper policies (the
  promotion guard included) and valid against its schema;
- each store its environment names (MLflow, the object store), the API server, and the Prometheus
  its command reads each version's error rate and p99 from, through the rendered NetworkPolicies.

And refused: the same calls in another tenant's namespace, every Secret, and the runner of the tenant's
pipelines doing what only the analyst may. A Role with its InferenceService rule taken out, and the
namespace's network closed, are each named as what refuses, so the test sees a missing right or flow; so
is the ClusterRole with its rule taken out.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest

from components.steps.promote_identity import ANALYST_SERVICE_ACCOUNT
from mlops.admission_control import GATEKEEPER_CONFIGURATION
from pipelines.canary_cron import ANALYSIS_NAME
from pipelines.cluster import MONITORING_NAMESPACE
from tests.cluster.journeys import REPO, Journey, client_journeys
from tests.cluster.rbac_evaluator_without_apiserver import Rbac, Request, service_account
from tests.cluster.rendered_platform import API_SERVER_PORT, TENANTS, Platform, closed, endpoint, refusal
from tests.cluster.test_journeys import promote_objects
from tests.cluster.test_platform_journeys import environment, find, hops
from tests.manifests.networkpolicy_evaluator_without_cni import Address, Evaluator, Pod

ARGO_WORKFLOW_LABEL = "workflows.argoproj.io/workflow"  # Argo sets it on every pod of a workflow
API_SERVER = "10.0.0.1"  # manifests/base/network/required-flows.yaml's api-server endpoint


def analysis_pod(platform: Platform, tenant: str) -> tuple[Pod, dict[str, Any], str]:
    """The analysis pod as Argo runs it: (the pod, its container's template, its ServiceAccount)."""
    cron = find(platform, "CronWorkflow", tenant, ANALYSIS_NAME)
    assert cron is not None, f"{tenant}: no {ANALYSIS_NAME} CronWorkflow in the assembled platform"
    spec = cron["spec"]["workflowSpec"]
    labels = {**spec["podMetadata"]["labels"], ARGO_WORKFLOW_LABEL: f"{ANALYSIS_NAME}-1234"}
    [template] = spec["templates"]
    pod = Pod(tenant, labels, platform.namespaces[tenant])
    return (
        pod,
        {"metadata": {"labels": labels}, "spec": {"containers": [template["container"]]}},
        spec["serviceAccountName"],
    )


def analyst_journeys(platform: Platform, tenant: str) -> list[Journey]:
    pod, template, account = analysis_pod(platform, tenant)
    who = f"{tenant}:{account}"
    applied = {obj["kind"]: obj for obj in promote_objects(tenant)}
    plurals = {f"{kind.lower()}s": obj for kind, obj in applied.items()}
    rows = []
    for row in client_journeys(REPO / "mlops" / "kube.py", who, tenant, "the canary analysis applies a verdict", None):
        creates = plurals.get(row.api.resource) if row.api.verb in ("create", "update") else None
        rows.append(Journey(who, row.request, row.why, creates=creates, tolerated=row.tolerated,
                            flow=(pod, Address(API_SERVER), API_SERVER_PORT)))  # fmt: skip
    env = environment(platform, template, tenant)
    stores = [env["MLFLOW_TRACKING_URI"], env["AWS_ENDPOINT_URL"]]
    rows += hops(platform, pod, stores, "the canary analysis reads the registry and the decision log", who)
    # Prometheus's query API, from the command's --prometheus: its Service is the operator's own
    # (prometheus-operated, not rendered here), so the hop goes to the flows' `prometheus` pods
    command = template["spec"]["containers"][0]["command"]
    url = urlsplit(command[command.index("--prometheus") + 1])
    assert url.hostname == f"prometheus-operated.{MONITORING_NAMESPACE}.svc" and url.port, url
    prometheus = endpoint(platform, "prometheus", tenant)
    why = f"the canary analysis reads each version's error rate and p99: prometheus {url.geturl()}"
    return [*rows, Journey(who, None, why, flow=(pod, prometheus, url.port))]


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_analysis_does_its_job_in_every_tenant(platform: Platform, tenant: str) -> None:
    rows = analyst_journeys(platform, tenant)
    who = service_account(tenant, ANALYST_SERVICE_ACCOUNT)
    failures = [f"{row}\n    refused by {refused}" for row in rows
                if (refused := refusal(platform, who, row, tenant)) and not row.tolerated]  # fmt: skip
    assert not failures, f"{platform.overlay}, {tenant}:\n" + "\n".join(failures)
    done = {(r.api.verb, r.api.resource) for r in rows if r.request is not None}
    for needed in (("update", "inferenceservices"), ("create", "authorizationpolicies"), ("get", "networkpolicies"),
                   ("create", "selfsubjectreviews"), ("get", "validatingwebhookconfigurations")):  # fmt: skip
        assert needed in done, f"the derivation lost {needed}"
    [webhooks] = [r.api for r in rows if r.request is not None and r.api.resource == "validatingwebhookconfigurations"]
    assert (webhooks.namespace, webhooks.name) == ("", GATEKEEPER_CONFIGURATION), webhooks  # cluster-wide, by name
    reached = " ".join(r.why for r in rows if r.request is None)
    assert "mlflow" in reached and "minio" in reached and "prometheus" in reached, reached


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_analyst_holds_nothing_more_and_the_runner_not_its_rights(platform: Platform, tenant: str) -> None:
    other = next(t for t in TENANTS if t != tenant)
    analyst = service_account(tenant, ANALYST_SERVICE_ACCOUNT)
    for row in analyst_journeys(platform, tenant):
        if row.request is None or not row.request.namespace or row.request.namespace != tenant:
            continue
        elsewhere = replace(row.request, namespace=other)
        assert not platform.rbac.allows(analyst, elsewhere), f"{tenant}'s analyst may {elsewhere}"
    for verb in ("get", "list"):
        assert not platform.rbac.allows(analyst, Request(verb, "secrets", namespace=tenant))
    runner = service_account(tenant, "pipeline-runner")
    assert not platform.rbac.allows(
        runner, Request("update", "inferenceservices", "serving.kserve.io", namespace=tenant)
    )
    assert not platform.rbac.allows(analyst, Request("create", "workflows", "argoproj.io", namespace=tenant))
    group = "admissionregistration.k8s.io"  # the one configuration, read: not another, not a list, not a write
    assert platform.rbac.allows(analyst, Request("get", "validatingwebhookconfigurations", group,
                                                 name=GATEKEEPER_CONFIGURATION))  # fmt: skip
    for verb, name in (("get", "another-webhook-configuration"), ("list", ""), ("update", GATEKEEPER_CONFIGURATION)):
        assert not platform.rbac.allows(analyst, Request(verb, "validatingwebhookconfigurations", group, name=name))
    assert not platform.rbac.allows(analyst, Request("get", "mutatingwebhookconfigurations", group,
                                                     name="gatekeeper-mutating-webhook-configuration"))  # fmt: skip


def test_a_missing_right_and_a_closed_network_are_named(platform: Platform) -> None:
    tenant = TENANTS[0]
    rows = analyst_journeys(platform, tenant)
    who = service_account(tenant, ANALYST_SERVICE_ACCOUNT)
    update = next(r for r in rows if r.request is not None and r.api.verb == "update" and
                  r.api.resource == "inferenceservices")  # fmt: skip
    assert refusal(platform, who, update, tenant) is None  # positive control
    objects = copy.deepcopy(platform.objects)
    for obj in objects:
        if obj["kind"] == "Role" and obj["metadata"] == {"name": ANALYST_SERVICE_ACCOUNT, "namespace": tenant}:
            obj["rules"] = [r for r in obj["rules"] if "inferenceservices" not in r["resources"]]
    without = replace(platform, rbac=Rbac.of(objects))
    assert (refusal(without, who, update, tenant) or "").startswith("RBAC:")
    webhooks = next(r for r in rows if r.request is not None and r.api.resource == "validatingwebhookconfigurations")
    assert refusal(platform, who, webhooks, tenant) is None  # positive control
    objects = copy.deepcopy(platform.objects)
    for obj in objects:  # the ClusterRole's one rule taken out
        if obj["kind"] == "ClusterRole" and obj["metadata"]["name"] == f"{ANALYST_SERVICE_ACCOUNT}-{tenant}":
            obj["rules"] = []
    assert (refusal(replace(platform, rbac=Rbac.of(objects)), who, webhooks, tenant) or "").startswith("RBAC:")
    for hop in ("minio", "prometheus"):
        store = next(r for r in rows if r.request is None and hop in r.why)
        assert refusal(platform, who, store, tenant) is None
        assert (refusal(closed(platform, tenant), who, store, tenant) or "").startswith("network:")
    query = next(r for r in rows if r.request is None and "prometheus" in r.why)  # its own rule, taken out
    without = [p for p in platform.network.policies if not p["metadata"]["name"].endswith("-to-prometheus")]
    assert len(without) < len(platform.network.policies)
    assert (refusal(replace(platform, network=Evaluator(without)), who, query, tenant) or "").startswith("network:")
