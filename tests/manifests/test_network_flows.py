"""The rendered NetworkPolicies let the platform work and nothing else.

Every flow in manifests/base/network/required-flows.yaml is allowed in every overlay with every
tenant, with the rows no code derives (TrainJob nodes, Katib, Kubeflow Pipelines, Knative's
autoscaler); the rows the code already knows are derived in test_derived_flows.py. Every flow
from one tenant into another, or from a tenant to the databases directly, is denied on every port
the rendered objects and the flows name. No CNI runs here: the evaluator
(networkpolicy_evaluator_without_cni.py) is test code, checked first on small policies whose
answers are known.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.platform.settings import CONFIGMAP
from pipelines.trainer import FRAMEWORK, RUNTIMES
from tests.manifests.network_platform import (
    FLOWS,
    NAME,
    PIPELINE_POD,
    TENANTS,
    Cluster,
    cluster,
    configmap_endpoints,
    endpoints,
    pipelines_namespaces,
    ray_pods,
    trainjob_nodes,
)
from tests.manifests.networkpolicy_evaluator_without_cni import Address, Evaluator, Pod

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


def test_evaluator_policy_types_default_to_egress_only_for_a_non_empty_egress_list() -> None:
    """issue 28: the evaluator added Egress whenever the key `egress` existed; Kubernetes, with
    policyTypes unset, adds it only when the egress list is non-empty."""
    missing = Evaluator([policy("a", {"podSelector": {}})])
    assert missing.allowed(A, B, 80), "no egress key: Ingress only, the pod's egress stays open"
    assert not missing.allowed(B, A, 80), "... and its ingress is closed"
    empty = Evaluator([policy("a", {"podSelector": {}, "egress": []})])
    assert empty.allowed(A, B, 80), "egress: [] without policyTypes: still Ingress only"
    dns_only = Evaluator([policy("a", {"podSelector": {}, "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}]})])
    assert not dns_only.allowed(A, B, 80) and dns_only.allowed(A, B, 53, "UDP"), "a non-empty list makes it Egress"
    explicit = Evaluator([policy("a", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "egress": []})])
    assert not explicit.allowed(A, B, 80), "explicit policyTypes with an empty list: egress denied"
    egress_only = Evaluator([policy("a", {"podSelector": {}, "policyTypes": ["Egress"]})])
    assert not egress_only.allowed(A, B, 80) and egress_only.allowed(B, A, 80), "explicit Egress only: ingress open"


def test_evaluator_a_path_through_a_proxy_is_two_flows_and_needs_both() -> None:
    """allowed_via: the source reaches the proxy on the proxy's port, and the proxy reaches the
    destination on its port; either hop closed closes the path, whatever the other allows."""
    proxy = Pod("p", {"app": "proxy"}, {NAME: "p"})

    def admits(namespace: str, peer: str, port: int) -> dict[str, Any]:
        only = {"from": [{"namespaceSelector": {"matchLabels": {NAME: peer}}}], "ports": [{"port": port}]}
        return policy(namespace, {"podSelector": {}, "ingress": [only]})

    both = Evaluator([admits("p", "a", 8012), admits("b", "p", 80)])
    assert both.allowed_via(A, proxy, 8012, B, 80), "both hops open"
    assert not both.allowed(A, B, 80), "... while the direct flow is closed: two flows, not one"
    assert not both.allowed_via(A, proxy, 8080, B, 80), "the proxy's port is the first hop's"
    second_closed = Evaluator([admits("p", "a", 8012), admits("b", "a", 80)])
    assert second_closed.allowed(A, proxy, 8012) and not second_closed.allowed(proxy, B, 80)
    assert not second_closed.allowed_via(A, proxy, 8012, B, 80), "source to proxy open, proxy to destination closed"
    first_closed = Evaluator([admits("p", "b", 8012), admits("b", "p", 80)])
    assert not first_closed.allowed(A, proxy, 8012) and first_closed.allowed(proxy, B, 80)
    assert not first_closed.allowed_via(A, proxy, 8012, B, 80), "source to proxy closed, proxy to destination open"


# --- the platform ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["dev", "prod"])
def platform(request: pytest.FixtureRequest, schemas_dir: Path) -> Cluster:
    return cluster(request.param)


def test_every_required_flow_is_allowed(platform: Cluster) -> None:
    evaluator, namespaces = platform.evaluator, platform.namespaces
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


def test_kubeflow_and_knative_reach_what_runs_in_a_tenant_namespace(platform: Cluster) -> None:
    """issue 28: tenant namespaces denied every flow Katib, Kubeflow Pipelines and Knative's
    autoscaler need, so every KFP run there failed at its first task. The rows are required, and
    the same pods of another namespace stay out."""
    evaluator, namespaces = platform.evaluator, platform.namespaces
    rows = [("katib-trial", "katib-db-manager", 6789), ("katib-controller", "katib-suggestion", 6789),
            ("kfp-task-pod", "kfp-api-server", 8887), ("kfp-task-pod", "kfp-api-server", 8888),
            ("kfp-task-pod", "ml-metadata", 8080), ("knative-autoscaler", "predictor", 9090)]  # fmt: skip
    declared = {(flow["from"], flow["to"], flow["port"]) for flow in FLOWS["flows"]}
    assert set(rows) <= declared, "each is a row of required-flows.yaml"
    for tenant in TENANTS:
        for source_name, target_name, port in rows:
            (source,) = endpoints(source_name, namespaces, tenant) or endpoints(source_name, namespaces)
            (target,) = endpoints(target_name, namespaces, tenant) or endpoints(target_name, namespaces)
            assert evaluator.allowed(source, target, port), f"{source_name}@{tenant} -> {target_name}:{port}"
    (trial,) = endpoints("katib-trial", namespaces, TENANTS[0])
    (other_trial,) = endpoints("katib-trial", namespaces, TENANTS[1])
    assert not evaluator.allowed(trial, other_trial, 6789), "a trial is no DB manager to another tenant"


def test_trainjob_nodes_meet_on_their_runtimes_port_in_their_own_namespace_only(platform: Cluster) -> None:
    """issue 28: no flow let TrainJob nodes reach each other (torchrun's rendezvous, XGBoost's
    tracker, then the collectives' peer links). Each runtime pipelines/trainer.py renders has its
    rendezvous port, and its nodes, labelled as JobSet labels them, meet on it."""
    rendezvous, peer = FLOWS["trainjob"]["rendezvous"], FLOWS["trainjob"]["peer-port"]
    assert set(rendezvous) == {FRAMEWORK[runtime] for runtime in RUNTIMES}, "a runtime without its rendezvous port"
    evaluator, namespaces = platform.evaluator, platform.namespaces
    for runtime, labels in trainjob_nodes().items():
        for namespace in pipelines_namespaces(namespaces):
            node = Pod(namespace, labels, namespaces[namespace])
            for port in (rendezvous[FRAMEWORK[runtime]], peer):
                assert evaluator.allowed(node, node, port), f"{runtime} nodes in {namespace} on {port}"
        one, other = (Pod(ns, labels, namespaces[ns]) for ns in TENANTS[:2])
        assert not evaluator.allowed(one, other, rendezvous[FRAMEWORK[runtime]]), "across tenants"
        stranger = Pod(TENANTS[0], PIPELINE_POD, namespaces[TENANTS[0]])
        assert not evaluator.allowed(stranger, one, rendezvous[FRAMEWORK[runtime]]), "a step pod is no node"


def test_a_rayjobs_head_and_workers_meet_and_its_submitter_reaches_the_head_in_their_namespace_only(
    platform: Cluster,
) -> None:
    """issue 33: materialize.engine ray. Head and workers reach each other on the GCS and on the
    ports Ray picks; the submitter reaches the head's dashboard and nothing else of theirs; nothing
    crosses tenants, and a step pod is no Ray node."""
    ray, evaluator, namespaces = FLOWS["ray"], platform.evaluator, platform.namespaces
    pods = ray_pods()
    assert set(pods) == {"ray head", "ray worker", "ray submitter"}, pods
    for namespace in pipelines_namespaces(namespaces):
        head, worker, submitter = (Pod(namespace, pods[f"ray {n}"], namespaces[namespace])
                                   for n in ("head", "worker", "submitter"))  # fmt: skip
        for one, other in itertools.permutations(
            (head, worker, Pod(namespace, pods["ray worker"], namespaces[namespace])), 2
        ):
            for port in (ray["gcs"], ray["peer-port"], ray["dashboard"]):
                assert evaluator.allowed(one, other, port), (namespace, one.labels, other.labels, port)
        assert evaluator.allowed(submitter, head, ray["dashboard"]), namespace
        assert not evaluator.allowed(submitter, head, ray["gcs"]) and not evaluator.allowed(
            submitter, worker, ray["dashboard"]
        )
    one, other = (Pod(ns, pods["ray head"], namespaces[ns]) for ns in TENANTS[:2])
    assert not evaluator.allowed(one, other, ray["gcs"]), "across tenants"
    stranger = Pod(TENANTS[0], PIPELINE_POD, namespaces[TENANTS[0]])
    assert not evaluator.allowed(stranger, one, ray["gcs"]), "a step pod is no Ray node"


# --- and nothing else --------------------------------------------------------------------------------


def probed_ports(platform: Cluster) -> list[int]:
    """Every port the rendered Services, containers, policies, ConfigMaps and the flows name."""
    ports: set[int] = {flow["port"] for flow in FLOWS["flows"]}
    ports |= {*FLOWS["trainjob"]["rendezvous"].values(), FLOWS["trainjob"]["peer-port"], *FLOWS["ray"].values()}

    def walk(node: Any, kind: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if (
                    isinstance(value, int)
                    and not isinstance(value, bool)
                    and (
                        key == "containerPort"
                        or (kind in {"Service", "NetworkPolicy"} and key in {"port", "targetPort"})
                    )
                ):
                    ports.add(value)
                walk(value, kind)
        elif isinstance(node, list):
            for item in node:
                walk(item, kind)

    for obj in platform.objects:
        walk(obj, obj["kind"])
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == CONFIGMAP:
            ports |= {port for _, _, port in configmap_endpoints(obj["data"])}
    return sorted(ports)


def tenant_pods(namespaces: dict[str, dict[str, str]], tenant: str) -> dict[str, Pod]:
    pods = {}
    for name in ("pipeline-pod", "predictor", "transformer", "katib-trial", "katib-suggestion", "kfp-task-pod"):
        (pod,) = endpoints(name, namespaces, tenant)
        assert isinstance(pod, Pod)
        pods[name] = pod
    for runtime, labels in trainjob_nodes().items():
        pods[f"{runtime} node"] = Pod(tenant, labels, namespaces[tenant])
    for name, labels in ray_pods().items():
        pods[name] = Pod(tenant, labels, namespaces[tenant])
    return pods


def leaks(evaluator: Evaluator, namespaces: dict[str, dict[str, str]], ports: list[int]) -> list[str]:
    """Every flow from one tenant's pods into another's, or to the databases directly, allowed on a port."""
    tenants = [ns for ns in pipelines_namespaces(namespaces) if ns != "mlops-pipelines"]
    found = []
    for source_ns, target_ns in itertools.permutations(tenants, 2):
        targets = tenant_pods(namespaces, target_ns)
        (redis,) = endpoints("tenant-redis", namespaces, target_ns)
        for source_name, source in tenant_pods(namespaces, source_ns).items():
            for (target_name, target), port in itertools.product(targets.items(), ports):
                if evaluator.allowed(source, target, port):
                    found.append(f"{source_name}@{source_ns} -> {target_name}@{target_ns}:{port}")
            if any(evaluator.allowed(source, redis, port) for port in ports):
                found.append(f"{source_name}@{source_ns} -> redis@{target_ns} (another tenant's online store)")
    (postgres,) = endpoints("postgres", namespaces)
    (platform_redis,) = endpoints("redis", namespaces)
    (minio,) = endpoints("minio", namespaces)
    for tenant in tenants:
        for name, source in tenant_pods(namespaces, tenant).items():
            found += [f"{name}@{tenant} -> postgres:{port} (the pool is the only way in)"
                      for port in ports if evaluator.allowed(source, postgres, port)]  # fmt: skip
            if any(evaluator.allowed(source, platform_redis, port) for port in ports):
                found.append(f"{name}@{tenant} -> the platform's redis (each tenant has its own)")
            if evaluator.allowed(source, minio, 9001):
                found.append(f"{name}@{tenant} -> minio console")
    return found


def test_tenants_reach_neither_each_other_nor_the_databases(platform: Cluster) -> None:
    """issue 28: the leak test probed a fixed list of ports; it probes every port the rendered
    objects and the flows name."""
    ports = probed_ports(platform)
    assert {5432, 6379, 9000, 9090, 9091, 29500, 8887} <= set(ports), "the derivation finds the ports at all"
    assert leaks(platform.evaluator, platform.namespaces, ports) == []


def test_the_leak_check_sees_trainjob_nodes_opened_to_every_namespace(platform: Cluster) -> None:
    """issue 28: the leak check, broken on purpose: the TrainJob nodes' policy with its peers
    widened to every namespace lets one tenant's nodes reach another's on the rendezvous ports."""
    widened = []
    for original in platform.evaluator.policies:
        if original["metadata"]["name"] == "allow-trainjob-nodes":
            spec = yaml.safe_load(yaml.safe_dump(original["spec"]))
            for rule, peers in (*((r, "from") for r in spec["ingress"]), *((r, "to") for r in spec["egress"])):
                rule[peers] = [{**peer, "namespaceSelector": {}} for peer in rule[peers]]
            original = {**original, "spec": spec}
        widened.append(original)
    one, other = TENANTS[:2]
    found = leaks(Evaluator(widened), platform.namespaces, probed_ports(platform))
    assert f"torch-distributed node@{one} -> torch-distributed node@{other}:29500" in found
    assert f"xgboost-distributed node@{other} -> xgboost-distributed node@{one}:9091" in found
    assert all(" node@" in line.split(" -> ")[0] and " node@" in line.split(" -> ")[1] for line in found), found[:5]


def test_the_leak_check_sees_ray_nodes_opened_to_every_namespace(platform: Cluster) -> None:
    """issue 33: the leak check, broken on purpose: the Ray nodes' policy with its peers widened to
    every namespace lets one tenant's Ray pods reach another's."""
    widened = []
    for original in platform.evaluator.policies:
        if original["metadata"]["name"] == "allow-ray-nodes":
            spec = yaml.safe_load(yaml.safe_dump(original["spec"]))
            for rule, peers in (*((r, "from") for r in spec["ingress"]), *((r, "to") for r in spec["egress"])):
                rule[peers] = [{**peer, "namespaceSelector": {}} for peer in rule[peers]]
            original = {**original, "spec": spec}
        widened.append(original)
    one, other = TENANTS[:2]
    found = leaks(Evaluator(widened), platform.namespaces, probed_ports(platform))
    assert f"ray worker@{one} -> ray head@{other}:{FLOWS['ray']['gcs']}" in found, found[:5]
    assert all(line.startswith("ray ") and " -> ray " in line for line in found), found[:5]
