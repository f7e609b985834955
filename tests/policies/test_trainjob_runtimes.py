"""TrainJobs run on the platform's runtimes, unpatched but for env (issue 29), on the real OPA engine.

issue 29: pipeline-runner could create TrainJobs against any ClusterTrainingRuntime, with any
override of the runtime's pods (serviceAccountName, volumes, tolerations). In the pinned Trainer
(the TrainJob CRD in MLOPS_SCHEMAS_DIR) the overrides are `spec.runtimePatches`; earlier releases'
podSpecOverrides and podTemplateOverrides are held too. manifests/policies/trainjob-runtimes.yaml
admits a runtimeRef to the platform's ClusterTrainingRuntimes only (rendered from
pipelines/trainer.py) and patches of the containers' env only, on a TrainJob and on the TrainJob of
a Katib trial template. Positive control first, then the forbidden TrainJobs, then the control
broken on purpose.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from mlops import admission, admission_parameters, lint
from tests.policies.platform_objects import Rendered, experiments, train_jobs
from tests.policies.policy_files import policy

RUNNER = "system:serviceaccount:pricing:pipeline-runner"


@pytest.fixture(scope="module")
def runtime_rule() -> Iterator[admission.Policy]:
    yield policy("trainjob-runtimes.yaml")


@pytest.fixture(scope="module")
def jobs() -> Iterator[list[Rendered]]:
    yield train_jobs()


def _pricing(jobs: list[Rendered]) -> dict[str, Any]:
    job = copy.deepcopy(next(j.obj for j in jobs if j.source.startswith("argo")))
    job["metadata"].pop("generateName", None)
    job["metadata"].update(name="pricing-train", namespace="pricing")
    return job


def _patch(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """A runtimePatches entry that patches the `node` job's pod spec with `pod`."""
    return [{"manager": "pricing", "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [
        {"name": "node", "template": {"spec": {"template": {"spec": pod}}}}]}}}}]  # fmt: skip


def test_the_runtimes_are_the_platforms_and_the_constraint_is_in_step(runtime_rule: admission.Policy) -> None:
    from pipelines.trainer import RUNTIMES

    parameters = admission_parameters.trainjob_parameters()
    assert [r["name"] for r in parameters["runtimes"]] == list(RUNTIMES)
    assert {r["kind"] for r in parameters["runtimes"]} == {"ClusterTrainingRuntime"}
    assert runtime_rule.parameters == parameters  # make golden rendered it (test_serving_labels checks every file)


def test_the_platforms_trainjobs_and_katib_trials_are_admitted(
    runtime_rule: admission.Policy, jobs: list[Rendered]
) -> None:
    """Positive control: the TrainJob of each runtime as Argo and as a Kubeflow Pipelines task
    create it, the Katib Experiment, and a patch of the node container's env only."""
    assert {j.obj["spec"]["runtimeRef"]["name"] for j in jobs} == {"torch-distributed", "xgboost-distributed"}
    for job in [*jobs, *experiments()]:
        assert runtime_rule.matches(job.obj) and runtime_rule.violations(job.obj, user=job.user) == [], job.source
    env_only = _pricing(jobs)
    env = [{"name": "MLOPS_LOG_LEVEL", "value": "debug"}]
    env_only["spec"]["runtimePatches"] = _patch({"containers": [{"name": "node", "env": env}]})
    assert lint.check(env_only) is None
    assert runtime_rule.violations(env_only, user=RUNNER) == []


@pytest.mark.parametrize(
    ("reference", "said"),
    [
        ({"name": "pricing-root"}, "names ClusterTrainingRuntime pricing-root (trainer.kubeflow.org)"),
        ({"kind": "TrainingRuntime", "name": "torch-distributed"},
         "names TrainingRuntime torch-distributed (trainer.kubeflow.org)"),
        ({"apiGroup": "example.com", "name": "torch-distributed"},
         "names ClusterTrainingRuntime torch-distributed (example.com)"),
    ],
)  # fmt: skip
def test_a_trainjob_naming_a_runtime_that_is_not_the_platforms_is_refused(
    runtime_rule: admission.Policy, jobs: list[Rendered], reference: dict[str, str], said: str
) -> None:
    """issue 29: another ClusterTrainingRuntime, a namespaced TrainingRuntime of the same name (the
    tenant's own), or a runtime of another API group."""
    job = _pricing(jobs)
    job["spec"]["runtimeRef"] = reference
    assert lint.check(job) is None
    denied = runtime_rule.violations(job, user=RUNNER)
    assert len(denied) == 1 and said in denied[0], denied
    assert denied[0].startswith(f'TrainJob {job["metadata"]["name"]} in namespace "pricing": runtimeRef '), denied
    assert denied[0].endswith("name one of them (train.distributed.runtime)"), denied


