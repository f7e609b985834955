"""Serving labels only on the pods KServe and Knative make (issue 29), on the real OPA engine.

issue 29: any pod labelled `component: transformer` could reach the Knative activator and the
Istio ingress gateway, which route by Host to every tenant's InferenceService, and a pricing
Workflow could set that label on its own pods. manifests/policies/serving-labels.yaml refuses the
labels the network trusts as a serving pod's (rendered from the required flows and the tenant
NetworkPolicies: mlops/admission_parameters.py) on every pod template of a Workflow, CronWorkflow,
WorkflowTemplate, TrainJob, Katib Experiment or Trial, and on a Pod, Deployment or ReplicaSet that
KServe's and Knative's controllers did not make. Each case: the platform's own objects admitted
first, then the forged ones refused naming the label and the fix, then the control broken on
purpose (the Constraint without the derived label admits the forged Workflow).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from mlops import admission, admission_parameters
from tests.conftest import REPO
from tests.policies import controller_objects_without_a_cluster as controllers
from tests.policies.platform_objects import Rendered, experiments, golden_objects, inference_services, train_jobs
from tests.policies.policy_files import POLICIES, policy

BASE = REPO / "manifests" / "base"
FORGED = {"component": "transformer"}
ISVC = controllers.INFERENCE_SERVICE_LABEL
REFUSED = "component=transformer"
FIX = "remove the label; to serve a model, promote it (mlops promote)"


@pytest.fixture(scope="module")
def labels() -> Iterator[admission.Policy]:
    yield policy("serving-labels.yaml")


@functools.cache
def _platform() -> dict[str, list[Any]]:
    """The platform's rendered objects these tests start from, rendered once per run."""
    (storage,) = _documents("serving/storage-container.yaml")
    runtimes = _documents("serving/triton-runtime.yaml")
    jobs, trainer_runtimes = train_jobs(), _documents("trainer/training-runtimes.yaml")
    return {
        "argo": golden_objects(),
        "trainjobs": jobs,
        "experiments": experiments(),
        "kserve": [m for s in inference_services() for m in controllers.kserve_objects(s.obj, runtimes, storage)],
        "trainer": [m for job in jobs for m in controllers.trainer_objects(job.obj, trainer_runtimes)],
    }


def _documents(path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((BASE / path).read_text()) if d]


def _kserve_made() -> list[controllers.Made]:
    return list(_platform()["kserve"])


def _denied(rule: admission.Policy, obj: dict[str, Any], user: str | None) -> list[str]:
    assert rule.matches(obj), obj["kind"]
    return rule.violations(obj, user=user)


def _pricing_workflow() -> dict[str, Any]:
    """A pricing Workflow: the fraud WorkflowTemplate's spec, submitted inline in pricing."""
    template = next(r.obj for r in _platform()["argo"] if r.obj["kind"] == "WorkflowTemplate" and "fraud" in r.source)
    workflow = {"apiVersion": template["apiVersion"], "kind": "Workflow",
                "metadata": {"generateName": "pricing-", "namespace": "pricing"},
                "spec": copy.deepcopy(template["spec"])}  # fmt: skip
    return workflow


def test_the_derived_labels_are_the_serving_pods_and_the_constraint_is_in_step() -> None:
    """The Constraint's parameters are rendered from the network's sources (make golden)."""
    parameters = admission_parameters.serving_labels_parameters()
    assert {"key": "component", "values": ["predictor", "transformer"]} in parameters["labels"]
    assert {"serving.kserve.io/", "serving.knative.dev/"} <= set(parameters["domains"])
    assert admission_parameters.sync_parameters(POLICIES, write=False) == []
    assert policy("serving-labels.yaml").parameters == parameters


