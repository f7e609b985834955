"""A workflow's Prometheus metrics label only its own namespace (issue 29), on the real OPA engine.

issue 29 review: a pricing member could submit a Workflow whose `spec.metrics.prometheus` (or a
template's `metrics`) declares `mlops_pipeline_runs_failed` with `namespace: fraud`; Argo's
controller exports it, Prometheus keeps the label (honorLabels), and ArgoWorkflowFailed pages
fraud's owner. manifests/policies/workflow-metric-labels.yaml admits a metric label the owners'
routes match on only with the value the platform renders from the workflow itself
(`{{workflow.namespace}}`, pipelines/argo_metrics.py), wherever a metric is declared. Positive
control first (the platform's own goldens), then the forged ones, then the control broken on purpose.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from mlops import admission, admission_parameters
from pipelines.argo_metrics import RUN_FAILED_METRIC
from tests.policies.platform_objects import Rendered, golden_objects
from tests.policies.policy_files import policy

MEMBER = "alice@pricing.bank.internal"


@pytest.fixture(scope="module")
def rule() -> Iterator[admission.Policy]:
    yield policy("workflow-metric-labels.yaml")


@pytest.fixture(scope="module")
def goldens() -> Iterator[list[Rendered]]:
    yield golden_objects()


def _forged(value: str = "fraud") -> dict[str, Any]:
    return {
        "counter": {"value": "1"},
        "help": "forged",
        "name": RUN_FAILED_METRIC,
        "labels": [
            {"key": "namespace", "value": value},
            {"key": "pipeline", "value": "fraud"},
            {"key": "status", "value": "Failed"},
        ],
    }


def _pricing(goldens: list[Rendered], kind: str) -> dict[str, Any]:
    obj = copy.deepcopy(next(g.obj for g in goldens if g.obj["kind"] == kind))
    obj["metadata"]["namespace"] = "pricing"
    return obj


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["workflowSpec"] if obj["kind"] == "CronWorkflow" else obj["spec"]


def test_the_reserved_label_is_the_one_the_platform_renders_and_routes_on(rule: admission.Policy) -> None:
    parameters = admission_parameters.workflow_metric_label_parameters()
    assert parameters == {"reservedLabels": [{"key": "namespace", "value": "{{workflow.namespace}}"}]}
    assert rule.parameters == parameters  # make golden rendered it
    assert rule.constraint["spec"]["match"]["excludedNamespaces"] == list(admission_parameters.NEVER_MATCHED_NAMESPACES)


def test_the_platforms_workflows_are_admitted(rule: admission.Policy, goldens: list[Rendered]) -> None:
    """Positive control: every golden Workflow, WorkflowTemplate and CronWorkflow (with the run
    counter and the drift gauges), as rendered and submitted in a tenant namespace."""
    kinds = {g.obj["kind"] for g in goldens if g.obj["apiVersion"].startswith("argoproj.io/")}
    assert {"Workflow", "WorkflowTemplate", "CronWorkflow"} <= kinds
    assert any(m.get("name") == RUN_FAILED_METRIC for g in goldens for m in _spec(g.obj).get("metrics", {}).get(
        "prometheus", []))  # fmt: skip
    for golden in goldens:
        if golden.obj["apiVersion"].startswith("argoproj.io/"):
            assert rule.matches(golden.obj) and rule.violations(golden.obj, user=golden.user) == [], golden.source
            assert rule.violations(_pricing([golden], golden.obj["kind"]), user=MEMBER) == []


@pytest.mark.parametrize("kind", ["Workflow", "WorkflowTemplate", "CronWorkflow"])
@pytest.mark.parametrize("where", ["workflow", "template", "inline", "templateDefaults"])
def test_a_forged_namespace_label_is_refused_wherever_it_is_declared(
    rule: admission.Policy, goldens: list[Rendered], kind: str, where: str
) -> None:
    """issue 29 review: `namespace: fraud` on the run counter, declared by the workflow, by one of
    its templates, by an inline template of a DAG task, or by templateDefaults."""
    obj = _pricing(goldens, kind)
    spec = _spec(obj)
    if where == "workflow":
        spec["metrics"] = {"prometheus": [_forged()]}
    elif where == "template":
        # the golden Workflow only references its template: a template of its own then
        spec.setdefault("templates", [{"name": "own", "container": {"image": "x"}}])[0]["metrics"] = {
            "prometheus": [_forged()]
        }
    elif where == "inline":
        inline = {"container": {"image": "x"}, "metrics": {"prometheus": [_forged()]}}
        spec.setdefault("templates", []).append({"name": "fan", "dag": {"tasks": [{"name": "t", "inline": inline}]}})
    else:
        spec["templateDefaults"] = {"metrics": {"prometheus": [_forged()]}}
    assert rule.matches(obj)
    (message,) = rule.violations(obj, user=MEMBER)
    assert f'metric "{RUN_FAILED_METRIC}"' in message and 'labels namespace "fraud"' in message
    assert "{{workflow.namespace}}" in message


@pytest.mark.parametrize("value", ["fraud", "{{workflow.parameters.ns}}", "{{ workflow.namespace }}", ""])
def test_any_value_but_the_workflows_own_namespace_is_refused(
    rule: admission.Policy, goldens: list[Rendered], value: str
) -> None:
    """issue 29 review: a literal, a parameter the submitter sets, a spelling Argo would also fill,
    an empty label: only the exact expression the platform renders is admitted. A second
    `namespace` label after the platform's own is refused too."""
    obj = _pricing(goldens, "Workflow")
    spec = _spec(obj)
    spec["metrics"] = {"prometheus": [_forged(value)]}
    assert len(rule.violations(obj, user=MEMBER)) == 1
    doubled = _forged("{{workflow.namespace}}")
    doubled["labels"].append({"key": "namespace", "value": value})
    spec["metrics"] = {"prometheus": [doubled]}
    assert len(rule.violations(obj, user=MEMBER)) == 1


def test_the_workflow_of_a_katib_trial_template_is_reviewed_too(
    rule: admission.Policy, goldens: list[Rendered]
) -> None:
    """issue 29 review: a Katib Experiment whose trial is such a Workflow."""
    workflow = _pricing(goldens, "Workflow")
    workflow["spec"]["metrics"] = {"prometheus": [_forged()]}
    experiment = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                  "metadata": {"name": "sweep", "namespace": "pricing"},
                  "spec": {"trialTemplate": {"trialSpec": workflow}}}  # fmt: skip
    assert rule.matches(experiment) and len(rule.violations(experiment, user=MEMBER)) == 1


def test_the_constraint_without_its_check_admits_the_forged_workflow(
    rule: admission.Policy, goldens: list[Rendered]
) -> None:
    """Control broken on purpose: with no reserved label the same forged Workflow is admitted, so
    the refusals above are this check's."""
    obj = _pricing(goldens, "Workflow")
    obj["spec"]["metrics"] = {"prometheus": [_forged()]}
    assert rule.violations(obj, {"reservedLabels": []}, user=MEMBER) == []
    assert rule.violations(obj, user=MEMBER) != []
