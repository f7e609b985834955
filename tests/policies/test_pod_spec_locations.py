"""Every place a pod spec or a container can hide, against every workload policy (real OPA engine).

Each location gets a positive control (an allowed container or pod there is admitted, so the
test would notice a policy that denies everything) and an attack (the forbidden one there is
denied). Before lib.workloads, each policy had its own partial list: initContainers,
ephemeralContainers, Argo sidecars, containerSet and podSpecPatch, CronWorkflows and KServe's
framework specs were admitted with outside images, literal credentials or host access.

issue 28: neither pod-security nor restricted-scheduling covered Kubeflow Trainer (TrainJob, its
runtime patches and the runtimes, the JobSet it makes) or Katib (an Experiment's trial template,
a Trial's runSpec, the custom metrics collector): each is a location here now.

issue 33: nor KubeRay (a RayJob's head, worker groups and submitter template, a RayCluster's groups).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from mlops import admission
from tests.policies.policy_files import policy

INTERNAL = "registry.mlops.internal/private-mlops/components:1"
OUTSIDE = "docker.io/attacker/miner:latest"


def _pod_spec(field: str, container: dict[str, Any]) -> dict[str, Any]:
    return {"containers": [{"name": "main", "image": INTERNAL}], field: [{"name": "x", **container}]}


def _workflow(kind: str, template: dict[str, Any], **spec: Any) -> dict[str, Any]:
    body = {"entrypoint": "main", "templates": [{"name": "main", **template}], **spec}
    if kind == "CronWorkflow":
        body = {"schedule": "0 2 * * *", "workflowSpec": body}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "w", "namespace": "fraud"},
        "spec": body,
    }


def _service(component: str, part: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "s", "namespace": "fraud", "labels": {"mlops.private-platform.io/stage": "staging"}},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "triton"}}}, component: part}
        if component != "predictor"
        else {"predictor": part},
    }


def _canary(part: dict[str, Any]) -> dict[str, Any]:
    """A Standard-mode canary (components/steps/promote_canary.py): the champion's predictor as rendered,
    and `part` as the canary predictor of a spec.canary entry (KServe 0.20)."""
    service = _service("predictor", {"name": "v1", "model": {"name": "kserve-container", "image": INTERNAL}})
    service["spec"]["canary"] = [{"predictor": {"name": "v2", **part}, "trafficPercent": 10}]
    return service


def _workers(part: dict[str, Any], *, canary: bool = False) -> dict[str, Any]:
    """A predictor (the stable one, or a canary's) whose workerSpec (multi-node serving) is `part`."""
    predictor = {"model": {"modelFormat": {"name": "huggingface"}}, "workerSpec": part}
    return _canary(predictor) if canary else _service("predictor", predictor)


def _workload(kind: str, pod: dict[str, Any]) -> dict[str, Any]:
    groups = {"Pod": "v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1"}
    spec: dict[str, Any] = pod
    if kind in ("Deployment", "StatefulSet", "Job"):
        spec = {"template": {"spec": pod}}
    elif kind == "CronJob":
        spec = {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": {"spec": pod}}}}
    return {"apiVersion": groups[kind], "kind": kind, "metadata": {"name": "p", "namespace": "fraud"}, "spec": spec}


def _replicated(pod: dict[str, Any]) -> dict[str, Any]:
    """A JobSet spec of one replicated job running `pod` (Trainer's runtimes and patches carry one)."""
    return {"replicatedJobs": [{"name": "node", "template": {"spec": {"template": {"spec": pod}}}}]}


def _trainer(kind: str, pod: dict[str, Any]) -> dict[str, Any]:
    metadata = {"name": "t"} if kind.startswith("Cluster") else {"name": "t", "namespace": "fraud"}
    if kind == "JobSet":
        return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": kind, "metadata": metadata, "spec": _replicated(pod)}
    spec: dict[str, Any] = {"template": {"spec": _replicated(pod)}}
    if kind == "TrainJob":
        patch = {"manager": "mlops", "trainingRuntimeSpec": spec}
        spec = {"runtimeRef": {"name": "torch-distributed"}, "runtimePatches": [patch]}
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}


def _overrides(override: dict[str, Any]) -> dict[str, Any]:
    """A TrainJob of an earlier Trainer release, overriding its runtime's pods in podSpecOverrides."""
    job = _trainer("TrainJob", {})
    job["spec"] = {"runtimeRef": {"name": "torch-distributed"}, "podSpecOverrides": [override]}
    return job


def _katib(kind: str, run: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """An Experiment whose trial template is `run`, or a Trial whose runSpec is `run`."""
    body = {"trialTemplate": {"trialSpec": run}} if kind == "Experiment" else {"runSpec": run}
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": kind,
        "metadata": {"name": "k", "namespace": "fraud"},
        "spec": {**body, **spec},
    }


def _job(pod: dict[str, Any]) -> dict[str, Any]:
    job = _workload("Job", pod)
    del job["metadata"]
    return job


def _collector(container: dict[str, Any]) -> dict[str, Any]:
    collector = {"collector": {"kind": "Custom", "customCollector": {"name": "collector", **container}}}
    return _katib(
        "Experiment", _job({"containers": [{"name": "x", "image": INTERNAL}]}), metricsCollectorSpec=collector
    )


def _ray(kind: str, where: str, pod: dict[str, Any]) -> dict[str, Any]:
    """A RayJob (or RayCluster) running `pod` at `where`: the head, a worker group, or (a RayJob's)
    submitter; its other pods the internal image (pipelines/rayjob.py renders all three)."""
    plain = {"containers": [{"name": "x", "image": INTERNAL}]}
    worker = {"groupName": "w", "template": {"spec": pod if where == "worker" else plain}}
    cluster = {"headGroupSpec": {"template": {"spec": pod if where == "head" else plain}}, "workerGroupSpecs": [worker]}
    if kind == "RayCluster":
        spec: dict[str, Any] = cluster
    else:
        submitter = {"spec": pod if where == "submitter" else plain}
        spec = {"entrypoint": "python -m x", "rayClusterSpec": cluster, "submitterPodTemplate": submitter}
    return {"apiVersion": "ray.io/v1", "kind": kind, "metadata": {"name": "r", "namespace": "fraud"}, "spec": spec}


Place = Callable[[dict[str, Any]], dict[str, Any]]

CONTAINER_LOCATIONS: dict[str, Place] = {
    "Pod containers": lambda c: _workload("Pod", {"containers": [{"name": "x", **c}]}),
    "Pod initContainers": lambda c: _workload("Pod", _pod_spec("initContainers", c)),
    "Pod ephemeralContainers": lambda c: _workload("Pod", _pod_spec("ephemeralContainers", c)),
    "Deployment initContainers": lambda c: _workload("Deployment", _pod_spec("initContainers", c)),
    "StatefulSet containers": lambda c: _workload("StatefulSet", {"containers": [{"name": "x", **c}]}),
    "Job initContainers": lambda c: _workload("Job", _pod_spec("initContainers", c)),
    "CronJob containers": lambda c: _workload("CronJob", {"containers": [{"name": "x", **c}]}),
    "Workflow container": lambda c: _workflow("Workflow", {"container": c}),
    "Workflow script": lambda c: _workflow("Workflow", {"script": {"source": "print(1)", **c}}),
    "Workflow initContainers": lambda c: _workflow(
        "Workflow", {"container": {"image": INTERNAL}, "initContainers": [{"name": "x", **c}]}
    ),
    "Workflow sidecars": lambda c: _workflow(
        "Workflow", {"container": {"image": INTERNAL}, "sidecars": [{"name": "x", **c}]}
    ),
    "Workflow containerSet": lambda c: _workflow("Workflow", {"containerSet": {"containers": [{"name": "x", **c}]}}),
    "Workflow template podSpecPatch": lambda c: _workflow(
        "Workflow",
        {"container": {"image": INTERNAL}, "podSpecPatch": json.dumps({"containers": [{"name": "main", **c}]})},
    ),
    "Workflow spec podSpecPatch (YAML)": lambda c: _workflow(
        "Workflow",
        {"container": {"image": INTERNAL}},
        podSpecPatch="initContainers:\n  - name: x\n" + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in c.items()),
    ),
    "Workflow templateDefaults": lambda c: _workflow(
        "Workflow", {"container": {"image": INTERNAL}}, templateDefaults={"container": c}
    ),
    "WorkflowTemplate container": lambda c: _workflow("WorkflowTemplate", {"container": c}),
    "ClusterWorkflowTemplate container": lambda c: _workflow("ClusterWorkflowTemplate", {"container": c}),
    "CronWorkflow container": lambda c: _workflow("CronWorkflow", {"container": c}),
    "CronWorkflow sidecars": lambda c: _workflow(
        "CronWorkflow", {"container": {"image": INTERNAL}, "sidecars": [{"name": "x", **c}]}
    ),
    "InferenceService predictor containers": lambda c: _service("predictor", {"containers": [{"name": "x", **c}]}),
    "InferenceService predictor.triton": lambda c: _service("predictor", {"triton": {"storageUri": "s3://m/1", **c}}),
    "InferenceService predictor initContainers": lambda c: _service(
        "predictor", {"model": {"modelFormat": {"name": "triton"}}, "initContainers": [{"name": "x", **c}]}
    ),
    "InferenceService transformer containers": lambda c: _service("transformer", {"containers": [{"name": "x", **c}]}),
    "InferenceService explainer containers": lambda c: _service("explainer", {"containers": [{"name": "x", **c}]}),
    "InferenceService predictor workerSpec containers": lambda c: _workers({"containers": [{"name": "w", **c}]}),
    "InferenceService canary predictor containers": lambda c: _canary({"containers": [{"name": "x", **c}]}),
    "InferenceService canary predictor.model": lambda c: _canary({"model": {"storageUri": "s3://m/2", **c}}),
    "InferenceService canary predictor.sklearn": lambda c: _canary({"sklearn": {"storageUri": "s3://m/2", **c}}),
    "InferenceService canary predictor initContainers": lambda c: _canary(
        {"model": {"modelFormat": {"name": "triton"}}, "initContainers": [{"name": "x", **c}]}
    ),
    "InferenceService canary predictor workerSpec containers": lambda c: _workers(
        {"containers": [{"name": "w", **c}]}, canary=True
    ),
    "TrainJob runtimePatches containers": lambda c: _trainer("TrainJob", {"containers": [{"name": "node", **c}]}),
    "TrainJob runtimePatches initContainers": lambda c: _trainer("TrainJob", _pod_spec("initContainers", c)),
    "TrainJob podSpecOverrides containers": lambda c: _overrides({"containers": [{"name": "node", **c}]}),
    "TrainingRuntime containers": lambda c: _trainer("TrainingRuntime", {"containers": [{"name": "node", **c}]}),
    "ClusterTrainingRuntime initContainers": lambda c: _trainer(
        "ClusterTrainingRuntime", _pod_spec("initContainers", c)
    ),
    "JobSet containers": lambda c: _trainer("JobSet", {"containers": [{"name": "x", **c}]}),
    "Experiment trialSpec Job containers": lambda c: _katib("Experiment", _job({"containers": [{"name": "x", **c}]})),
    "Experiment trialSpec TrainJob": lambda c: _katib(
        "Experiment", _trainer("TrainJob", {"containers": [{"name": "n", **c}]})
    ),
    "Experiment trialSpec Workflow container": lambda c: _katib("Experiment", _workflow("Workflow", {"container": c})),
    "Experiment custom metrics collector": _collector,
    "Trial runSpec Job initContainers": lambda c: _katib("Trial", _job(_pod_spec("initContainers", c))),
    "RayJob head containers": lambda c: _ray("RayJob", "head", {"containers": [{"name": "x", **c}]}),
    "RayJob worker initContainers": lambda c: _ray("RayJob", "worker", _pod_spec("initContainers", c)),
    "RayJob submitter containers": lambda c: _ray("RayJob", "submitter", {"containers": [{"name": "x", **c}]}),
    "RayCluster worker containers": lambda c: _ray("RayCluster", "worker", {"containers": [{"name": "x", **c}]}),
}

