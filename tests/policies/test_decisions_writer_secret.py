"""A tenant member cannot load the decisions writer's key (security review, HIGH), on the real OPA engine.

The scoring transformer writes the decision log with `tenant-decisions-credentials`
(components/steps/serving_decisions.py): PutObject on all of decisions/<tenant>/*, in a bucket with
no versions. A member may create Workflows, WorkflowTemplates, CronWorkflows and InferenceServices,
and a pod may load any Secret of its namespace: a member's Workflow with that Secret as AWS_*
overwrote or added decision files. manifests/policies/decisions-writer-secret.yaml admits the Secret
only in the transformer promote renders (and what KServe makes of it), or from the platform's
installers. The attacker's method: the platform's own path admitted first (positive control), then
the member's paths in every place a pod can load a Secret, then the control broken on purpose.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from components.steps.promote_identity import GITOPS_APPLIER
from components.steps.serving_decisions import DECISIONS_CREDENTIALS_SECRET, S3_KEYS
from mlops import admission, admission_parameters
from tests.policies import controller_objects_without_a_cluster as controllers
from tests.policies.platform_objects import Rendered, inference_services, overlay_objects
from tests.policies.policy_files import installed_in_prod, policy, without_paragraph
from tests.policies.test_pod_spec_locations import INTERNAL, _service, _workflow, _workload

FILE = "decisions-writer-secret.yaml"
MEMBER = "alice@fraud.bank.internal"  # in fraud-members: pipeline-submitter (manifests/tenants/base/tenant.yaml)
SECRET = DECISIONS_CREDENTIALS_SECRET


@pytest.fixture(scope="module")
def rule() -> Iterator[admission.Policy]:
    yield policy(FILE)


@pytest.fixture(scope="module")
def installed() -> Iterator[admission.PolicySet]:
    """Every Constraint the prod overlay installs, as Gatekeeper would run them."""
    yield installed_in_prod()


@pytest.fixture(scope="module")
def services() -> Iterator[list[Rendered]]:
    """What `mlops promote` renders (every reference pipeline, stage and mode), each with the transformer."""
    found = [item for item in inference_services() if "transformer" in item.obj["spec"]]
    assert found
    yield found


def _refused(rule: admission.Policy, obj: dict[str, Any], user: str | None, *groups: str) -> list[str]:
    assert rule.matches(obj), f"{rule.name} does not match {obj['kind']}"
    return rule.violations(obj, user=user, groups=groups)


def _writer_env() -> list[dict[str, Any]]:
    return [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}} for name, key in S3_KEYS.items()
    ]


# Every way a container or a pod loads a Secret: (container fields, pod fields).
LOADS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "env secretKeyRef": ({"env": _writer_env()}, {}),
    "envFrom secretRef": ({"envFrom": [{"secretRef": {"name": SECRET}}]}, {}),
    "secret volume": (
        {"volumeMounts": [{"name": "k", "mountPath": "/k"}]},
        {"volumes": [{"name": "k", "secret": {"secretName": SECRET}}]},
    ),
    "projected volume": (
        {"volumeMounts": [{"name": "k", "mountPath": "/k"}]},
        {"volumes": [{"name": "k", "projected": {"sources": [{"secret": {"name": SECRET}}]}}]},
    ),
}

Attack = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def _argo(kind: str) -> Attack:
    return lambda c, p: _workflow(kind, {"container": {"image": INTERNAL, "command": ["sh"], **c}, **p})


def _inline(c: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    inline = {"container": {"image": INTERNAL, **c}, **p}
    return _workflow("Workflow", {"dag": {"tasks": [{"name": "t", "inline": inline}]}})


def _patched(c: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    patch = {"containers": [{"name": "main", **c}], **p}
    return _workflow("Workflow", {"container": {"image": INTERNAL}, "podSpecPatch": json.dumps(patch)})


def _transformer(image: str, command: list[str]) -> Attack:
    """An InferenceService whose transformer container has `image` and `command`."""
    return lambda c, p: _service(
        "transformer", {"containers": [{"name": "t", "image": image, "command": command, **c}], **p}
    )


def _pinned() -> tuple[str, list[str]]:
    parameters = admission_parameters.decisions_writer_parameters()["transformer"]
    return f"{parameters['repositories'][0]}:0.1.0", list(parameters["commands"][0])


# Where a member's object can carry a pod that loads the Secret.
ATTACKS: dict[str, Attack] = {
    "Workflow": _argo("Workflow"),
    "WorkflowTemplate": _argo("WorkflowTemplate"),
    "CronWorkflow": _argo("CronWorkflow"),
    "Workflow inline template": _inline,
    "Workflow podSpecPatch": _patched,
    "Workflow spec (workflow-wide volumes)": lambda c, p: _workflow(
        "Workflow", {"container": {"image": INTERNAL, **c}}, **p
    ),
    "Pod": lambda c, p: _workload("Pod", {"containers": [{"name": "x", "image": INTERNAL, **c}], **p}),
    "InferenceService predictor": lambda c, p: _service(
        "predictor", {"containers": [{"name": "kserve-container", "image": INTERNAL, **c}], **p}
    ),
    "InferenceService transformer, another image": _transformer("registry.mlops.internal/fraud/mine:1", _pinned()[1]),
    "InferenceService transformer, the image under a longer name": _transformer(
        _pinned()[0].replace(":0.1.0", "-evil:1"), _pinned()[1]
    ),
    "InferenceService transformer, another command": _transformer(_pinned()[0], ["python", "-c", "import boto3"]),
}


def test_the_parameters_are_the_ones_python_renders(rule: admission.Policy) -> None:
    """One source: make golden wrote the Secret's name and variables from serving_decisions, the
    transformer's command and image from promote's rendering, the installers from protected-service-accounts."""
    parameters = admission_parameters.decisions_writer_parameters()
    assert rule.parameters == parameters
    assert parameters["writerSecret"] == SECRET and parameters["variables"] == S3_KEYS
    installers = admission_parameters.protected_service_account_parameters()["installers"]
    assert parameters["installers"] == installers
    assert parameters["transformer"]["commands"] == [
        ["/opt/transformer/bin/python", "-m", "components.serving.transformer"]
    ]
    assert rule.constraint["spec"]["match"]["kinds"] == admission.WORKLOAD_KINDS


def test_promotes_transformer_and_what_kserve_makes_of_it_are_admitted(
    rule: admission.Policy, installed: admission.PolicySet, services: list[Rendered]
) -> None:
    """Positive control: each InferenceService promote renders names the Secret in its transformer
    (so the rule has something to judge) and is admitted, applied by the member and in the audit; the
    Deployment, ReplicaSet and Pod KServe and Knative make of it are admitted as their controllers
    create them; every installed Constraint admits them too."""
    objects = overlay_objects()["prod"]
    runtimes = [o for o in objects if o["kind"] == "ClusterServingRuntime"]
    (storage,) = [o for o in objects if o["kind"] == "ClusterStorageContainer"]
    for item in services:
        assert SECRET in json.dumps(item.obj["spec"]["transformer"]), item.name
        assert _refused(rule, item.obj, item.user) == [], item.name
        assert _refused(rule, item.obj, None) == [], item.name
        assert installed.violations(item.obj, user=item.user) == [], item.name
        made = [m for m in controllers.kserve_objects(item.obj, runtimes, storage) if SECRET in json.dumps(m.obj)]
        assert {m.obj["kind"] for m in made} == {"Deployment", "ReplicaSet", "Pod"}, item.name
        for m in made:
            assert _refused(rule, m.obj, m.user) == [], (item.name, m.obj["kind"])


def test_the_installer_may(rule: admission.Policy) -> None:
    """The platform's installers (GitOps, the cluster admin's group) may apply a workload with the key."""
    container, pod = LOADS["env secretKeyRef"]
    workflow = ATTACKS["Workflow"](container, pod)
    assert _refused(rule, workflow, GITOPS_APPLIER) == []
    assert _refused(rule, workflow, "kubernetes-admin", "system:authenticated", "system:masters") == []
    assert _refused(rule, workflow, MEMBER) != []  # the same object from a member


@pytest.mark.parametrize("load", sorted(LOADS))
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_member_cannot_load_the_writers_secret(rule: admission.Policy, attack: str, load: str) -> None:
    """The attack, in each kind and location, each way of loading a Secret: denied, and named."""
    container, pod = LOADS[load]
    obj = ATTACKS[attack](copy.deepcopy(container), copy.deepcopy(pod))
    messages = _refused(rule, obj, MEMBER)
    assert any(f'"{SECRET}" at ' in m and "decisions writer's Secret" in m for m in messages), (attack, load, messages)


def _pinned_service(container: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
    image, command = _pinned()
    return _transformer(image, command)(container, pod)


def test_the_pinned_transformer_may_take_it_only_as_promote_does(rule: admission.Policy) -> None:
    """The transformer's image and command, but the key loaded another way (envFrom, a volume), under
    another variable, beside code the image does not hold (an image volume or an init container's
    emptyDir on PYTHONPATH, an init container at all), or a second container beside it: denied. As
    promote renders it: admitted."""
    assert _refused(rule, _pinned_service({"env": _writer_env()}, {}), MEMBER) == []
    for load in ("envFrom secretRef", "secret volume", "projected volume"):
        assert _refused(rule, _pinned_service(*LOADS[load]), MEMBER) != [], load
    swapped = _writer_env()
    swapped[0]["name"] = "MLOPS_LEAK"
    assert _refused(rule, _pinned_service({"env": swapped}, {}), MEMBER) != []
    code = {"name": "code", "image": {"reference": "registry.mlops.internal/fraud/mine:1"}}  # an image volume
    mounted = {"env": [*_writer_env(), {"name": "PYTHONPATH", "value": "/code"}],
               "volumeMounts": [{"name": "code", "mountPath": "/code"}]}  # fmt: skip
    assert _refused(rule, _pinned_service(mounted, {"volumes": [code]}), MEMBER) != []
    filled = {"initContainers": [{"name": "fill", "image": INTERNAL}], "volumes": [{"name": "code", "emptyDir": {}}]}
    assert _refused(rule, _pinned_service(mounted, filled), MEMBER) != []
    assert _refused(rule, _pinned_service({"env": _writer_env()}, {"initContainers": filled["initContainers"]}), MEMBER)
    beside = _pinned_service({"env": _writer_env()}, {})
    beside["spec"]["transformer"]["containers"].append({"name": "spy", "image": INTERNAL, "env": _writer_env()})
    assert _refused(rule, beside, MEMBER) != []


def test_a_secret_named_at_run_time_is_denied(rule: admission.Policy) -> None:
    """Argo fills `{{...}}` in before the pod is made: a Secret reference or an artifact's credentials
    from a parameter, or a podSpecPatch built from one, may come to name the writer's Secret."""
    parameter = "{{workflow.parameters.key}}"
    from_parameter = ATTACKS["Workflow"]({"envFrom": [{"secretRef": {"name": parameter}}]}, {})
    artifact = {
        "name": "out",
        "path": "/tmp/x",
        "s3": {"key": "fraud/x", "accessKeySecret": {"name": parameter, "key": "a"}},
    }
    output = _workflow("Workflow", {"container": {"image": INTERNAL}, "outputs": {"artifacts": [artifact]}})
    patched = _workflow("Workflow", {"container": {"image": INTERNAL}, "podSpecPatch": parameter})
    for attack in (from_parameter, output, patched):
        assert _refused(rule, attack, MEMBER) != [], attack
    literal = copy.deepcopy(artifact)
    literal["s3"]["accessKeySecret"]["name"] = SECRET  # Argo's executor would write with it
    output["spec"]["templates"][0]["outputs"]["artifacts"] = [literal]
    assert _refused(rule, output, MEMBER) != []
    own = copy.deepcopy(output)
    own["spec"]["templates"][0]["outputs"]["artifacts"][0]["s3"]["accessKeySecret"]["name"] = "tenant-s3-credentials"
    assert _refused(rule, own, MEMBER) == []  # the tenant's own key stays usable


