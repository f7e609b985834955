"""The rendered platform as the network tests see it (test code, no cluster here).

Every overlay with every tenant as `kubectl kustomize` renders them, their NetworkPolicies in the
evaluator (networkpolicy_evaluator_without_cni.py), each namespace's labels, and the endpoints of
manifests/base/network/required-flows.yaml; the pods the manifests make in a namespace, and the
TrainJob nodes of each runtime pipelines/trainer.py renders, and the Ray pods KubeRay makes of the
RayJob pipelines/rayjob.py renders. tests/manifests/test_network_flows.py
and test_derived_flows.py evaluate flows on it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from pipelines.standard import IMAGE
from pipelines.trainer import RUNTIMES, cluster_training_runtime
from tests.conftest import REPO
from tests.manifests.networkpolicy_evaluator_without_cni import Address, Endpoint, Evaluator, Pod
from tests.rendered_manifests import render

MANIFESTS = REPO / "manifests"
FLOWS = yaml.safe_load((MANIFESTS / "base" / "network" / "required-flows.yaml").read_text())
TENANTS = sorted(p.parent.name for p in (MANIFESTS / "tenants").glob("*/namespace.yaml"))  # each rendered tenant
ROLE = "mlops.private-platform.io/role"
NAME = "kubernetes.io/metadata.name"
PIPELINE_POD = FLOWS["endpoints"]["pipeline-pod"]["labels"]
JOBSET = "jobset.sigs.k8s.io"


@dataclass(frozen=True)
class Cluster:
    """One overlay with every tenant, as rendered: the objects, the policies and each namespace's labels."""

    objects: list[dict[str, Any]]
    evaluator: Evaluator
    namespaces: dict[str, dict[str, str]]


@functools.cache  # read-only: the network tests of both files share one rendering per overlay
def cluster(overlay: str) -> Cluster:
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
    return Cluster(objects, Evaluator([o for o in objects if o["kind"] == "NetworkPolicy"]), namespaces)


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


def trainjob_nodes() -> dict[str, dict[str, str]]:
    """Each runtime's node pod labels, from the ClusterTrainingRuntime pipelines/trainer.py renders:
    JobSet labels every pod with its JobSet's and its replicated job's names."""
    nodes = {}
    for runtime in RUNTIMES:
        for job in cluster_training_runtime(runtime, IMAGE)["spec"]["template"]["spec"]["replicatedJobs"]:
            pod_labels = job["template"]["spec"]["template"].get("metadata", {}).get("labels", {})
            nodes[runtime] = {f"{JOBSET}/jobset-name": "any", f"{JOBSET}/replicatedjob-name": job["name"], **pod_labels}
    return nodes


def ray_pods() -> dict[str, dict[str, str]]:
    """The labels of the pods KubeRay makes of the RayJob pipelines/rayjob.py renders (a reference
    pipeline's materialize under engine ray): `ray head`, `ray worker`, `ray submitter`."""
    from pipelines.fraud import pipeline as fraud
    from pipelines.rayjob import launcher_template
    from tests.policies.kuberay_objects_without_a_cluster import kuberay_objects

    cfg = fraud.DECLARATION.config().with_overrides({"materialize.engine": "ray"})
    job = launcher_template(fraud.DECLARATION.spec, fraud.DECLARATION.spec.step("materialize"), cfg)
    job["metadata"]["namespace"] = cfg.cluster.namespace
    pods = [m.obj for m in kuberay_objects(job) if m.obj["kind"] == "Pod"]
    found = {}
    for pod in pods:
        labels = pod["metadata"]["labels"]
        found[f"ray {labels.get('ray.io/node-type', 'submitter')}"] = dict(labels)
    return found


DEFAULT_PORTS = {"http": 80, "https": 443}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def configmap_endpoints(data: dict[str, str]) -> list[tuple[str, str, int]]:
    """(key, host, port) of every endpoint a value names: a URL with a host, or host:port. An s3://
    URI names a bucket, not a host."""
    found = []
    for key, value in sorted(data.items()):
        if "://" in value:
            parts = urlsplit(value)
            if parts.scheme == "s3" or not parts.hostname:
                continue
            port = parts.port or DEFAULT_PORTS.get(parts.scheme)
            assert port is not None, f"{key}: {value} names no port and {parts.scheme} has no default"
            found.append((key, parts.hostname, port))
        elif re.fullmatch(r"[a-z0-9.-]+\.[a-z]+:\d+", value):
            host, port_text = value.rsplit(":", 1)
            found.append((key, host, int(port_text)))
    return found


def named(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"]["name"], obj["metadata"].get("namespace", "")


def pod_templates(objects: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The pod templates of the workloads rendered in `namespace` (a CronJob's through its Job)."""
    templates = []
    for obj in objects:
        if obj["metadata"].get("namespace") != namespace:
            continue
        if obj["kind"] in WORKLOADS:
            templates.append(obj["spec"]["template"])
        elif obj["kind"] == "CronJob":
            templates.append(obj["spec"]["jobTemplate"]["spec"]["template"])
    return templates


def rendered_pod_labels(platform: Cluster, namespace: str) -> list[dict[str, str]]:
    """The labels of every pod the manifests make in `namespace`: workloads, and CloudNativePG's instances."""
    labels = [template["metadata"].get("labels", {}) for template in pod_templates(platform.objects, namespace)]
    clusters = [o for o in platform.objects if o["kind"] == "Cluster" and named(o)[1] == namespace]
    return labels + [{"cnpg.io/cluster": named(cluster)[0]} for cluster in clusters]
