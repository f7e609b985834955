"""What KubeRay makes of a RayJob, built without a cluster (test-side stand-in, as
controller_objects_without_a_cluster.py is for KServe, Trainer and Katib).

KubeRay's operator turns a RayJob into a RayCluster (its `rayClusterSpec`) owned by the RayJob,
then the cluster's head Pod and one Pod per worker replica, each from its group's template with
KubeRay's labels added (`ray.io/cluster`, `ray.io/node-type`, `ray.io/group`, `ray.io/is-ray-node`:
pipelines/rayjob.py NODE_LABELS is the one the network policies select); in K8sJobMode, a
submitter Job from `submitterPodTemplate` and, by the job controller, its Pod. Only what admission
and the network policies read is modelled: pod specs, labels, owners, namespace, the user.
"""

from __future__ import annotations

import copy
from typing import Any

from pipelines.rayjob import NODE_LABELS
from tests.policies.controller_objects_without_a_cluster import JOB_CONTROLLER, Made, _object, _owner

__all__ = ["KUBERAY_CONTROLLER", "kuberay_objects", "node_labels"]

KUBERAY_CONTROLLER = "system:serviceaccount:ray-system:kuberay-operator"


def node_labels(cluster: str, node_type: str, group: str) -> dict[str, str]:
    """The labels KubeRay adds to a Ray node's pod (beside its template's)."""
    return {"ray.io/cluster": cluster, "ray.io/node-type": node_type, "ray.io/group": group, **NODE_LABELS,
            "app.kubernetes.io/name": "kuberay", "app.kubernetes.io/created-by": "kuberay-operator"}  # fmt: skip


def _pod(template: dict[str, Any], name: str, namespace: str, owner: dict[str, Any], labels: dict[str, str]) -> Made:
    pod = _object("v1", "Pod", name, namespace, ownerReferences=_owner(owner))
    pod["metadata"]["labels"] = {**template.get("metadata", {}).get("labels", {}), **labels}
    pod["spec"] = copy.deepcopy(template["spec"])
    return Made(pod, KUBERAY_CONTROLLER, "kuberay-operator")


def kuberay_objects(ray_job: dict[str, Any]) -> list[Made]:
    """The RayCluster KubeRay makes of `ray_job`, its head and worker Pods, the submitter Job and its Pod."""
    metadata = ray_job["metadata"]
    name, namespace = metadata.get("name") or metadata["generateName"] + "x1", metadata["namespace"]
    cluster_name = f"{name}-c8r2q"
    origin = {"ray.io/originated-from-crd": "RayJob", "ray.io/originated-from-cr-name": name}
    cluster = _object(
        "ray.io/v1", "RayCluster", cluster_name, namespace, ownerReferences=_owner(ray_job), labels=origin
    )
    cluster["spec"] = copy.deepcopy(ray_job["spec"]["rayClusterSpec"])
    made = [Made(cluster, KUBERAY_CONTROLLER, "kuberay-operator")]
    head = cluster["spec"]["headGroupSpec"]["template"]
    made.append(_pod(head, f"{cluster_name}-head", namespace, cluster, node_labels(cluster_name, "head", "headgroup")))
    for group in cluster["spec"].get("workerGroupSpecs", []):
        for index in range(int(group.get("replicas", 1))):
            labels = node_labels(cluster_name, "worker", group["groupName"])
            made.append(_pod(group["template"], f"{cluster_name}-{group['groupName']}-{index}", namespace, cluster,
                             labels))  # fmt: skip
    submitter = ray_job["spec"].get("submitterPodTemplate")
    if ray_job["spec"].get("submissionMode", "K8sJobMode") == "K8sJobMode" and submitter:
        job = _object("batch/v1", "Job", name, namespace, ownerReferences=_owner(ray_job))
        job["spec"] = {"backoffLimit": 0, "template": copy.deepcopy(submitter)}
        made.append(Made(job, KUBERAY_CONTROLLER, "kuberay-operator"))
        pod = _object("v1", "Pod", f"{name}-abcde", namespace, ownerReferences=_owner(job))
        pod["metadata"]["labels"] = {**submitter.get("metadata", {}).get("labels", {}), "job-name": name}
        pod["spec"] = copy.deepcopy(submitter["spec"])
        made.append(Made(pod, JOB_CONTROLLER, "job-controller"))
    return made