def test_without_the_rule_the_attack_is_admitted(rule: admission.Policy, installed: admission.PolicySet) -> None:
    """Negative control: with the mention rule taken out of the rego, the member's Workflow with the
    Secret as AWS_* is admitted; and no other installed Constraint refuses it, so this policy is the
    one thing between a member and the decision log."""
    assert rule.name in {p.name for p in installed.policies}, "the platform installs it"
    broken = without_paragraph(rule, "some path in mentions")
    others = admission.PolicySet(policies=[p for p in installed.policies if p.name != rule.name])
    assert len(others.policies) == len(installed.policies) - 1
    attacks = [ATTACKS[name](*copy.deepcopy(LOADS[load])) for name in ("Workflow", "CronWorkflow", "Pod")
               for load in LOADS]  # fmt: skip
    for attack in attacks:
        assert _refused(rule, attack, MEMBER) != []
        assert _refused(broken, attack, MEMBER) == []
        assert others.violations(attack, user=MEMBER) == []
        assert installed.violations(attack, user=MEMBER) != []


def test_the_rules_file_is_one_the_overlays_install() -> None:
    """The Constraint reaches the cluster: manifests/policies/kustomization.yaml lists the file."""
    kustomization = yaml.safe_load((admission.POLICY_DIR / "kustomization.yaml").read_text())
    assert FILE in kustomization["resources"]


