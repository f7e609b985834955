"""Nobody but the platform runs as a tenant's canary-analyst (issue 32, security seam), on the real OPA engine.

The canary analysis (pipelines/canary_cron.py) runs hourly as the ServiceAccount `canary-analyst`, which
the promotion guard trusts to apply a production InferenceService with a sign-off it did not make.
A tenant member may create Workflows, WorkflowTemplates and CronWorkflows in the namespace, and Argo
runs a workflow as whatever ServiceAccount of the namespace it names: a member's Workflow as
canary-analyst (or an edit of the canary-analysis CronWorkflow) applied production with a forged
sign-off. manifests/policies/protected-service-accounts.yaml admits a workload that runs as a protected
ServiceAccount only from the platform's installers (the deployers, the GitOps agents, Argo's
controller). The attacker's method: the platform's own path admitted first (positive control), then
the member's paths in every place a ServiceAccount can be named, then the control broken on purpose.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from components.steps.promote_identity import ANALYST_SERVICE_ACCOUNT, FLUX_APPLIER, GITOPS_APPLIER
from mlops import admission, admission_parameters
from pipelines.argo_settings import ARGO_NAMESPACE
from tests.policies.platform_objects import MANIFESTS
from tests.policies.policy_files import installed_in_prod, policy, without_paragraph
from tests.policies.test_pod_spec_locations import INTERNAL, POD_LOCATIONS, Place, _workflow

FILE = "protected-service-accounts.yaml"
MEMBER = "alice@fraud.bank.internal"  # in fraud-members: pipeline-submitter (manifests/tenants/base/tenant.yaml)
CLUSTER_ADMIN = "kubernetes-admin"  # kubectl apply -k with kubeadm's admin.conf (docs/install.md)
RUNNER = "pipeline-runner"


@pytest.fixture(scope="module")
def rule() -> Iterator[admission.Policy]:
    yield policy(FILE)


@pytest.fixture(scope="module")
def installed() -> Iterator[admission.PolicySet]:
    """Every Constraint the prod overlay installs, as Gatekeeper would run them."""
    yield installed_in_prod()


def _cron() -> dict[str, Any]:
    """The canary-analysis CronWorkflow as make golden renders it into fraud's folder."""
    documents = yaml.safe_load_all((MANIFESTS / "tenants" / "fraud" / "canary-analysis.yaml").read_text())
    return next(d for d in documents if d and d["kind"] == "CronWorkflow")


def _run_of(cron: dict[str, Any]) -> dict[str, Any]:
    """The Workflow Argo's controller creates for one scheduled run (cron's workflowSpec, owned by it)."""
    metadata = cron["metadata"]
    owner = {"apiVersion": cron["apiVersion"], "kind": "CronWorkflow", "name": metadata["name"], "uid": "u1",
             "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": f"{metadata['name']}-1764950220",
            "namespace": metadata["namespace"],
            "labels": {"workflows.argoproj.io/cron-workflow": metadata["name"]},
            "ownerReferences": [owner],
        },
        "spec": copy.deepcopy(cron["spec"]["workflowSpec"]),
    }


def _pod_of(run: dict[str, Any]) -> dict[str, Any]:
    """The pod Argo's controller creates for the run's one step, as the workflow's ServiceAccount."""
    spec, (template,) = run["spec"], run["spec"]["templates"]
    owner = {"apiVersion": run["apiVersion"], "kind": "Workflow", "name": run["metadata"]["name"], "uid": "u2",
             "controller": True}  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{run['metadata']['name']}-analyze-1",
            "namespace": run["metadata"]["namespace"],
            "ownerReferences": [owner],
        },
        "spec": {
            "serviceAccountName": spec["serviceAccountName"],
            "securityContext": spec["securityContext"],
            "containers": [{"name": "main", **template["container"]}],
        },
    }


def _edited_cron() -> dict[str, Any]:
    """The member's edit of the canary-analysis CronWorkflow: its command is now theirs."""
    cron = _cron()
    cron["spec"]["workflowSpec"]["templates"][0]["container"]["command"] = ["sh", "-c", "kubectl apply -f /tmp/prod"]
    return cron


def _in_fraud(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] != "ClusterWorkflowTemplate":
        obj["metadata"]["namespace"] = "fraud"
    return obj


def _template_field(kind: str, field: str) -> Place:
    return lambda p: _workflow(kind, {"container": {"image": INTERNAL}, field: p[field]})


ANALYST = {"serviceAccountName": ANALYST_SERVICE_ACCOUNT}