def test_the_derivation_follows_the_network_policies_and_the_flows_on_known_cases() -> None:
    """One source: a NetworkPolicy that lets a label reach Knative's activator reserves it, and so
    do the same-namespace peers of the pods it selects; a flow endpoint in KServe's domain
    reserves its labels; a policy into the platform's services reserves nothing."""
    activator = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "knative-serving"}},
                 "podSelector": {"matchLabels": {"app": "activator"}}}  # fmt: skip
    model = {"podSelector": {"matchLabels": {"role": "model"}}}
    edge = {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["edge"]}]}}
    services = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mlops"}}}
    policies = [
        {"kind": "NetworkPolicy", "spec": {"podSelector": {"matchLabels": {"role": "scorer"}},
                                           "egress": [{"to": [activator, model]}]}},
        {"kind": "NetworkPolicy", "spec": {**model, "ingress": [{"from": [edge]}]}},
        {"kind": "NetworkPolicy", "spec": {"podSelector": {"matchLabels": {"app": "batch"}},
                                           "egress": [{"to": [services]}]}},
    ]  # fmt: skip
    assert admission_parameters.serving_labels(policies) == [("role", "model"), ("role", "scorer"), ("tier", "edge")]
    flows = {"endpoints": {"scorer": {"namespace": "{tenants}", "labels": {"serving.kserve.io/x": "any", "c": "s"}},
                           "batch": {"namespace": "{tenants}", "labels": {"app": "batch"}}}}  # fmt: skip
    assert admission_parameters.serving_endpoints(flows) == [("c", "s"), ("serving.kserve.io/x", None)]


def test_the_platforms_own_workflows_trainjobs_trials_and_kserve_pods_are_admitted(
    labels: admission.Policy,
) -> None:
    """Positive control: the Argo goldens, the TrainJobs (Argo and KFP), the Katib Experiment and
    what Trainer and Katib make of them, and KServe's and Knative's pods, each as its creator."""
    platform = _platform()
    made: list[Rendered | controllers.Made] = [*platform["argo"], *platform["trainjobs"], *platform["experiments"]]
    made += [*platform["trainer"], *(m for e in platform["experiments"] for m in controllers.katib_objects(e.obj))]
    kserve = _kserve_made()
    assert {(m.obj["kind"], m.obj["metadata"]["labels"]["component"]) for m in kserve} >= {
        ("Pod", "transformer"), ("Pod", "predictor"), ("Deployment", "transformer"), ("ReplicaSet", "transformer")
    }  # fmt: skip
    for item in [*made, *kserve]:
        assert _denied(labels, item.obj, item.user) == [], item.obj["kind"]
    for item in kserve:
        assert _denied(labels, item.obj, None) == [], item.by  # Gatekeeper's audit: the owners are the evidence


def _at(where: str) -> Any:
    def edit(workflow: dict[str, Any]) -> None:
        spec = workflow["spec"]
        if where == "podMetadata":
            spec["podMetadata"]["labels"].update(FORGED)
        elif where == "template":
            spec["templates"][0].setdefault("metadata", {}).setdefault("labels", {}).update(FORGED)
        elif where == "templateDefaults":
            spec["templateDefaults"] = {"metadata": {"labels": dict(FORGED)}}
        elif where == "parameter":  # an Argo parameter that fills in the value when the controller makes the pod
            spec["templates"][0].setdefault("metadata", {})["labels"] = {"component": "{{inputs.parameters.role}}"}
        else:  # ... or the key
            spec["templates"][0].setdefault("metadata", {})["labels"] = {"{{inputs.parameters.key}}": "transformer"}

    return edit


@pytest.mark.parametrize(
    ("where", "said"),
    [("podMetadata", "(spec.podMetadata)"), ("template", '(template "validate" metadata)'),
     ("templateDefaults", "(spec.templateDefaults.metadata)"), ("parameter", "component={{inputs.parameters.role}}"),
     ("parameter key", "{{inputs.parameters.key}}=transformer")],
)  # fmt: skip
def test_a_pricing_workflow_labelling_its_pods_transformer_is_refused(
    labels: admission.Policy, where: str, said: str
) -> None:
    """issue 29: a pricing Workflow that sets `component: transformer` on its pods' metadata, at
    the workflow, on a template, in the template defaults, or through a parameter, is refused
    naming the label, where it sits, and the fix."""
    workflow = _pricing_workflow()
    assert _denied(labels, workflow, controllers.ARGO_CONTROLLER) == []  # positive control
    _at(where)(workflow)
    denied = _denied(labels, workflow, "system:serviceaccount:pricing:pipeline-runner")
    assert len(denied) == 1 and said in denied[0] and denied[0].endswith(FIX), denied
    assert denied[0].startswith('Workflow pricing- in namespace "pricing": label '), denied


