"""What the cluster's controllers make of the platform's objects, built without a cluster.

A test-side stand-in: no KServe, Knative, Kubeflow Trainer, JobSet or Katib controller runs here,
so the objects they would create (and that Gatekeeper admits or refuses in their turn) are built
from what the platform renders, as those controllers build them, each with the identity the
controller's request carries (review.userInfo.username):

- KServe and Knative: an InferenceService's predictor and transformer become a Deployment (owned
  by a Knative Revision, or by the InferenceService in RawDeployment mode), its ReplicaSet and
  its Pods, labelled `serving.kserve.io/inferenceservice`. The predictor's container is the
  ClusterServingRuntime's `kserve-container` with the model spec merged over it; the storage
  initializer is the ClusterStorageContainer's container.
- Kubeflow Trainer and JobSet: a TrainJob becomes a JobSet in the TrainJob's namespace, from its
  runtime's template with the trainer's image, command, env and resourcesPerNode on the `node`
  container, then one Job per replicated job and its Pod.
- Katib: an Experiment becomes Trials whose runSpec is the trial template with the trial's
  parameters filled in, then the object that runSpec describes, then its Pod.

Only what admission reads is modelled (pod specs, labels, owners, namespace); tested on known
cases in test_controller_objects_without_a_cluster.py.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from components.steps import promote_identity
from mlops import admission_parameters

# the controllers the platform's policies already name: one spelling, the product's
KSERVE_CONTROLLER = promote_identity.KSERVE_CONTROLLER
ARGO_CONTROLLER = admission_parameters.ARGO_CONTROLLER

KNATIVE_CONTROLLER = "system:serviceaccount:knative-serving:controller"
DEPLOYMENT_CONTROLLER = "system:serviceaccount:kube-system:deployment-controller"
REPLICASET_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"
TRAINER_CONTROLLER = "system:serviceaccount:kubeflow-system:kubeflow-trainer-controller-manager"
JOBSET_CONTROLLER = "system:serviceaccount:kubeflow-system:jobset-controller-manager"
JOB_CONTROLLER = "system:serviceaccount:kube-system:job-controller"
KATIB_CONTROLLER = "system:serviceaccount:kubeflow:katib-controller"

INFERENCE_SERVICE_LABEL = "serving.kserve.io/inferenceservice"
POD_FIELDS = (
    "serviceAccountName", "securityContext", "nodeSelector", "tolerations", "priorityClassName",
    "affinity", "volumes", "imagePullSecrets", "initContainers", "hostNetwork", "hostPID", "hostIPC",
)  # fmt: skip
MODEL_FIELDS = ("resources", "securityContext", "ports", "readinessProbe", "livenessProbe", "env", "args", "command")


@dataclass(frozen=True)
class Made:
    """One object a controller creates, and the user its create request carries."""

    obj: dict[str, Any]
    user: str
    by: str  # which controller, for messages


def _owner(owner: dict[str, Any]) -> list[dict[str, Any]]:
    metadata = owner.get("metadata", {})
    name = metadata.get("name") or metadata.get("generateName", "") + "x1"
    return [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": name, "uid": f"uid-{name}",
             "controller": True, "blockOwnerDeletion": True}]  # fmt: skip


def _object(api_version: str, kind: str, name: str, namespace: str, **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace, **metadata}}


def _pod_chain(top: dict[str, Any], pod: dict[str, Any], labels: dict[str, str]) -> list[Made]:
    """A Deployment's ReplicaSet and Pod, as the built-in controllers create them."""
    namespace, name = top["metadata"]["namespace"], top["metadata"]["name"]
    replica_set = _object(
        "apps/v1", "ReplicaSet", f"{name}-5d4f8", namespace, labels=labels, ownerReferences=_owner(top)
    )
    replica_set["spec"] = {"replicas": 1, "template": {"metadata": {"labels": labels}, "spec": pod}}
    made_pod = _object(
        "v1", "Pod", f"{name}-5d4f8-x2x9k", namespace, labels=labels, ownerReferences=_owner(replica_set)
    )
    made_pod["spec"] = copy.deepcopy(pod)
    return [Made(replica_set, DEPLOYMENT_CONTROLLER, "deployment-controller"),
            Made(made_pod, REPLICASET_CONTROLLER, "replicaset-controller")]  # fmt: skip