# Every place a member's object can name the ServiceAccount its pods run as: each pod-spec location of
# lib.workloads (test_pod_spec_locations), and Argo's own (a template's, templateDefaults', the executor's).
PLACES: dict[str, Place] = {
    **{f"{name} serviceAccountName": place for name, place in POD_LOCATIONS.items()},
    "Pod serviceAccount (deprecated alias)": lambda p: POD_LOCATIONS["Pod"](
        {"serviceAccount": p["serviceAccountName"]}
    ),
    "Workflow template serviceAccountName": _template_field("Workflow", "serviceAccountName"),
    "Workflow spec executor.serviceAccountName": lambda p: _workflow(
        "Workflow", {"container": {"image": INTERNAL}}, executor=p
    ),
    "Workflow template executor.serviceAccountName": lambda p: _workflow(
        "Workflow", {"container": {"image": INTERNAL}, "executor": p}
    ),
    "Workflow templateDefaults serviceAccountName": lambda p: _workflow(
        "Workflow", {"container": {"image": INTERNAL}}, templateDefaults=p
    ),
    "Workflow spec podSpecPatch": lambda p: _workflow(
        "Workflow", {"container": {"image": INTERNAL}}, podSpecPatch=json.dumps(p)
    ),
    "CronWorkflow template serviceAccountName": _template_field("CronWorkflow", "serviceAccountName"),
    # Argo >= 3.4's inline templates (a DAG task's, a step's, one inside another): each makes a pod of
    # its own; before lib.workloads walked them, one named the analyst past this policy
    "Workflow DAG task inline serviceAccountName": lambda p: _workflow(
        "Workflow", {"dag": {"tasks": [{"name": "t", "inline": {"container": {"image": INTERNAL}, **p}}]}}
    ),
    "Workflow step inline serviceAccountName": lambda p: _workflow(
        "Workflow", {"steps": [[{"name": "s", "inline": {"container": {"image": INTERNAL}, **p}}]]}
    ),
    "CronWorkflow nested inline serviceAccountName": lambda p: _workflow(
        "CronWorkflow",
        {
            "dag": {
                "tasks": [
                    {
                        "name": "t",
                        "inline": {"steps": [[{"name": "s", "inline": {"container": {"image": INTERNAL}, **p}}]]},
                    }
                ]
            }
        },
    ),
    "CronWorkflow template podSpecPatch (YAML)": lambda p: _workflow(
        "CronWorkflow", {"container": {"image": INTERNAL}, "podSpecPatch": yaml.safe_dump(p)}
    ),
}

TEMPLATES: dict[str, Place] = {
    "WorkflowTemplate spec": lambda p: _workflow("WorkflowTemplate", {"container": {"image": INTERNAL}}, **p),
    "WorkflowTemplate template": _template_field("WorkflowTemplate", "serviceAccountName"),
    "ClusterWorkflowTemplate spec": lambda p: _workflow(
        "ClusterWorkflowTemplate", {"container": {"image": INTERNAL}}, **p
    ),
}


def _refused(rule: admission.Policy, obj: dict[str, Any], user: str | None, *groups: str) -> list[str]:
    assert rule.matches(obj), f"{rule.name} does not match {obj['kind']}"
    return rule.violations(obj, user=user, groups=groups)


def test_the_parameters_are_the_ones_python_renders(rule: admission.Policy) -> None:
    """One source: make golden wrote the protected names and the installers from promote_identity,
    PLATFORM_DEPLOYERS and Argo's namespace; the Constraint matches every workload kind."""
    parameters = admission_parameters.protected_service_account_parameters()
    assert rule.parameters == parameters
    assert parameters["serviceAccounts"] == [ANALYST_SERVICE_ACCOUNT]
    users = parameters["installers"]["users"]
    assert {GITOPS_APPLIER, FLUX_APPLIER, f"system:serviceaccount:{ARGO_NAMESPACE}:argo"} <= set(users)
    assert parameters["installers"]["groups"] == admission_parameters.PLATFORM_DEPLOYERS["groups"]
    assert not any(ANALYST_SERVICE_ACCOUNT in user for user in users)  # it never installs itself
    assert rule.constraint["spec"]["match"]["kinds"] == admission.WORKLOAD_KINDS