@pytest.mark.parametrize(
    ("label", "value"),
    [("serving.kserve.io/inferenceservice", "fraud-model"), ("serving.knative.dev/service", "fraud-model-transformer"),
     ("component", "predictor")],
)  # fmt: skip
def test_every_label_kserve_or_knative_owns_is_refused_on_a_cron_workflow(
    labels: admission.Policy, label: str, value: str
) -> None:
    cron = next(r.obj for r in _platform()["argo"] if r.obj["kind"] == "CronWorkflow")
    forged = copy.deepcopy(cron)
    forged["spec"]["workflowSpec"]["podMetadata"] = {"labels": {label: value, "team": "pricing"}}
    denied = _denied(labels, forged, "pricing-member")
    assert len(denied) == 1 and f"label {label}={value} (spec.podMetadata)" in denied[0], denied


def _train_job() -> dict[str, Any]:
    return copy.deepcopy(next(j.obj for j in _platform()["trainjobs"] if j.source.startswith("argo")))


def _pod_template_patch(labels_: dict[str, str]) -> list[dict[str, Any]]:
    pod = {"metadata": {"labels": labels_}, "spec": {"containers": [{"name": "node", "env": []}]}}
    return [{"manager": "pricing", "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [
        {"name": "node", "template": {"spec": {"template": pod}}}]}}}}]  # fmt: skip