def _predictor_containers(
    isvc: dict[str, Any], runtimes: list[dict[str, Any]], storage: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    predictor = isvc["spec"]["predictor"]
    model = predictor.get("model")
    if model is None:
        return list(predictor.get("containers", [])), list(predictor.get("initContainers", []))
    runtime = next(r for r in runtimes if r["metadata"]["name"] == model["runtime"])
    (base,) = [c for c in runtime["spec"]["containers"] if c["name"] == "kserve-container"]
    container = {**copy.deepcopy(base), **{k: copy.deepcopy(model[k]) for k in MODEL_FIELDS if k in model}}
    init = list(predictor.get("initContainers", []))
    if model.get("storageUri"):
        init.append(copy.deepcopy(storage["spec"]["container"]))
    return [container], init


def kserve_objects(isvc: dict[str, Any], runtimes: list[dict[str, Any]], storage: dict[str, Any]) -> list[Made]:
    """The Deployment, ReplicaSet and Pod of each component KServe deploys for `isvc`."""
    name, namespace = isvc["metadata"]["name"], isvc["metadata"]["namespace"]
    raw = isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode") == "RawDeployment"
    made: list[Made] = []
    for component in ("predictor", "transformer"):
        part = isvc["spec"].get(component)
        if part is None:
            continue
        if component == "predictor":
            containers, init = _predictor_containers(isvc, runtimes, storage)
        else:
            containers, init = list(part["containers"]), list(part.get("initContainers", []))
        pod = {k: copy.deepcopy(part[k]) for k in POD_FIELDS if k in part}
        pod["containers"] = copy.deepcopy(containers)
        if init:
            pod["initContainers"] = copy.deepcopy(init)
        labels = {INFERENCE_SERVICE_LABEL: name, "component": component}
        if raw:
            owner, user, by = isvc, KSERVE_CONTROLLER, "kserve-controller"
        else:
            owner = _object("serving.knative.dev/v1", "Revision", f"{name}-{component}-00001", namespace)
            user, by = KNATIVE_CONTROLLER, "knative-serving controller"
        deployment = _object("apps/v1", "Deployment", f"{name}-{component}", namespace, labels=labels,
                             ownerReferences=_owner(owner))  # fmt: skip
        deployment["spec"] = {"template": {"metadata": {"labels": labels}, "spec": pod}}
        made += [Made(deployment, user, by), *_pod_chain(deployment, pod, labels)]
    return made


def _job_and_pod(job_spec: dict[str, Any], name: str, namespace: str, owner: dict[str, Any], user: str) -> list[Made]:
    job = _object("batch/v1", "Job", name, namespace, ownerReferences=_owner(owner))
    job["spec"] = copy.deepcopy(job_spec)
    pod = _object("v1", "Pod", f"{name}-0-abcde", namespace, ownerReferences=_owner(job))
    pod["metadata"]["labels"] = dict(job_spec.get("template", {}).get("metadata", {}).get("labels", {}))
    pod["spec"] = copy.deepcopy(job_spec["template"]["spec"])
    by = "jobset-controller" if user == JOBSET_CONTROLLER else "katib-controller"
    return [Made(job, user, by), Made(pod, JOB_CONTROLLER, "job-controller")]


def trainer_objects(train_job: dict[str, Any], runtimes: list[dict[str, Any]]) -> list[Made]:
    """The JobSet Trainer makes of `train_job` and its runtime, then each Job and Pod."""
    metadata = train_job["metadata"]
    name, namespace = metadata.get("name") or metadata["generateName"] + "x1", metadata["namespace"]
    reference = train_job["spec"]["runtimeRef"]
    runtime = next(r for r in runtimes if r["kind"] == reference["kind"] and r["metadata"]["name"] == reference["name"])
    jobset = _object("jobset.x-k8s.io/v1alpha2", "JobSet", name, namespace, ownerReferences=_owner(train_job))
    jobset["spec"] = copy.deepcopy(runtime["spec"]["template"]["spec"])
    trainer = train_job["spec"].get("trainer", {})
    for replicated in jobset["spec"]["replicatedJobs"]:
        for container in replicated["template"]["spec"]["template"]["spec"]["containers"]:
            if container["name"] != "node":
                continue
            container.update({k: copy.deepcopy(trainer[k]) for k in ("image", "command", "args") if k in trainer})
            container["env"] = [*container.get("env", []), *copy.deepcopy(trainer.get("env", []))]
            if "resourcesPerNode" in trainer:
                container["resources"] = copy.deepcopy(trainer["resourcesPerNode"])
    made = [Made(jobset, TRAINER_CONTROLLER, "trainer-controller")]
    for replicated in jobset["spec"]["replicatedJobs"]:
        made += _job_and_pod(replicated["template"]["spec"], f"{name}-{replicated['name']}-0", namespace, jobset,
                             JOBSET_CONTROLLER)  # fmt: skip
    return made


def katib_objects(experiment: dict[str, Any]) -> list[Made]:
    """One Trial of `experiment`, each trial parameter at its search space's lower bound, then
    the object its runSpec describes and that object's Pod (a Job's; other kinds are returned
    as the Trial's run object only)."""
    name, namespace = experiment["metadata"]["name"], experiment["metadata"]["namespace"]
    template = experiment["spec"]["trialTemplate"]
    space = {p["name"]: p["feasibleSpace"] for p in experiment["spec"].get("parameters", [])}
    values = {t["name"]: str(space[t["reference"]].get("min", "0")) for t in template.get("trialParameters", [])}
    text = json.dumps(template["trialSpec"])
    filled = re.sub(r"\$\{trialParameters\.([A-Za-z0-9_]+)\}", lambda m: values[m.group(1)], text)
    run_spec = json.loads(filled)
    trial_name = f"{name}-abc123"
    run_spec["metadata"] = {**run_spec.get("metadata", {}), "name": trial_name, "namespace": namespace}
    trial = _object("kubeflow.org/v1beta1", "Trial", trial_name, namespace, ownerReferences=_owner(experiment))
    trial["spec"] = {"runSpec": run_spec, "primaryContainerName": template.get("primaryContainerName"),
                     "metricsCollector": copy.deepcopy(experiment["spec"].get("metricsCollectorSpec", {}))}  # fmt: skip
    made = [Made(trial, KATIB_CONTROLLER, "katib-controller")]
    run = {**copy.deepcopy(run_spec), "metadata": {**run_spec["metadata"], "ownerReferences": _owner(trial)}}
    if run["kind"] == "Job":
        made += _job_and_pod(run["spec"], trial_name, namespace, trial, KATIB_CONTROLLER)
    else:
        made.append(Made(run, KATIB_CONTROLLER, "katib-controller"))
    return made