def test_the_platform_installs_and_runs_the_canary_analysis(
    rule: admission.Policy, installed: admission.PolicySet
) -> None:
    """Positive control: the rendered CronWorkflow applied by the GitOps agent, Flux, or the platform
    engineer with cluster-admin credentials (a deployer's group); the Workflow Argo's controller makes
    of it and that Workflow's pod; and Gatekeeper's audit of all three (no requester). Every installed
    Constraint admits them too."""
    cron = _cron()
    assert cron["spec"]["workflowSpec"]["serviceAccountName"] == ANALYST_SERVICE_ACCOUNT
    for user in (GITOPS_APPLIER, FLUX_APPLIER):
        assert _refused(rule, cron, user) == [], user
        assert installed.violations(cron, user=user) == [], user
    assert _refused(rule, cron, CLUSTER_ADMIN, "system:authenticated", "system:masters") == []
    run = _run_of(cron)
    pod = _pod_of(run)
    for made in (run, pod):
        assert _refused(rule, made, admission_parameters.ARGO_CONTROLLER) == [], made["kind"]
        assert installed.violations(made, user=admission_parameters.ARGO_CONTROLLER) == [], made["kind"]
    for stored in (cron, run, pod):
        assert _refused(rule, stored, None) == [], stored["kind"]  # the audit


def test_a_member_cannot_run_as_the_analyst_or_edit_its_cron(rule: admission.Policy) -> None:
    """The attack: the member's copy of the run (Argo's `submit --from cronwf/canary-analysis` creates
    it as the member), the same CronWorkflow applied by the member, their edit of it, and the pod had they
    the right to create one. The cluster admin's name without its group is no installer either."""
    cron, edited = _cron(), _edited_cron()
    run = _run_of(cron)
    run["metadata"] = {"generateName": "canary-analysis-", "namespace": "fraud"}
    for attack in (run, cron, edited, _pod_of(_run_of(cron))):
        message = next(m for m in _refused(rule, attack, MEMBER) if "is protected" in m)
        assert f"{attack['kind']} " in message and '"fraud"' in message, message
        assert f'serviceAccountName "{ANALYST_SERVICE_ACCOUNT}" is protected' in message, message
        assert MEMBER in message and "run it as pipeline-runner" in message, message
    assert _refused(rule, cron, CLUSTER_ADMIN) != []
    assert _refused(rule, cron, CLUSTER_ADMIN, "system:authenticated") != []


@pytest.mark.parametrize("place", list(PLACES))
def test_each_place_a_member_names_the_analyst_is_denied(rule: admission.Policy, place: str) -> None:
    attack = _in_fraud(PLACES[place](dict(ANALYST)))
    assert any("is protected" in m for m in _refused(rule, attack, MEMBER)), (place, attack)
    assert _refused(rule, _in_fraud(PLACES[place]({"serviceAccountName": RUNNER})), MEMBER) == [], place  # control
    assert _refused(rule, attack, GITOPS_APPLIER) == [], place  # the platform may


@pytest.mark.parametrize("place", ["Workflow spec serviceAccountName", "Workflow template podSpecPatch"])
def test_a_service_account_filled_in_at_run_time_is_denied(rule: admission.Policy, place: str) -> None:
    """`{{workflow.parameters.sa}}` is whatever the submitter passes: admission cannot read it."""
    places = {"Workflow template podSpecPatch": lambda p: _workflow(
        "Workflow", {"container": {"image": INTERNAL}, "podSpecPatch": json.dumps(p)})}  # fmt: skip
    make = {**PLACES, **places}[place]
    refused = _refused(rule, make({"serviceAccountName": "{{workflow.parameters.sa}}"}), MEMBER)
    assert any("filled in at run time" in m for m in refused), refused
    assert _refused(rule, make({"serviceAccountName": RUNNER}), MEMBER) == []


@pytest.mark.parametrize(
    "patch", ["{{workflow.parameters.p}}", '{"{{workflow.parameters.k}}": "canary-analyst"}'], ids=["whole", "key"]
)
def test_a_pod_spec_patch_built_from_parameters_is_denied(rule: admission.Policy, patch: str) -> None:
    """Argo fills the parameters in, then merges the patch over the pod, ServiceAccount included: with
    `-p p='{"serviceAccountName": "canary-analyst"}'` (or the key as a parameter, which no text search
    for 'serviceaccount' finds) the pod ran as the analyst. Control: a literal patch naming nothing."""

    def make(where: str, text: str) -> dict[str, Any]:
        template = {"container": {"image": INTERNAL}, **({"podSpecPatch": text} if where == "template" else {})}
        return _workflow("Workflow", template, **({"podSpecPatch": text} if where == "spec" else {}))

    for where in ("spec", "template"):
        refused = _refused(rule, _in_fraud(make(where, patch)), MEMBER)
        assert any("podSpecPatch is filled in at run time" in m for m in refused), (where, refused)
        assert _refused(rule, _in_fraud(make(where, '{"terminationGracePeriodSeconds": 5}')), MEMBER) == [], where