def test_a_trainjob_or_katib_trial_labelling_its_pods_is_refused(labels: admission.Policy) -> None:
    """issue 29: a TrainJob's runtimePatches (the pinned Trainer's API, schema-checked) and a
    Katib trial template (a Job, or a TrainJob) that label their pods `component: transformer`."""
    from mlops import lint

    job = _train_job()
    job["spec"]["runtimePatches"] = _pod_template_patch(dict(FORGED))
    assert lint.check(job) is None  # the field names Trainer declares
    denied = _denied(labels, job, controllers.ARGO_CONTROLLER)
    assert len(denied) == 1 and f'{REFUSED} (runtimePatches (pricing) replicated job "node" pod template)' in denied[0]
    (experiment,) = [e.obj for e in _platform()["experiments"]]
    trial_job = copy.deepcopy(experiment)
    pod_template = trial_job["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
    pod_template.setdefault("metadata", {}).setdefault("labels", {}).update(FORGED)
    denied = _denied(labels, trial_job, "pricing-member")
    assert len(denied) == 1 and f"{REFUSED} (its trial's Job: its pod template)" in denied[0], denied
    (trial, *_) = controllers.katib_objects(trial_job)
    assert any(REFUSED in m for m in _denied(labels, trial.obj, trial.user))  # and the Trial Katib makes of it
    trial_train_job = copy.deepcopy(experiment)
    trial_train_job["spec"]["trialTemplate"]["trialSpec"] = job
    denied = _denied(labels, trial_train_job, "pricing-member")
    assert len(denied) == 1 and "its trial's TrainJob: runtimePatches (pricing)" in denied[0], denied


def _kserve_pod(component: str) -> controllers.Made:
    pods = [m for m in _kserve_made() if m.obj["kind"] == "Pod"]
    return next(m for m in pods if m.obj["metadata"]["labels"]["component"] == component)


@pytest.mark.parametrize(
    ("case", "edit", "user"),
    [
        ("created by Argo's controller", lambda o: None, controllers.ARGO_CONTROLLER),
        ("created by a pricing member", lambda o: None, "pricing-member"),
        ("owned by a Workflow", lambda o: o["metadata"]["ownerReferences"][0].update(
            apiVersion="argoproj.io/v1alpha1", kind="Workflow"), controllers.REPLICASET_CONTROLLER),
        ("without the InferenceService label", lambda o: o["metadata"]["labels"].pop(ISVC),
         controllers.REPLICASET_CONTROLLER),
    ],
)  # fmt: skip
def test_a_pod_carrying_the_transformers_labels_that_kserve_did_not_make_is_refused(
    labels: admission.Policy, case: str, edit: Any, user: str
) -> None:
    """issue 29, the catch-all: whatever made it (an Argo resource template, a member, a forged
    owner), a Pod with the transformer's labels is admitted only as KServe's chain makes it."""
    pod = _kserve_pod("transformer")
    assert _denied(labels, pod.obj, pod.user) == []  # positive control: the ReplicaSet controller's
    forged = copy.deepcopy(pod.obj)
    forged["metadata"]["namespace"] = "pricing"
    edit(forged)
    denied = _denied(labels, forged, user)
    said = f'Pod {forged["metadata"]["name"]} in namespace "pricing": label {REFUSED} (on the pod itself)'
    assert any(m.startswith(said) for m in denied), (case, denied)


def test_a_deployment_with_the_transformers_labels_is_refused_unless_knative_made_it(labels: admission.Policy) -> None:
    deployment = next(m for m in _kserve_made() if m.obj["kind"] == "Deployment")
    assert _denied(labels, deployment.obj, controllers.KNATIVE_CONTROLLER) == []
    denied = _denied(labels, deployment.obj, "pricing-member")
    assert len(denied) == 2 and all("(its pod template)" in m for m in denied), denied  # component and isvc labels


def _review(rule: admission.Policy, obj: dict[str, Any], old: dict[str, Any], user: str) -> list[str]:
    """The rule on an UPDATE of `old` to `obj` (admission.Policy reviews creations)."""
    request = {
        "object": obj,
        "oldObject": old,
        "operation": "UPDATE",
        "userInfo": {"username": user},
        "kind": {"group": "", "version": "v1", "kind": obj["kind"]},
        "namespace": obj["metadata"]["namespace"],
    }
    found = rule.engine.eval_document(f"{rule.package}.violation", {"review": request, "parameters": rule.parameters})
    return sorted(v["msg"] for v in found)


def test_an_update_is_refused_only_for_the_labels_it_adds(labels: admission.Policy) -> None:
    """A controller that updates KServe's pod (another field) keeps its admitted labels; an update
    that adds the transformer's label to a pipeline pod is refused."""
    pod = _kserve_pod("transformer")
    relabelled = copy.deepcopy(pod.obj)
    relabelled["metadata"]["labels"]["pod-template-hash"] = "5d4f8"
    assert _review(labels, relabelled, pod.obj, "system:serviceaccount:kube-system:endpointslice-controller") == []
    metadata = {"name": "pricing-x-validate", "namespace": "pricing", "labels": {"workflows.argoproj.io/workflow": "x"}}
    step = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": []}}
    forged = copy.deepcopy(step)
    forged["metadata"]["labels"].update(FORGED)
    assert _review(labels, step, step, "pricing-member") == []
    denied = _review(labels, forged, step, "pricing-member")
    assert len(denied) == 1 and REFUSED in denied[0], denied


def test_the_constraint_without_the_derived_label_admits_the_forged_workflow(labels: admission.Policy) -> None:
    """The control broken on purpose: the same template with `component` left out of its
    parameters (the derivation missing it) admits the pricing Workflow the tests above refuse."""
    workflow = _pricing_workflow()
    _at("podMetadata")(workflow)
    assert _denied(labels, workflow, "pricing-member") != []
    parameters = copy.deepcopy(labels.parameters)
    parameters["labels"] = [rule for rule in parameters["labels"] if rule["key"] != "component"]
    assert labels.violations(workflow, parameters, user="pricing-member") == []