POD_LOCATIONS: dict[str, Place] = {
    "Pod": lambda p: _workload("Pod", {"containers": [{"name": "x", "image": INTERNAL}], **p}),
    "Deployment": lambda p: _workload("Deployment", {"containers": [{"name": "x", "image": INTERNAL}], **p}),
    "CronJob": lambda p: _workload("CronJob", {"containers": [{"name": "x", "image": INTERNAL}], **p}),
    "Workflow spec": lambda p: _workflow("Workflow", {"container": {"image": INTERNAL}}, **p),
    "Workflow podSpecPatch": lambda p: _workflow(
        "Workflow", {"container": {"image": INTERNAL}, "podSpecPatch": json.dumps(p)}
    ),
    "CronWorkflow spec": lambda p: _workflow("CronWorkflow", {"container": {"image": INTERNAL}}, **p),
    "InferenceService predictor": lambda p: _service("predictor", {"model": {"modelFormat": {"name": "triton"}}, **p}),
    "InferenceService transformer": lambda p: _service(
        "transformer", {"containers": [{"name": "x", "image": INTERNAL}], **p}
    ),
    "InferenceService predictor workerSpec": lambda p: _workers(
        {"containers": [{"name": "w", "image": INTERNAL}], **p}
    ),
    "InferenceService canary predictor": lambda p: _canary({"model": {"modelFormat": {"name": "triton"}}, **p}),
    "InferenceService canary predictor workerSpec": lambda p: _workers(
        {"containers": [{"name": "w", "image": INTERNAL}], **p}, canary=True
    ),
    "TrainJob runtimePatches": lambda p: _trainer("TrainJob", {"containers": [{"name": "node"}], **p}),
    "TrainJob podSpecOverrides": lambda p: _overrides({"targetJobs": [{"name": "node"}], **p}),
    "TrainingRuntime": lambda p: _trainer(
        "TrainingRuntime", {"containers": [{"name": "node", "image": INTERNAL}], **p}
    ),
    "JobSet": lambda p: _trainer("JobSet", {"containers": [{"name": "x", "image": INTERNAL}], **p}),
    "Experiment trialSpec Job": lambda p: _katib(
        "Experiment", _job({"containers": [{"name": "x", "image": INTERNAL}], **p})
    ),
    "Experiment trialSpec Workflow": lambda p: _katib(
        "Experiment", _workflow("Workflow", {"container": {"image": INTERNAL}}, **p)
    ),
    "Trial runSpec Job": lambda p: _katib("Trial", _job({"containers": [{"name": "x", "image": INTERNAL}], **p})),
    "RayJob head": lambda p: _ray("RayJob", "head", {"containers": [{"name": "x", "image": INTERNAL}], **p}),
    "RayJob worker": lambda p: _ray("RayJob", "worker", {"containers": [{"name": "x", "image": INTERNAL}], **p}),
    "RayJob submitter": lambda p: _ray("RayJob", "submitter", {"containers": [{"name": "x", "image": INTERNAL}], **p}),
    "RayCluster head": lambda p: _ray("RayCluster", "head", {"containers": [{"name": "x", "image": INTERNAL}], **p}),
}


