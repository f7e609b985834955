"""The rendered NetworkPolicies let the platform work and nothing else.

Every flow in manifests/base/network/required-flows.yaml is allowed in every overlay with every
tenant, and every flow from one tenant into another, or from a tenant to the databases
directly, is denied. No CNI runs here: the evaluator (networkpolicy_evaluator_without_cni.py)
is test code, checked first on small policies whose answers are known.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.lint import render
from tests.conftest import REPO
from tests.manifests.networkpolicy_evaluator_without_cni import Address, Endpoint, Evaluator, Pod

MANIFESTS = REPO / "manifests"
FLOWS = yaml.safe_load((MANIFESTS / "base" / "network" / "required-flows.yaml").read_text())
TENANTS = sorted(p.parent.name for p in (MANIFESTS / "tenants").glob("*/namespace.yaml"))
ROLE = "mlops.private-platform.io/role"
NAME = "kubernetes.io/metadata.name"


# --- the evaluator, on policies whose answers are known ------------------------------------------

A = Pod("a", {"app": "web"}, {NAME: "a", "team": "x"})
A_DB = Pod("a", {"app": "db"}, {NAME: "a", "team": "x"})
B = Pod("b", {"app": "web"}, {NAME: "b", "team": "y"})


def policy(namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": namespace}, "spec": spec}


def test_evaluator_without_policies_everything_flows() -> None:
    assert Evaluator([]).allowed(A, B, 80)


def test_evaluator_default_deny_closes_both_directions_of_the_selected_pods_only() -> None:
    deny = [policy("b", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})]
    assert not Evaluator(deny).allowed(A, B, 80) and not Evaluator(deny).allowed(B, A, 80)
    assert Evaluator(deny).allowed(A, A_DB, 80)


def test_evaluator_namespace_and_pod_selector_in_one_peer_must_both_match() -> None:
    together = {"namespaceSelector": {"matchLabels": {"team": "x"}}, "podSelector": {"matchLabels": {"app": "db"}}}
    rules = [policy("b", {"podSelector": {}, "ingress": [{"from": [together], "ports": [{"port": 80}]}]})]
    evaluator = Evaluator(rules)
    assert evaluator.allowed(A_DB, B, 80)
    assert not evaluator.allowed(A, B, 80), "same namespace, other pod"
    assert not evaluator.allowed(A_DB, B, 81), "other port"
    assert not evaluator.allowed(A_DB, B, 80, "UDP"), "other protocol"
    apart = [{"namespaceSelector": {"matchLabels": {"team": "x"}}}, {"podSelector": {"matchLabels": {"app": "db"}}}]
    either = Evaluator([policy("b", {"podSelector": {}, "ingress": [{"from": apart}]})])
    assert either.allowed(A, B, 80), "two peers: either one admits"


def test_evaluator_pod_selector_alone_means_the_policys_namespace() -> None:
    rules = [policy("b", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})]
    assert not Evaluator(rules).allowed(A, B, 80)
    assert Evaluator(rules).allowed(Pod("b", {}, {NAME: "b"}), B, 80)


def test_evaluator_ip_blocks_ranges_and_expressions() -> None:
    egress = {
        "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.9.0.0/16"]}}],
        "ports": [{"port": 6000, "endPort": 6010}],
    }
    rules = [policy("a", {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
                          "policyTypes": ["Egress"], "egress": [egress]})]  # fmt: skip
    evaluator = Evaluator(rules)
    assert evaluator.allowed(A, Address("10.1.2.3"), 6005)
    assert not evaluator.allowed(A, Address("10.9.0.1"), 6005)
    assert not evaluator.allowed(A, Address("10.1.2.3"), 6011)
    assert not evaluator.allowed(A, B, 6005), "an ipBlock does not match pods"
    assert evaluator.allowed(A_DB, Address("192.168.0.1"), 1), "a pod no egress policy selects is open"


# --- the platform ----------------------------------------------------------------------------------


def cluster(overlay: str) -> tuple[Evaluator, dict[str, dict[str, str]]]:
    objects = render(MANIFESTS / "overlays" / overlay)
    for tenant in TENANTS:
        objects += render(MANIFESTS / "tenants" / tenant)
    namespaces: dict[str, dict[str, str]] = {}
    for obj in objects:
        if obj["kind"] == "Namespace":
            name = obj["metadata"]["name"]
            namespaces[name] = {**obj["metadata"].get("labels", {}), NAME: name}
    for endpoint in FLOWS["endpoints"].values():
        name = endpoint.get("namespace", "")
        if name and not name.startswith("{"):
            namespaces.setdefault(name, {NAME: name})  # the cluster's and the operators' namespaces
    return Evaluator([o for o in objects if o["kind"] == "NetworkPolicy"]), namespaces


def pipelines_namespaces(namespaces: dict[str, dict[str, str]]) -> list[str]:
    return sorted(name for name, labels in namespaces.items() if labels.get(ROLE) == "pipelines")


def endpoints(name: str, namespaces: dict[str, dict[str, str]], only: str | None = None) -> list[Endpoint]:
    declared = FLOWS["endpoints"][name]
    if "address" in declared:
        return [Address(declared["address"])]
    names = {
        "{pipelines}": pipelines_namespaces(namespaces),
        "{tenants}": [ns for ns in pipelines_namespaces(namespaces) if ns != "mlops-pipelines"],
    }.get(declared["namespace"], [declared["namespace"]])
    return [Pod(ns, dict(declared["labels"]), namespaces[ns]) for ns in names if only in (None, ns)]


@pytest.fixture(scope="module", params=["dev", "prod"])
def platform(request: pytest.FixtureRequest, schemas_dir: Path) -> tuple[Evaluator, dict[str, dict[str, str]]]:
    return cluster(request.param)


def test_every_required_flow_is_allowed(platform: tuple[Evaluator, dict[str, dict[str, str]]]) -> None:
    evaluator, namespaces = platform
    assert len(pipelines_namespaces(namespaces)) == len(TENANTS) + 1  # each tenant and mlops-pipelines
    blocked = []
    for flow in FLOWS["flows"]:
        for source in endpoints(flow["from"], namespaces):
            for destination in endpoints(flow["to"], namespaces):
                if isinstance(source, Pod) and isinstance(destination, Pod):
                    pipelines = {source.namespace, destination.namespace} & set(pipelines_namespaces(namespaces))
                    if len(pipelines) == 2:
                        continue  # a {pipelines} endpoint pairs with its own namespace only
                protocol = flow.get("protocol", "TCP")
                if not evaluator.allowed(source, destination, flow["port"], protocol):
                    where = (getattr(source, "namespace", ""), getattr(destination, "namespace", ""))
                    blocked.append(f"{flow['from']}@{where[0]} -> {flow['to']}@{where[1]}:{flow['port']}/{protocol}")
    assert blocked == []


def test_tenants_reach_neither_each_other_nor_the_databases(
    platform: tuple[Evaluator, dict[str, dict[str, str]]],
) -> None:
    evaluator, namespaces = platform
    tenants = [ns for ns in pipelines_namespaces(namespaces) if ns != "mlops-pipelines"]
    leaks = []
    for source_ns, target_ns in itertools.permutations(tenants, 2):
        for source_name in ("pipeline-pod", "predictor", "transformer"):
            for target_name in ("pipeline-pod", "predictor", "transformer"):
                (source,) = endpoints(source_name, namespaces, source_ns)
                (target,) = endpoints(target_name, namespaces, target_ns)
                for port in (8012, 8080, 9000, 5000, 443):
                    if evaluator.allowed(source, target, port):
                        leaks.append(f"{source_name}@{source_ns} -> {target_name}@{target_ns}:{port}")
            (redis,) = endpoints("tenant-redis", namespaces, target_ns)
            if evaluator.allowed(source, redis, 6379):
                leaks.append(f"{source_name}@{source_ns} -> redis@{target_ns} (another tenant's online store)")
    for tenant in tenants:
        for name in ("pipeline-pod", "predictor", "transformer"):
            (source,) = endpoints(name, namespaces, tenant)
            (postgres,) = endpoints("postgres", namespaces)
            for port in (5432, 8000):
                if evaluator.allowed(source, postgres, port):
                    leaks.append(f"{name}@{tenant} -> postgres:{port} (the pool is the only way in)")
            (platform_redis,) = endpoints("redis", namespaces)
            if evaluator.allowed(source, platform_redis, 6379):
                leaks.append(f"{name}@{tenant} -> the platform's redis (each tenant has its own)")
            (minio,) = endpoints("minio", namespaces)
            if evaluator.allowed(source, minio, 9001):
                leaks.append(f"{name}@{tenant} -> minio console")
    assert leaks == []
