"""The controller stand-ins on known cases: what KServe/Knative, Trainer/JobSet and Katib make."""

from __future__ import annotations

from typing import Any

from tests.policies import controller_objects_without_a_cluster as controllers

RUNTIME = {
    "apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterServingRuntime", "metadata": {"name": "triton"},
    "spec": {"containers": [{"name": "kserve-container", "image": "registry/triton:1", "args": ["serve"],
                             "resources": {"limits": {"memory": "1Gi"}}}]},
}  # fmt: skip
STORAGE = {"spec": {"container": {"name": "storage-initializer", "image": "registry/init:1"}}}


def _service(mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "m", "namespace": "t", "annotations": {"serving.kserve.io/deploymentMode": mode}},
        "spec": {
            "predictor": {
                "priorityClassName": "p",
                "tolerations": [{"key": "g", "operator": "Exists"}],
                "model": {"runtime": "triton", "storageUri": "s3://b/m", "resources": {"limits": {"memory": "4Gi"}}},
            },
            "transformer": {"containers": [{"name": "t", "image": "registry/t:1"}]},
        },
    }


def test_kserve_makes_a_deployment_replicaset_and_pod_per_component_labelled_and_owned() -> None:
    made = controllers.kserve_objects(_service("Serverless"), [RUNTIME], STORAGE)
    assert [(m.obj["kind"], m.obj["metadata"]["labels"]["component"], m.by) for m in made] == [
        ("Deployment", "predictor", "knative-serving controller"),
        ("ReplicaSet", "predictor", "deployment-controller"),
        ("Pod", "predictor", "replicaset-controller"),
        ("Deployment", "transformer", "knative-serving controller"),
        ("ReplicaSet", "transformer", "deployment-controller"),
        ("Pod", "transformer", "replicaset-controller"),
    ]
    deployment, replica_set, pod = (m.obj for m in made[:3])
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "Revision"
    assert replica_set["metadata"]["ownerReferences"][0]["name"] == deployment["metadata"]["name"]
    assert pod["metadata"]["ownerReferences"][0]["name"] == replica_set["metadata"]["name"]
    assert pod["metadata"]["labels"][controllers.INFERENCE_SERVICE_LABEL] == "m"
    (container,) = pod["spec"]["containers"]  # the runtime's container, the model's resources over it
    assert container == {"name": "kserve-container", "image": "registry/triton:1", "args": ["serve"],
                         "resources": {"limits": {"memory": "4Gi"}}}  # fmt: skip
    assert pod["spec"]["initContainers"] == [STORAGE["spec"]["container"]]
    assert pod["spec"]["priorityClassName"] == "p" and pod["spec"]["tolerations"][0]["key"] == "g"
    raw = controllers.kserve_objects(_service("RawDeployment"), [RUNTIME], STORAGE)[0]
    assert raw.user == controllers.KSERVE_CONTROLLER and raw.obj["metadata"]["ownerReferences"][0]["kind"] == (
        "InferenceService"
    )


def test_trainer_makes_a_jobset_in_the_trainjobs_namespace_with_the_trainer_on_the_node_container() -> None:
    runtime = {
        "kind": "ClusterTrainingRuntime", "metadata": {"name": "r"},
        "spec": {"template": {"spec": {"replicatedJobs": [{"name": "node", "template": {"spec": {"template": {
            "spec": {"tolerations": [{"key": "g"}], "containers": [{"name": "node", "image": "base", "env": [
                {"name": "A", "value": "1"}]}]}}}}}]}}},
    }  # fmt: skip
    job = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
        "metadata": {"generateName": "w-train-", "namespace": "t"},
        "spec": {"runtimeRef": {"kind": "ClusterTrainingRuntime", "name": "r"},
                 "trainer": {"image": "img", "command": ["run"], "env": [{"name": "B", "value": "2"}],
                             "resourcesPerNode": {"limits": {"nvidia.com/gpu": "1"}}}},
    }  # fmt: skip
    jobset, batch, pod = (m.obj for m in controllers.trainer_objects(job, [runtime]))
    assert (jobset["kind"], jobset["metadata"]["namespace"], batch["kind"], pod["kind"]) == (
        "JobSet",
        "t",
        "Job",
        "Pod",
    )
    node = pod["spec"]["containers"][0]
    assert node == {"name": "node", "image": "img", "command": ["run"], "env": [{"name": "A", "value": "1"},
                    {"name": "B", "value": "2"}], "resources": {"limits": {"nvidia.com/gpu": "1"}}}  # fmt: skip
    assert (
        pod["spec"]["tolerations"] == [{"key": "g"}]
        and runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
        == "base"
    )  # the runtime itself is not changed


def test_katib_fills_in_the_trial_parameters_and_makes_the_run_object() -> None:
    experiment = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "e", "namespace": "t"},
        "spec": {
            "parameters": [{"name": "lr", "feasibleSpace": {"min": "0.1", "max": "0.3"}}],
            "trialTemplate": {"trialParameters": [{"name": "rate", "reference": "lr"}], "trialSpec": {
                "apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"containers": [
                    {"name": "trial", "command": ["x", "--lr=${trialParameters.rate}"]}]}}}}},
        },
    }  # fmt: skip
    trial, job, pod = controllers.katib_objects(experiment)
    assert trial.obj["spec"]["runSpec"]["metadata"]["namespace"] == "t"
    assert pod.obj["spec"]["containers"][0]["command"] == ["x", "--lr=0.1"]
    assert (job.user, pod.user) == (controllers.KATIB_CONTROLLER, controllers.JOB_CONTROLLER)