def test_without_the_bare_transformer_rule_a_members_code_runs_with_the_key(rule: admission.Policy) -> None:
    """Negative control of the transformer's exception: without its conditions on volumes, mounts and
    init containers, a member's code in an image volume on PYTHONPATH, under promote's own image and
    command, gets the key."""
    template = copy.deepcopy(rule.template)
    target = template["spec"]["targets"][0]
    conditions = (
        '  count(object.get(transformer, "volumes", [])) == 0\n'
        '  count(object.get(transformer, "initContainers", [])) == 0\n'
        '  every container in object.get(transformer, "containers", []) {\n'
        '    count(object.get(container, "volumeMounts", [])) == 0\n'
        "  }\n"
    )
    assert target["rego"].count(conditions) == 1
    target["rego"] = target["rego"].replace(conditions, "")
    weak = admission.Policy(template=template, constraint=rule.constraint)
    code = {"name": "code", "image": {"reference": "registry.mlops.internal/fraud/mine:1"}}
    mounted = {"env": [*_writer_env(), {"name": "PYTHONPATH", "value": "/code"}],
               "volumeMounts": [{"name": "code", "mountPath": "/code"}]}  # fmt: skip
    attack = _pinned_service(mounted, {"volumes": [code]})
    assert _refused(rule, attack, MEMBER) != []
    assert _refused(weak, attack, MEMBER) == []