def _admitted(rule: admission.Policy, obj: dict[str, Any]) -> list[str]:
    assert rule.matches(obj), f"{rule.name} does not match {obj['kind']}"
    return rule.violations(obj)


@pytest.mark.parametrize("location", list(CONTAINER_LOCATIONS))
def test_images_from_outside_are_denied_in_every_location(location: str) -> None:
    registries = policy("allowed-registries.yaml")
    place = CONTAINER_LOCATIONS[location]
    assert _admitted(registries, place({"image": INTERNAL})) == []
    denied = _admitted(registries, place({"image": OUTSIDE}))
    assert denied and OUTSIDE in denied[0], (location, denied)


@pytest.mark.parametrize("location", list(CONTAINER_LOCATIONS))
def test_literal_credentials_and_dsns_are_denied_in_every_location(location: str) -> None:
    credentials = policy("no-literal-credentials.yaml")
    place = CONTAINER_LOCATIONS[location]
    from_secret = {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
    assert _admitted(credentials, place({"image": INTERNAL, "env": [from_secret]})) == []
    literal = _admitted(credentials, place({"image": INTERNAL, "env": [{"name": "DB_PASSWORD", "value": "hunter2"}]}))
    assert any("DB_PASSWORD as a literal value" in m for m in literal), (location, literal)
    dsn = {"name": "FEATURE_STORE", "value": "postgresql://feast:hunter2@pgbouncer:5432/feast"}
    assert any("URL with a password" in m for m in _admitted(credentials, place({"image": INTERNAL, "env": [dsn]})))
    no_password = {"name": "FEATURE_STORE", "value": "postgresql://feast@pgbouncer:5432/feast"}
    assert _admitted(credentials, place({"image": INTERNAL, "env": [no_password]})) == []


@pytest.mark.parametrize("location", list(CONTAINER_LOCATIONS))
def test_privileged_and_escalating_containers_are_denied_in_every_location(location: str) -> None:
    security = policy("pod-security.yaml")
    place = CONTAINER_LOCATIONS[location]
    hardened = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}
    assert _admitted(security, place({"image": INTERNAL, "securityContext": hardened})) == []
    assert any(
        "runs privileged" in m
        for m in _admitted(security, place({"image": INTERNAL, "securityContext": {"privileged": True}}))
    )
    adds = _admitted(security, place({"image": INTERNAL, "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}))
    assert any("adds capability SYS_ADMIN" in m for m in adds), adds


@pytest.mark.parametrize("location", list(CONTAINER_LOCATIONS))
@pytest.mark.parametrize("accelerator", ["nvidia.com/gpu", "nvidia.com/mig-1g.10gb"])
def test_gpus_and_mig_slices_without_a_memory_limit_are_denied_in_every_location(
    location: str, accelerator: str
) -> None:
    gpu = policy("gpu-memory-limit.yaml")
    place = CONTAINER_LOCATIONS[location]
    bounded = {"image": INTERNAL, "resources": {"limits": {accelerator: "1", "memory": "16Gi"}}}
    assert _admitted(gpu, place(bounded)) == []
    unbounded = {"image": INTERNAL, "resources": {"limits": {accelerator: "1"}}}
    assert any(f"requests {accelerator}" in m for m in _admitted(gpu, place(unbounded)))


@pytest.mark.parametrize("location", list(POD_LOCATIONS))
def test_host_namespaces_and_host_paths_are_denied_in_every_pod_location(location: str) -> None:
    security = policy("pod-security.yaml")
    place = POD_LOCATIONS[location]
    assert _admitted(security, place({"volumes": [{"name": "scratch", "emptyDir": {}}]})) == []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert any(f"sets {field}" in m for m in _admitted(security, place({field: True}))), (location, field)
    host = _admitted(security, place({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}))
    assert any('mounts hostPath "/"' in m for m in host), (location, host)


@pytest.mark.parametrize("location", list(POD_LOCATIONS))
def test_restricted_priority_and_gpu_tolerations_only_where_allowed(location: str) -> None:
    scheduling = policy("restricted-scheduling.yaml")
    place = POD_LOCATIONS[location]
    serving = location.startswith("InferenceService")
    priority = _admitted(scheduling, place({"priorityClassName": "production-inference"}))
    assert (priority == []) == serving, (location, priority)  # a production service, never a pipeline pod
    assert _admitted(scheduling, place({"priorityClassName": "default-batch"})) == []
    gpu_key = "kserve-gpu" if serving else "nvidia.com/gpu"
    own = {"tolerations": [{"key": gpu_key, "operator": "Exists", "effect": "NoSchedule"}]}
    if location == "Deployment":  # a long-running GPU holder must be an InferenceService
        assert any(f"may not tolerate {gpu_key}" in m for m in _admitted(scheduling, place(own)))
        return
    assert _admitted(scheduling, place(own)) == []
    elsewhere = place(own)
    elsewhere["metadata"]["namespace"] = "sandbox"
    assert any(f"may not tolerate {gpu_key}" in m for m in _admitted(scheduling, elsewhere))
    everything = _admitted(scheduling, place({"tolerations": [{"operator": "Exists"}]}))
    wrong_key = "nvidia.com/gpu" if serving else "kserve-gpu"
    assert any(f"may not tolerate {wrong_key}" in m for m in everything), (location, everything)


def _without(rule: admission.Policy, marker: str) -> admission.Policy:
    """`rule` with the lib.workloads it carries less the one rule whose text holds `marker`."""
    (library,) = rule.template["spec"]["targets"][0]["libs"]
    paragraphs = library.split("\n\n")
    kept = [p for p in paragraphs if marker not in p]
    assert len(kept) == len(paragraphs) - 1, marker
    template = copy.deepcopy(rule.template)
    template["spec"]["targets"][0]["libs"] = ["\n\n".join(kept)]
    return admission.Policy(template=template, constraint=rule.constraint)


# The rule of lib.workloads that finds each kind of location issue 32 added, and the word in its names.
ADDED = {'object.get(o.spec, "canary"': "canary", "c.spec.workerSpec": "workerSpec"}


@pytest.mark.parametrize("marker", list(ADDED))
@pytest.mark.parametrize("file", ["allowed-registries.yaml", "gpu-memory-limit.yaml", "pod-security.yaml"])
def test_the_locations_table_fails_without_the_rule_that_finds_them(marker: str, file: str) -> None:
    """Negative control: before issue 32 a spec.canary predictor (and a predictor's workerSpec) was no
    location, and the attacks above were admitted; with the rule taken out of the lib they are again."""
    attacks: dict[str, dict[str, Any]] = {
        "allowed-registries.yaml": {"image": OUTSIDE},
        "gpu-memory-limit.yaml": {"image": INTERNAL, "resources": {"limits": {"nvidia.com/gpu": "1"}}},
        "pod-security.yaml": {"image": INTERNAL, "securityContext": {"privileged": True}},
    }
    attack = attacks[file]
    rule, older = policy(file), _without(policy(file), marker)
    places = [place(attack) for name, place in CONTAINER_LOCATIONS.items() if ADDED[marker] in name]
    if file == "pod-security.yaml":
        places += [place({"hostNetwork": True}) for name, place in POD_LOCATIONS.items() if ADDED[marker] in name]
    assert len(places) >= 2
    for obj in places:
        assert _admitted(rule, obj), obj
        assert _admitted(older, obj) == [], obj


# The rules of lib.workloads that find KubeRay's locations (issue 33), and the locations each finds.
RAY_RULES = {
    '["spec", "rayClusterSpec"]': ("RayJob head", "RayJob worker"),
    "o.spec.submitterPodTemplate.spec": ("RayJob submitter",),
    "ray_groups(o.spec)": ("RayCluster",),
}


@pytest.mark.parametrize("marker", list(RAY_RULES))
def test_without_the_kuberay_rules_a_rayjob_hides_its_pods(marker: str) -> None:
    """Negative control: without the rule, a privileged container or an outside image in the pods
    a RayJob or RayCluster makes is admitted (no policy looked inside them before issue 33)."""
    privileged = {"image": INTERNAL, "securityContext": {"privileged": True}}
    for file, attack in (("allowed-registries.yaml", {"image": OUTSIDE}), ("pod-security.yaml", privileged)):
        rule, older = policy(file), _without(policy(file), marker)
        places = [place(attack) for name, place in CONTAINER_LOCATIONS.items() if name.startswith(RAY_RULES[marker])]
        assert places, marker
        for obj in places:
            assert _admitted(rule, obj), (file, obj)
            assert _admitted(older, obj) == [], (file, obj)
