"""Who may use the production PriorityClass and the GPU taints, judged by what makes the pod.

issue 28: restricted-scheduling allowed the production PriorityClass and the kserve-gpu taint only
on kind InferenceService, so it refused the Deployments, ReplicaSets and Pods KServe and Knative
create for a GPU predictor, and it covered neither Trainer's nor Katib's kinds. Now a pod is
judged as what makes it: KServe's own pods (labelled with their InferenceService, owned by what
makes them, created by that controller) as their InferenceService; a TrainJob, its runtimes and
JobSet as the Jobs they make; a Katib trial template as the object Katib makes of it. Each case:
the platform's rendered object admitted first, then the forbidden path, then the evidence broken.
Real OPA engine; the Constraint is the one rendered from the tenant declaration.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from mlops import admission
from tests.conftest import REPO
from tests.policies import controller_objects_without_a_cluster as controllers
from tests.policies.controller_objects_without_a_cluster import INFERENCE_SERVICE_LABEL, Made
from tests.policies.platform_objects import experiments, inference_services, train_jobs
from tests.policies.policy_files import policy

BASE = REPO / "manifests" / "base"
PRIORITY = "may not use PriorityClass production-inference"


@pytest.fixture(scope="module")
def scheduling() -> Iterator[admission.Policy]:
    yield policy("restricted-scheduling.yaml")


def _documents(path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((BASE / path).read_text()) if d]


def _made_for_production_service() -> list[Made]:
    service = next(s.obj for s in inference_services() if s.source.endswith("(production)"))
    assert service["spec"]["predictor"]["priorityClassName"] == "production-inference"
    (storage,) = _documents("serving/storage-container.yaml")
    return controllers.kserve_objects(service, _documents("serving/triton-runtime.yaml"), storage)


def _denied(rule: admission.Policy, obj: dict[str, Any], user: str | None) -> list[str]:
    assert rule.matches(obj), obj["kind"]
    return rule.violations(obj, user=user)


def test_kserves_gpu_predictor_pods_are_admitted_as_their_inference_service(scheduling: admission.Policy) -> None:
    """issue 28: the Deployment, ReplicaSet and Pod of the production GPU predictor pass, as
    created by Knative, the Deployment controller and the ReplicaSet controller, and in audit."""
    made = _made_for_production_service()
    predictor = [m for m in made if m.obj["metadata"]["labels"]["component"] == "predictor"]
    assert [m.obj["kind"] for m in predictor] == ["Deployment", "ReplicaSet", "Pod"]
    for item in predictor:
        pod = item.obj["spec"] if item.obj["kind"] == "Pod" else item.obj["spec"]["template"]["spec"]
        assert pod["priorityClassName"] == "production-inference" and pod["tolerations"][0]["key"] == "kserve-gpu"
        assert _denied(scheduling, item.obj, item.user) == [], item.by
        assert _denied(scheduling, item.obj, None) == [], item.by  # Gatekeeper's audit: no request


@pytest.mark.parametrize(
    ("case", "edit", "user"),
    [
        ("created by Argo's controller", lambda o: None, controllers.ARGO_CONTROLLER),
        ("created by a team member", lambda o: None, "fraud-member"),
        ("owned by a Workflow", lambda o: o["metadata"]["ownerReferences"][0].update(
            apiVersion="argoproj.io/v1alpha1", kind="Workflow"), controllers.REPLICASET_CONTROLLER),
        ("without the InferenceService label", lambda o: o["metadata"]["labels"].pop(INFERENCE_SERVICE_LABEL),
         controllers.REPLICASET_CONTROLLER),
        ("not controlled by its owner", lambda o: o["metadata"]["ownerReferences"][0].update(controller=False),
         controllers.REPLICASET_CONTROLLER),
        ("in a namespace the Constraint does not name", lambda o: o["metadata"].update(namespace="sandbox"),
         controllers.REPLICASET_CONTROLLER),
    ],
)  # fmt: skip
def test_a_pod_that_only_claims_to_be_kserves_is_refused(
    scheduling: admission.Policy, case: str, edit: Any, user: str
) -> None:
    """The label alone proves nothing: a Workflow's pod carrying it, a pod a member creates, one
    owned by anything but a ReplicaSet, is judged as the Pod it is (issue 29 may bind pods to
    their InferenceService by Gatekeeper's synced inventory; here the owner and the requester)."""
    pod = next(
        m for m in _made_for_production_service() if m.obj["kind"] == "Pod" and "predictor" in m.obj["metadata"]["name"]
    )
    assert _denied(scheduling, pod.obj, pod.user) == []  # positive control
    forged = copy.deepcopy(pod.obj)
    edit(forged)
    denied = _denied(scheduling, forged, user)
    assert any(PRIORITY in m for m in denied) and any("may not tolerate kserve-gpu" in m for m in denied), (
        case,
        denied,
    )


def test_a_deployment_claiming_kserves_label_is_refused_unless_kserve_or_knative_made_it(
    scheduling: admission.Policy,
) -> None:
    deployment = next(m for m in _made_for_production_service() if m.obj["kind"] == "Deployment")
    assert _denied(scheduling, deployment.obj, controllers.KNATIVE_CONTROLLER) == []
    raw = copy.deepcopy(deployment.obj)  # RawDeployment: owned by the InferenceService, made by KServe
    raw["metadata"]["ownerReferences"][0].update(apiVersion="serving.kserve.io/v1beta1", kind="InferenceService")
    assert _denied(scheduling, raw, controllers.KSERVE_CONTROLLER) == []
    for user in ("fraud-member", controllers.ARGO_CONTROLLER, controllers.KSERVE_CONTROLLER):
        denied = _denied(scheduling, deployment.obj, user)  # a Revision's Deployment is Knative's to make
        metadata = deployment.obj["metadata"]
        said = f'Deployment {metadata["name"]} in namespace "{metadata["namespace"]}" {PRIORITY}'
        assert any(m.startswith(said) for m in denied), (user, denied)


def _trainer_objects() -> list[Made]:
    runtimes = _documents("trainer/training-runtimes.yaml")
    return [m for job in train_jobs() for m in controllers.trainer_objects(job.obj, runtimes)]


def test_a_trainjob_and_what_trainer_makes_of_it_are_judged_as_jobs(scheduling: admission.Policy) -> None:
    """issue 28: the TrainJob Argo creates, the JobSet Trainer makes of the GPU runtime, its Jobs
    and Pods are admitted in a GPU tenant's namespace; the same JobSet in a namespace the
    Constraint does not name, or with the production PriorityClass, is refused as a Job."""
    for job in train_jobs():
        assert _denied(scheduling, job.obj, job.user) == [], job.source
    made = _trainer_objects()
    assert {m.obj["kind"] for m in made} == {"JobSet", "Job", "Pod"}
    for item in made:
        assert _denied(scheduling, item.obj, item.user) == [], item.by
    jobset = next(m.obj for m in made if m.obj["kind"] == "JobSet")
    pod = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"  # the runtime's, in the tenant's namespace
    elsewhere = copy.deepcopy(jobset)
    elsewhere["metadata"]["namespace"] = "sandbox"
    denied = _denied(scheduling, elsewhere, controllers.TRAINER_CONTROLLER)
    assert any('in namespace "sandbox" (judged as Job) may not tolerate nvidia.com/gpu' in m for m in denied), denied
    production = copy.deepcopy(jobset)
    production["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["priorityClassName"] = (
        "production-inference"
    )
    assert any(PRIORITY in m for m in _denied(scheduling, production, controllers.TRAINER_CONTROLLER))


def test_a_cluster_training_runtime_is_judged_where_its_jobs_run(scheduling: admission.Policy) -> None:
    """A ClusterTrainingRuntime has no namespace: its GPU toleration is admitted on the runtime
    and judged on the JobSet made in each TrainJob's namespace (above). Every other policy still
    holds the runtime itself: a privileged node container is refused."""
    runtimes = _documents("trainer/training-runtimes.yaml")
    for runtime in runtimes:
        assert _denied(scheduling, runtime, "platform-admin") == []
    security = policy("pod-security.yaml")
    privileged = copy.deepcopy(runtimes[0])
    node = privileged["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert security.matches(privileged) and security.violations(privileged) == []
    node["containers"][0]["securityContext"]["privileged"] = True
    assert security.violations(privileged) == ['container "node" runs privileged']


def test_a_katib_trial_template_is_judged_as_the_object_katib_makes(scheduling: admission.Policy) -> None:
    """issue 28: the Experiment `mlops tune --katib` renders (a GPU trial Job) and the Trial and
    Job Katib makes are admitted in the tenant's namespace; the Experiment in another namespace
    is refused, and a trial template that is a Deployment is refused the GPU as a Deployment."""
    (experiment,) = [e.obj for e in experiments()]
    trial_pod = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    assert trial_pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert _denied(scheduling, experiment, "fraud-member") == []
    made = controllers.katib_objects(experiment)
    assert [m.obj["kind"] for m in made] == ["Trial", "Job", "Pod"]
    for item in made:
        assert _denied(scheduling, item.obj, item.user) == [], item.by
    elsewhere = copy.deepcopy(experiment)
    elsewhere["metadata"]["namespace"] = "sandbox"
    denied = _denied(scheduling, elsewhere, "fraud-member")
    assert any('"sandbox" (judged as Job) may not tolerate nvidia.com/gpu' in m for m in denied), denied
    long_running = copy.deepcopy(experiment)
    long_running["spec"]["trialTemplate"]["trialSpec"].update(apiVersion="apps/v1", kind="Deployment")
    denied = _denied(scheduling, long_running, "fraud-member")
    assert any("(judged as Deployment) may not tolerate nvidia.com/gpu" in m for m in denied), denied
