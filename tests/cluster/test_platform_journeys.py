"""The platform's own jobs do their jobs: each hop they make is allowed, and they hold no API rights.
So does each tenant's scoring transformer writing its decision log (issue 32).

The Feast refresh CronJob of each tenant, the tenant-databases Job, bucket-setup and KServe's
storage initializer (the model-puller ServiceAccount's Secret) reach their stores through the
rendered NetworkPolicies; none of them calls the Kubernetes API, so their ServiceAccounts read no
Secret. Each hop is derived from what the workload is given: its environment (and the ConfigMaps
it takes it from) or its Secret's endpoint annotation, resolved to the rendered Service, its pods
and its target port.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.cluster.journeys import Journey
from tests.cluster.rbac_evaluator_without_apiserver import Request, service_account
from tests.cluster.rendered_platform import TENANTS, Platform, closed, refusal
from tests.manifests.networkpolicy_evaluator_without_cni import Pod

HOST = re.compile(
    r"(?:(?P<scheme>[a-z+]+)://)?(?:[^@/\s]*@)?(?P<svc>[a-z0-9-]+)\.(?P<ns>[a-z0-9-]+)\.svc(?:\.cluster\.local)?(?::(?P<port>\d+))?"
)
DEFAULT_PORTS = {"http": 80, "https": 443}
# The environment the Feast refresh opens its stores from (components/steps/feast_refresh.py ->
# components/steps/materialize.open_store -> components/platform/services.py): registry, Redis, offline store.
FEAST_REFRESH_KEYS = ("MLOPS_FEAST_REGISTRY_URL", "MLOPS_FEAST_REDIS", "AWS_ENDPOINT_URL")
CNPG_SERVICES = re.compile(r"^(?P<cluster>.+)-(rw|ro|r)$")  # CloudNativePG's Services of a Cluster
CNPG_PORT = 5432


def pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        template: dict[str, Any] = spec["jobTemplate"]["spec"]["template"]
        return template
    if obj["kind"] in ("Job", "Deployment", "StatefulSet", "DaemonSet"):
        template = spec["template"]
        return template
    return None


def find(platform: Platform, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    return next(
        (
            o
            for o in platform.objects
            if o["kind"] == kind and o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
        ),
        None,
    )


def environment(platform: Platform, template: dict[str, Any], namespace: str) -> dict[str, str]:
    """Every variable a pod's containers are given: envFrom ConfigMaps, then literal env values."""
    found: dict[str, str] = {}
    for container in template["spec"].get("containers", []):
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef")
            config = find(platform, "ConfigMap", namespace, ref["name"]) if ref else None
            found |= (config or {}).get("data", {})
        found |= {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    return found


def workload_pods(platform: Platform, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
    templates = []
    for obj in platform.objects:
        template = pod_template(obj)
        labels = (template or {}).get("metadata", {}).get("labels", {})
        if template and obj["metadata"].get("namespace") == namespace and selector.items() <= labels.items():
            templates.append(template)
    return templates


def destination(platform: Platform, host: str) -> tuple[Pod, int]:
    """The pod and port a `svc.ns.svc[:port]` address reaches: the Service's selected pods, its target port."""
    found = HOST.search(host)
    assert found, f"no Service address in {host!r}"
    name, namespace = found["svc"], found["ns"]
    port = int(found["port"]) if found["port"] else DEFAULT_PORTS.get(found["scheme"] or "")
    labels = platform.namespaces.get(namespace)
    assert labels is not None, f"{host}: namespace {namespace} is not rendered nor a known operator's"
    service = find(platform, "Service", namespace, name)
    if service is None:
        cnpg = CNPG_SERVICES.match(name)
        assert cnpg and find(platform, "Cluster", namespace, cnpg["cluster"]), f"{host}: no Service {namespace}/{name}"
        return Pod(namespace, {"cnpg.io/cluster": cnpg["cluster"]}, labels), port or CNPG_PORT
    entries = service["spec"]["ports"]
    entry = (
        next((e for e in entries if e["port"] == port), None) if port else (entries[0] if len(entries) == 1 else None)
    )
    assert entry is not None, f"{host}: Service {namespace}/{name} has no port {port}"
    selector = service["spec"].get("selector", {})
    pods = workload_pods(platform, namespace, selector)
    pod_labels = pods[0]["metadata"]["labels"] if pods else selector
    target = entry.get("targetPort", entry["port"])
    if isinstance(target, str):
        containers = [c for p in pods for c in p["spec"].get("containers", [])]
        target = next(p["containerPort"] for c in containers for p in c.get("ports", []) if p.get("name") == target)
    return Pod(namespace, dict(pod_labels), labels), int(target)


def hops(platform: Platform, source: Pod, values: list[str], why: str, account: str) -> list[Journey]:
    rows = []
    for value in values:
        for found in HOST.finditer(value):
            target, port = destination(platform, found.group(0))
            rows.append(Journey(account, None, f"{why}: {found.group(0)}", flow=(source, target, port)))
    return rows


def platform_journeys(platform: Platform) -> list[Journey]:
    rows: list[Journey] = []
    for obj in platform.objects:
        template = pod_template(obj)
        name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace", "")
        app = (template or {}).get("metadata", {}).get("labels", {}).get("app.kubernetes.io/name")
        if template is None or app not in ("feast-materialize", "tenant-databases", "bucket-setup"):
            continue
        source = Pod(namespace, dict(template["metadata"]["labels"]), platform.namespaces[namespace])
        env = environment(platform, template, namespace)
        values = [env[k] for k in FEAST_REFRESH_KEYS] if app == "feast-materialize" else list(env.values())
        account = f"{namespace}:{template['spec'].get('serviceAccountName', 'default')}"
        rows += hops(platform, source, values, f"{obj['kind']} {namespace}/{name}", account)
    for tenant in TENANTS:  # KServe's storage initializer, in the predictor pod, with the model-puller's Secret
        secret = find(platform, "Secret", tenant, "model-puller-s3")
        assert secret is not None, f"{tenant}: no model-puller-s3 Secret rendered"
        endpoint = secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"]
        predictor = Pod(
            tenant,
            {"serving.kserve.io/inferenceservice": "any", "component": "predictor"},
            platform.namespaces[tenant],
        )
        rows += hops(
            platform, predictor, [endpoint], "the storage initializer pulls the model", f"{tenant}:model-puller"
        )
    return rows


def decision_log_journeys(platform: Platform) -> list[Journey]:
    """issue 32: each tenant's scoring transformer writes its decision log to the object store. The
    hop is derived from the InferenceService promote renders: its transformer container's variables
    (the namespace's ConfigMap, then its own env) name the log's URI and the endpoint it writes to."""
    from components.config import transformer_settings
    from components.steps.promote import render_inference_service
    from pipelines.local import declaration
    from tests.cluster.rendered_platform import endpoint
    from tests.conftest import REGISTRATION

    pipeline = declaration("fraud")
    cfg = pipeline.config()
    rows = []
    for tenant in TENANTS:
        settings = cfg.promote.model_copy(update={"namespace": tenant})
        service = render_inference_service(dict(REGISTRATION), storage_uri="s3://models/x",  # type: ignore[arg-type]
                                           settings=settings, canary_percent=10,
                                           transformer=transformer_settings(cfg, pipeline.spec.image))  # fmt: skip
        template = {"spec": service["spec"]["transformer"]}
        env = environment(platform, template, tenant)
        assert env.get("MLOPS_DECISION_LOG_URI", "").startswith("s3://decisions/"), f"{tenant}: no decision log"
        source = endpoint(platform, "tenant-transformer", tenant)
        assert isinstance(source, Pod)
        account = f"{tenant}:{template['spec'].get('serviceAccountName', 'default')}"
        rows += hops(platform, source, [env["AWS_ENDPOINT_URL"]], "the transformer writes its decision log", account)
    return rows


def test_the_transformer_writes_its_decision_log(platform: Platform) -> None:
    """The journey "transformer writes its decision log", in every tenant: allowed as rendered; and
    allow-transformer-egress without its object-store rule (as before issue 32) refuses it, named as
    the network refusing, so the journey fails when the flow is missing."""
    from dataclasses import replace

    from tests.manifests.networkpolicy_evaluator_without_cni import Evaluator

    rows = decision_log_journeys(platform)
    assert len(rows) == len(TENANTS), rows
    for row in rows:
        namespace, name = row.who.split(":")
        assert refusal(platform, service_account(namespace, name), row, namespace) is None, row
        assert not platform.rbac.allows(
            service_account(namespace, name), Request("list", "secrets", namespace=namespace)
        )
    without = [
        {**p, "spec": {**p["spec"], "egress": [e for e in p["spec"]["egress"] if "9000" not in str(e["ports"])]}}
        if p["metadata"]["name"] == "allow-transformer-egress"
        else p
        for p in platform.network.policies
    ]
    assert without != platform.network.policies
    missing = replace(platform, network=Evaluator(without))
    for row in rows:
        namespace, name = row.who.split(":")
        refused = refusal(missing, service_account(namespace, name), row, namespace)
        assert (refused or "").startswith("network:") and "minio" in (refused or ""), (row, refused)


def test_the_platforms_jobs_reach_their_stores_and_hold_no_api_rights(platform: Platform) -> None:
    """issue 28: the platform's controllers and CronJobs do their jobs (Feast refresh per tenant,
    tenant-databases, bucket-setup, the model puller), each hop derived from what it is given."""
    rows = platform_journeys(platform)
    sources = " ".join(row.why for row in rows)
    for expected in ("CronJob", "feast-materialize", "tenant-databases", "bucket-setup", "storage initializer"):
        assert expected in sources, f"no journey of {expected}: the derivation lost it"
    failures = []
    for row in rows:
        namespace, name = row.who.split(":")
        who = service_account(namespace, name)
        refused = refusal(platform, who, row, namespace)
        if refused:
            failures.append(f"{row}\n    refused by {refused}")
        secrets = Request("list", "secrets", namespace=namespace)
        if platform.rbac.allows(who, secrets):
            failures.append(f"{row.who} may list Secrets in {namespace}: it calls no API and must hold no rights")
    assert not failures, f"{platform.overlay}:\n" + "\n".join(failures)


@pytest.mark.parametrize("host", ["pgbouncer.mlops.svc:5433", "nothing.mlops.svc:80"])
def test_a_hop_to_a_port_or_service_that_is_not_rendered_is_named(platform: Platform, host: str) -> None:
    with pytest.raises(AssertionError, match=host.split(":")[0].split(".")[0]):
        destination(platform, host)


def test_a_store_closed_on_purpose_is_named_as_the_network_refusing(platform: Platform) -> None:
    rows = platform_journeys(platform)
    for row in (r for r in rows if "tenant-databases" in r.why or "feast-materialize" in r.why):
        namespace, name = row.who.split(":")
        who = service_account(namespace, name)
        assert refusal(platform, who, row, namespace) is None, "positive control"
        assert row.flow is not None
        target = row.flow[1]
        assert isinstance(target, Pod)
        refused = refusal(closed(platform, target.namespace), who, row, namespace)
        assert (refused or "").startswith("network:"), row
