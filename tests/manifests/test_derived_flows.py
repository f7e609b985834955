"""Network flows derived from the code, and required-flows.yaml held to what the manifests render.

Each endpoint (URL or host:port) in a pipelines namespace's `mlops-platform` ConfigMap
(pipelines/cluster.py: cluster_settings, platform_configmap) is a flow from that namespace's
pipeline pods, and every pod rendered there that reads the whole ConfigMap, to the Service it
names: the Service must be rendered in that namespace with that port, select a rendered pod, and
the NetworkPolicies (networkpolicy_evaluator_without_cni.py) must allow the flow. And no row or
policy of the platform's namespaces names pods the manifests no longer render.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from components.platform.settings import CONFIGMAP
from pipelines.cluster import SHARED_PIPELINES_NAMESPACE, cluster_settings
from pipelines.platform_services import pushgateway
from tests.manifests.network_platform import (
    FLOWS,
    PIPELINE_POD,
    ROLE,
    TENANTS,
    Cluster,
    cluster,
    configmap_endpoints,
    endpoints,
    named,
    pipelines_namespaces,
    pod_templates,
    rendered_pod_labels,
)
from tests.manifests.networkpolicy_evaluator_without_cni import Evaluator, Pod, selects


@pytest.fixture(scope="module", params=["dev", "prod"])
def platform(request: pytest.FixtureRequest, schemas_dir: Path) -> Cluster:
    return cluster(request.param)


def test_every_endpoint_in_the_platforms_namespaces_is_a_pod_the_manifests_render(platform: Cluster) -> None:
    """issue 28: required-flows.yaml is written by hand, so a row for a pod that moved or went stayed,
    and its NetworkPolicy with it. Each endpoint in a namespace the manifests render whole (the
    services and the object store) selects a pod they render, each endpoint is used by a row, and
    each NetworkPolicy there selects, and admits or reaches within its namespace, pods they render."""
    whole = {ns for ns, labels in platform.namespaces.items() if labels.get(ROLE) in {"services", "storage"}}
    assert whole == {"mlops", "storage"}
    stale = []
    for name, declared in FLOWS["endpoints"].items():
        if declared.get("namespace") in whole:
            pods = rendered_pod_labels(platform, declared["namespace"])
            if not any(declared["labels"].items() <= labels.items() for labels in pods):
                stale.append(f"{name}: no pod rendered in {declared['namespace']} carries {declared['labels']}")
        if not any(name in (flow["from"], flow["to"]) for flow in FLOWS["flows"]):
            stale.append(f"{name}: no row uses it")
    for policy in platform.evaluator.policies:  # ... and no policy there allows pods that are not
        name, namespace = named(policy)
        if namespace in whole:
            pods = rendered_pod_labels(platform, namespace)
            spec = policy["spec"]
            peers = [peer for rule in spec.get("ingress", []) + spec.get("egress", [])
                     for peer in rule.get("from", []) + rule.get("to", []) if set(peer) == {"podSelector"}]  # fmt: skip
            for selector in [spec["podSelector"], *(peer["podSelector"] for peer in peers)]:
                if not any(selects(selector, labels) for labels in pods):
                    stale.append(f"NetworkPolicy {namespace}/{name}: {selector} selects no pod rendered there")
    assert stale == []


def configmap_readers(platform: Cluster, namespace: str) -> dict[str, dict[str, str]]:
    """Who dials the ConfigMap's endpoints in `namespace`: the pipelines' step pods, and every pod
    rendered there that takes the whole ConfigMap (envFrom), by its labels."""
    readers = {"pipeline pods": PIPELINE_POD}
    for template in pod_templates(platform.objects, namespace):
        sources = [s for c in template["spec"]["containers"] for s in c.get("envFrom", [])]
        if any(s.get("configMapRef", {}).get("name") == CONFIGMAP for s in sources):
            labels = template["metadata"].get("labels", {})
            readers[f"{labels.get('app.kubernetes.io/name', 'pod')} pods"] = labels
    return readers


def target_port(entry: dict[str, Any], template: dict[str, Any]) -> int:
    """The pod port a Service port sends to: targetPort, by number or by the container port's name."""
    target = entry.get("targetPort", entry["port"])
    if isinstance(target, int):
        return target
    for container in template["spec"]["containers"]:
        for port in container.get("ports", []):
            if port.get("name") == target:
                return int(port["containerPort"])
    raise AssertionError(f"targetPort {target!r} names no container port")