@pytest.mark.parametrize("place", list(TEMPLATES))
def test_no_template_runs_as_the_analyst_whoever_writes_it(rule: admission.Policy, place: str) -> None:
    """A member's Workflow may reference any template (workflowTemplateRef) and the controller makes its
    pods as the template says: a template naming the analyst is refused even from the GitOps agent, and
    at audit; one naming the runner is admitted from a member."""
    attack = _in_fraud(TEMPLATES[place](dict(ANALYST)))
    for user in (MEMBER, GITOPS_APPLIER, admission_parameters.ARGO_CONTROLLER, None):
        refused = _refused(rule, attack, user)
        assert any("any member's Workflow may reference a template" in m for m in refused), (place, user)
    assert _refused(rule, _in_fraud(TEMPLATES[place]({"serviceAccountName": RUNNER})), MEMBER) == []


def test_a_members_own_workflows_are_admitted(rule: admission.Policy) -> None:
    """The member's everyday traffic: the reference pipelines' goldens as the member submits them
    (pipeline-runner, or no ServiceAccount named) pass this Constraint."""
    from tests.policies.platform_objects import golden_objects

    goldens = golden_objects()
    assert {g.obj["kind"] for g in goldens} >= {"Workflow", "WorkflowTemplate", "CronWorkflow"}
    for golden in goldens:
        assert _refused(rule, _in_fraud(golden.obj), MEMBER) == [], golden.source


def test_without_the_rule_the_attack_is_admitted(rule: admission.Policy, installed: admission.PolicySet) -> None:
    """Negative control: with the protected-name rule (and the pod-name one, which the analysis's run
    also trips) taken out of the rego, the member's run as the
    analyst and their edit of the CronWorkflow are admitted; and no other installed Constraint refuses
    them, so this policy is the one thing between a member and a forged production sign-off."""
    broken = without_paragraph(rule, "found.name in protected")
    broken = without_paragraph(broken, "which a platform NetworkPolicy selects")
    others = admission.PolicySet(policies=[p for p in installed.policies if p.name != rule.name])
    assert len(others.policies) == len(installed.policies) - 1
    run = _run_of(_cron())
    run["metadata"] = {"generateName": "canary-analysis-", "namespace": "fraud"}
    for attack in (run, _edited_cron(), _in_fraud(PLACES["Workflow template serviceAccountName"](dict(ANALYST)))):
        assert _refused(rule, attack, MEMBER) != []
        assert _refused(broken, attack, MEMBER) == []
        assert others.violations(attack, user=MEMBER) == []
        assert installed.violations(attack, user=MEMBER) != []


def test_a_member_cannot_borrow_the_analysis_pods_name(rule: admission.Policy) -> None:
    """The analysis's NetworkPolicy to Prometheus (canary-analysis-to-prometheus) selects its pods by
    app.kubernetes.io/name: a member's Workflow naming its pods so (on the workflow, a template, an
    inline one, or from a parameter) would read every tenant's series there. The platform's own
    CronWorkflow and the controller's pods carry it; a member's other names pass."""
    from pipelines.canary_cron import ANALYSIS_NAME

    def named(name: str) -> list[dict[str, Any]]:
        labels = {"labels": {"app.kubernetes.io/name": name}}
        return [
            _workflow("Workflow", {"container": {"image": INTERNAL}}, podMetadata=labels),
            _workflow("Workflow", {"container": {"image": INTERNAL}, "metadata": labels}),
            _workflow(
                "Workflow",
                {"dag": {"tasks": [{"name": "t", "inline": {"container": {"image": INTERNAL}, "metadata": labels}}]}},
            ),
            _workflow("CronWorkflow", {"container": {"image": INTERNAL}}, podMetadata=labels),
            {**POD_LOCATIONS["Pod"]({}), "metadata": {"name": "p", "namespace": "fraud", **labels}},
        ]

    for attack in [*named(ANALYSIS_NAME), *named("{{workflow.parameters.n}}")]:
        refused = _refused(rule, _in_fraud(attack), MEMBER)
        assert any("a platform NetworkPolicy selects" in m for m in refused), (attack, refused)
    for control in named("fraud-scoring-report"):
        assert _refused(rule, _in_fraud(control), MEMBER) == [], control
    cron = _cron()
    assert cron["spec"]["workflowSpec"]["podMetadata"]["labels"]["app.kubernetes.io/name"] == ANALYSIS_NAME
    assert _refused(rule, cron, GITOPS_APPLIER) == []
    assert _refused(rule, _cron(), MEMBER) != []