@pytest.mark.parametrize(
    ("pod", "field"),
    [
        ({"serviceAccountName": "pricing-admin"}, "serviceAccountName"),
        ({"volumes": [{"name": "node-root", "hostPath": {"path": "/"}}]}, "volumes"),
        ({"tolerations": [{"operator": "Exists"}]}, "tolerations"),
        ({"nodeSelector": {"kubernetes.io/hostname": "gpu-7"}}, "nodeSelector"),
        ({"affinity": {"nodeAffinity": {}}}, "affinity"),
        ({"containers": [{"name": "node", "volumeMounts": [{"name": "secrets", "mountPath": "/s"}]}]},
         'volumeMounts of containers "node"'),
        ({"initContainers": [{"name": "init", "securityContext": {"runAsUser": 0}}]},
         'securityContext of initContainers "init"'),
    ],
)  # fmt: skip
def test_a_trainjob_patching_its_runtimes_pods_beyond_env_is_refused(
    runtime_rule: admission.Policy, jobs: list[Rendered], pod: dict[str, Any], field: str
) -> None:
    """issue 29: runtimePatches (the pinned Trainer's field names: each patch is schema-checked)
    may not set the ServiceAccount, volumes, tolerations, node placement, mounts or security."""
    job = _pricing(jobs)
    job["spec"]["runtimePatches"] = _patch(pod)
    assert lint.check(job) is None
    denied = runtime_rule.violations(job, user=RUNNER)
    assert len(denied) == 1 and f'runtimePatches (pricing) replicated job "node" sets {field}' in denied[0], denied
    assert "which only the platform's runtime decides: remove it" in denied[0], denied


def test_earlier_trainers_overrides_and_a_katib_trials_trainjob_are_held_too(
    runtime_rule: admission.Policy, jobs: list[Rendered]
) -> None:
    """A cluster on an earlier Trainer keeps podSpecOverrides; a Katib trial template that is a
    TrainJob is the TrainJob Katib creates, judged as one."""
    legacy = _pricing(jobs)
    legacy["spec"]["podSpecOverrides"] = [{"targetJobs": [{"name": "node"}], "serviceAccountName": "pricing-admin"}]
    assert runtime_rule.violations(legacy, user=RUNNER) == [
        f'TrainJob {legacy["metadata"]["name"]} in namespace "pricing": podSpecOverrides[0] sets serviceAccountName '
        "on the runtime's pods, which only the platform's runtime decides: remove it (a TrainJob may patch only its "
        'containers\' ["env", "name"])'
    ]
    (experiment,) = [e.obj for e in experiments()]
    tuned = copy.deepcopy(experiment)
    trial = _pricing(jobs)
    trial["spec"]["runtimeRef"] = {"name": "pricing-root"}
    trial["spec"]["runtimePatches"] = _patch({"volumes": [{"name": "v", "emptyDir": {}}]})
    tuned["spec"]["trialTemplate"]["trialSpec"] = trial
    denied = runtime_rule.violations(tuned, user=RUNNER)
    assert len(denied) == 2 and all(m.startswith(f"Experiment {tuned['metadata']['name']} ") for m in denied), denied
    assert any("its trial's TrainJob: runtimeRef names ClusterTrainingRuntime pricing-root" in m for m in denied)


def test_the_constraint_with_the_rogue_runtime_or_field_allowed_admits_the_trainjob(
    runtime_rule: admission.Policy, jobs: list[Rendered]
) -> None:
    """The control broken on purpose: parameters that list the rogue runtime, or let a patch set
    serviceAccountName, admit what the tests above refuse."""
    job = _pricing(jobs)
    job["spec"]["runtimeRef"] = {"name": "pricing-root"}
    job["spec"]["runtimePatches"] = _patch({"serviceAccountName": "pricing-admin"})
    assert len(runtime_rule.violations(job, user=RUNNER)) == 2
    broken = copy.deepcopy(runtime_rule.parameters)
    broken["runtimes"].append({**broken["runtimes"][0], "name": "pricing-root"})
    broken["patchablePodFields"].append("serviceAccountName")
    assert runtime_rule.violations(job, broken, user=RUNNER) == []