def service_problems(
    platform: Cluster, namespace: str, data: dict[str, str], readers: dict[str, dict[str, str]] | None = None
) -> list[str]:
    """What keeps a pod of `namespace` (a pipeline pod, or each of `readers`) from each endpoint in
    `data`: no such Service, no such port, no pod behind it, or a NetworkPolicy."""
    sources = {who: Pod(namespace, labels, platform.namespaces[namespace])
               for who, labels in (readers or {"pipeline pods": PIPELINE_POD}).items()}  # fmt: skip
    services = [obj for obj in platform.objects if obj["kind"] == "Service"]
    problems = []
    for key, host, port in configmap_endpoints(data):
        parts = host.split(".")
        if len(parts) < 3 or parts[2] != "svc":
            problems.append(f"{namespace} {key}: {host} is not a Service's cluster name (<name>.<namespace>.svc)")
            continue
        name, service_namespace = parts[0], parts[1]
        service = next((s for s in services if named(s) == (name, service_namespace)), None)
        if service is None:
            elsewhere = sorted(named(s)[1] for s in services if named(s)[0] == name)
            where = f"no Service {name} in namespace {service_namespace} (rendered in: {elsewhere})"
            problems.append(f"{namespace} {key}: {where}")
            continue
        entry = next((p for p in service["spec"].get("ports", []) if p["port"] == port), None)
        if entry is None:
            problems.append(f"{namespace} {key}: Service {service_namespace}/{name} has no port {port}")
            continue
        selector = service["spec"].get("selector") or {}
        behind = [t for t in pod_templates(platform.objects, service_namespace)
                  if selector and selector.items() <= t["metadata"].get("labels", {}).items()]  # fmt: skip
        if not behind:
            problems.append(f"{namespace} {key}: Service {service_namespace}/{name} selects no rendered pod")
        for template, (who, source) in itertools.product(behind, sources.items()):
            pod_port = target_port(entry, template)
            destination = Pod(service_namespace, template["metadata"]["labels"], platform.namespaces[service_namespace])
            if not platform.evaluator.allowed(source, destination, pod_port):
                problems.append(f"{namespace} {key}: {who} -> {service_namespace}/{name}:{pod_port} denied")
    return problems


def platform_configmap(platform: Cluster, namespace: str) -> dict[str, str]:
    (configmap,) = [o for o in platform.objects if o["kind"] == "ConfigMap" and named(o) == (CONFIGMAP, namespace)]
    data: dict[str, str] = configmap["data"]
    return data


def test_every_endpoint_in_the_platform_configmaps_is_a_service_the_pipelines_reach(platform: Cluster) -> None:
    """issue 28: the Pushgateway. Each endpoint of each pipelines namespace's mlops-platform
    ConfigMap is a required flow from that namespace's pipeline pods (and every pod rendered there
    that reads the whole ConfigMap, such as the Feast CronJob) to the Service it names, which the
    manifests must render in that namespace with that port. MLOPS_PUSHGATEWAY_URL named
    `pushgateway.monitoring.svc` while the Pushgateway runs in `mlops`: every drift push failed."""
    problems, reached = [], set()
    for namespace in pipelines_namespaces(platform.namespaces):
        data = platform_configmap(platform, namespace)
        reached |= {key for key, _, _ in configmap_endpoints(data)}
        problems += service_problems(platform, namespace, data, configmap_readers(platform, namespace))
    expected = {"MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL", "MLOPS_FEAST_REDIS", "MLOPS_FEAST_REGISTRY_URL"}
    assert expected | {"MLOPS_PUSHGATEWAY_URL"} <= reached, "the derivation finds the endpoints at all"
    assert problems == []


def test_the_derived_flow_check_names_a_missing_service_port_or_policy(platform: Cluster) -> None:
    """issue 28: the check above, broken on purpose: the old Pushgateway URL, a port the Service
    lacks, a host outside the cluster and a pipelines namespace without its egress policy."""
    tenant = TENANTS[0]
    data = platform_configmap(platform, tenant)
    assert service_problems(platform, tenant, data) == []
    old = {**data, "MLOPS_PUSHGATEWAY_URL": "http://pushgateway.monitoring.svc.cluster.local:9091"}
    everywhere = pipelines_namespaces(platform.namespaces)
    assert service_problems(platform, tenant, old) == [
        f"{tenant} MLOPS_PUSHGATEWAY_URL: no Service pushgateway in namespace monitoring (rendered in: {everywhere})"
    ]
    wrong_port = {**data, "MLFLOW_TRACKING_URI": "http://mlflow.mlops.svc.cluster.local:5001"}
    assert service_problems(platform, tenant, wrong_port) == [
        f"{tenant} MLFLOW_TRACKING_URI: Service mlops/mlflow has no port 5001"
    ]
    outside = {**data, "AWS_ENDPOINT_URL": "https://s3.example.com"}
    assert service_problems(platform, tenant, outside) == [
        f"{tenant} AWS_ENDPOINT_URL: s3.example.com is not a Service's cluster name (<name>.<namespace>.svc)"
    ]
    egress = {("allow-platform-egress", tenant), ("allow-egress-to-own-pushgateway", tenant)}
    egress.add(("allow-own-pgbouncer-egress", tenant))  # its own PgBouncer (pipelines/tenant_pooler.py)
    without = [p for p in platform.evaluator.policies if named(p) not in egress]
    closed = Cluster(platform.objects, Evaluator(without), platform.namespaces)
    denied = service_problems(closed, tenant, data)
    assert f"{tenant} MLOPS_PUSHGATEWAY_URL: pipeline pods -> {tenant}/pushgateway:9091 denied" in denied
    assert len(denied) == len(configmap_endpoints(data)), "every endpoint needs that policy"


def test_the_pushgateway_url_is_rendered_from_the_service_it_names(platform: Cluster) -> None:
    """issue 28, then 29: one source for the Pushgateway's name, namespace and port
    (pipelines.platform_services.pushgateway): each pipelines namespace's ConfigMap names its own
    namespace's Pushgateway, and the manifests render that Service there; none is left in `mlops`."""
    for namespace in pipelines_namespaces(platform.namespaces):
        tenant = "" if namespace == SHARED_PIPELINES_NAMESPACE else namespace
        address = pushgateway(namespace)
        assert cluster_settings(tenant).pushgateway_url == address.url
        (service,) = [o for o in platform.objects if o["kind"] == "Service" and named(o) == (address.name, namespace)]
        assert address.port in {port["port"] for port in service["spec"]["ports"]}
    assert not [o for o in platform.objects if named(o) == ("pushgateway", "mlops")], "the shared one is gone"


def pushgateway_flows(evaluator: Evaluator, namespaces: dict[str, dict[str, str]]) -> dict[str, bool]:
    """Who reaches which namespace's Pushgateway on its port: each pipelines namespace's pipeline
    pod to every namespace's Pushgateway, and Prometheus to each."""
    (prometheus,) = endpoints("prometheus", namespaces)
    port = pushgateway("any").port
    flows = {}
    for target_ns in pipelines_namespaces(namespaces):
        (gateway,) = endpoints("pushgateway", namespaces, target_ns)
        flows[f"prometheus -> {target_ns}"] = evaluator.allowed(prometheus, gateway, port)
        for source_ns in pipelines_namespaces(namespaces):
            (pod,) = endpoints("pipeline-pod", namespaces, source_ns)
            flows[f"{source_ns} -> {target_ns}"] = evaluator.allowed(pod, gateway, port)
    return flows


def test_a_tenant_reaches_only_its_own_pushgateway(platform: Cluster) -> None:
    """issue 29 (forged and suppressed alerts): every pipelines namespace pushed to one shared
    Pushgateway, so a pricing pod could push, or DELETE, fraud's drift group. Positive control
    first: fraud's pipeline pod and Prometheus reach fraud's Pushgateway; then the forbidden flow:
    pricing's pod does not, nor does any namespace reach another's; then the policies broken on
    purpose (the old shared gateway's rule: every pipelines namespace admitted) and the check
    sees the leak."""
    flows = pushgateway_flows(platform.evaluator, platform.namespaces)
    assert flows["fraud -> fraud"] and flows["prometheus -> fraud"]
    assert not flows["pricing -> fraud"]
    names = pipelines_namespaces(platform.namespaces)
    assert {key for key, allowed in flows.items() if allowed} == {
        *(f"{ns} -> {ns}" for ns in names),
        *(f"prometheus -> {ns}" for ns in names),
    }
    opened = []
    pipelines = {"namespaceSelector": {"matchLabels": {ROLE: "pipelines"}}, "podSelector": {}}
    gateway = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "pushgateway"}}}
    for policy in platform.evaluator.policies:
        if policy["metadata"]["name"] == "pushgateway-from-own-namespace":
            policy = {**policy, "spec": {**policy["spec"], "ingress": [{"from": [pipelines]}]}}
        elif policy["metadata"]["name"] == "allow-egress-to-own-pushgateway":
            policy = {**policy, "spec": {**policy["spec"], "egress": [{"to": [{**pipelines, **gateway}]}]}}
        opened.append(policy)
    assert pushgateway_flows(Evaluator(opened), platform.namespaces)["pricing -> fraud"]
