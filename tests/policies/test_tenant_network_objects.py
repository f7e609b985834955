"""Tenants write only the NetworkPolicy and AuthorizationPolicy promote renders (issue 29), on OPA.

issue 29: `mlops promote` applies, beside each InferenceService, the AuthorizationPolicy and
NetworkPolicy of components/steps/serving_authorization.py, so the tenant's pipeline-submitter Role may
create and update both kinds in its namespace. That let a member write `egress: [{}]` (undoing the
namespace's default-deny egress), rewrite the shipped `default-deny`, or open its models to anyone.
manifests/policies/tenant-network-objects.yaml admits, in the tenant namespaces and from anyone
but the platform's deployers, exactly the shape serving_authorization renders (its parameters are
read off a rendered pair: mlops/admission_parameters.py). Positive control first (what promote
renders for the fraud and forecast pipelines, with and without callers, explain and expose, and the
shipped policies as the platform applies them), then the forbidden objects refused, then the
control broken on purpose (the template without its egress rule admits `egress: [{}]`).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest

from components.steps.serving_authorization import ISVC_LABEL, serving_objects
from mlops import admission, admission_parameters
from tests.conftest import REGISTRATION, REPO
from tests.policies.platform_objects import Rendered
from tests.policies.policy_files import POLICIES, policy

FILE = POLICIES / "tenant-network-objects.yaml"
MEMBER = "fraud-member"
FIX = "write it with mlops promote"


def _variants() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, promote overrides, explain settings) for each case serving_authorization renders."""
    return [
        ("as configured", {}, {}),
        ("callers", {"callers": ["pricing/scorer", "payments/*"]}, {}),
        ("expose", {"expose": True}, {}),
        ("explain, own namespace", {}, {"enabled": True}),
        ("explain for callers, exposed", {"expose": True, "callers": ["pricing/*"]},
         {"enabled": True, "callers": ["audit/reader"]}),
    ]  # fmt: skip


@functools.cache
def _promoted() -> tuple[Rendered, ...]:
    from components.config import transformer_settings
    from components.steps.promote import render_inference_service
    from pipelines.golden import reference_pipelines
    from pipelines.local import declaration

    found = []
    for name in reference_pipelines():
        pipeline = declaration(name)
        cfg = pipeline.config()
        for variant, overrides, explain in _variants():
            settings = cfg.promote.model_copy(update=overrides)
            described = transformer_settings(cfg, pipeline.spec.image)
            scoring = described.scoring.model_copy(
                update={"explain": described.scoring.explain.model_copy(update=explain)}
            )
            described = described.model_copy(update={"scoring": scoring})
            service = render_inference_service(
                dict(REGISTRATION),  # type: ignore[arg-type]
                storage_uri=f"s3://models/{settings.namespace}/x/1",
                settings=settings,
                canary_percent=cfg.promote.canary_percent,
                transformer=described,
            )
            for obj in serving_objects(service, settings, described)[1:]:
                found.append(Rendered(f"mlops promote {name} ({variant})", obj, f"{settings.namespace}-member"))
    return tuple(found)


def promoted() -> list[Rendered]:
    """The AuthorizationPolicies and NetworkPolicies promote renders for the reference pipelines."""
    return copy.deepcopy(list(_promoted()))


def _review(
    obj: dict[str, Any],
    user: str | None,
    groups: list[str] | None = None,
    old: dict[str, Any] | None = None,
    rule: admission.Policy | None = None,
) -> list[str]:
    """The rule (the shipped one unless given) on a CREATE (an UPDATE of `old`) by `user` (None:
    Gatekeeper's audit) in `groups`."""
    rule = rule or policy(FILE.name)
    assert rule.matches(obj), obj["metadata"]
    request: dict[str, Any] = {"object": obj, "operation": "CREATE", "namespace": obj["metadata"]["namespace"]}
    if old is not None:
        request.update(operation="UPDATE", oldObject=old)
    if user is not None:
        request["userInfo"] = {"username": user, "groups": groups or []}
    found = rule.engine.eval_document(f"{rule.package}.violation", {"review": request, "parameters": rule.parameters})
    return sorted(v["msg"] for v in found)


def _fraud_network_policy() -> dict[str, Any]:
    return next(r.obj for r in promoted() if r.obj["kind"] == "NetworkPolicy" and "fraud" in r.source)


def _fraud_authorization_policy() -> dict[str, Any]:
    return next(r.obj for r in promoted() if r.obj["kind"] == "AuthorizationPolicy" and "fraud" in r.source)


def _shipped() -> list[dict[str, Any]]:
    from tests.rendered_manifests import render

    return [o for o in render(REPO / "manifests" / "tenants" / "fraud") if o["kind"] == "NetworkPolicy"]


def test_the_parameters_are_read_off_what_promote_renders_and_the_constraint_is_in_step() -> None:
    """One source: the label, suffix, ports and action of serving_authorization; the shipped names of
    manifests/tenants; the tenant namespaces of tenants.yaml (make golden keeps the file in step)."""
    from pipelines.tenancy import load

    parameters = admission_parameters.tenant_network_parameters()
    assert parameters["inferenceServiceLabel"] == ISVC_LABEL and parameters["nameSuffix"] == "-callers"
    assert {"default-deny", "allow-platform-egress", "redis-from-own-namespace"} <= set(parameters["shippedNames"])
    assert not any(n.endswith(parameters["nameSuffix"]) for n in parameters["shippedNames"])  # never a promote name
    assert FILE not in admission_parameters.sync_parameters(POLICIES, write=False)
    assert policy(FILE.name).parameters == parameters
    assert policy(FILE.name).constraint["spec"]["match"]["namespaces"] == load(REPO / "manifests").names


def test_what_promote_renders_and_the_shipped_policies_are_admitted() -> None:
    """Positive control: every AuthorizationPolicy and NetworkPolicy promote renders for fraud and
    forecast (with and without callers, explain and expose) as a member, and in Gatekeeper's audit;
    the shipped NetworkPolicies as a deployer and in the audit."""
    rendered = promoted()
    assert {r.source.split(" (")[0] for r in rendered} == {"mlops promote fraud", "mlops promote forecast"}
    assert len(rendered) == 2 * 2 * len(_variants())
    from components.steps.serving_authorization import metrics_scrape_rule

    scraped = [
        r
        for r in rendered
        if r.obj["kind"] == "AuthorizationPolicy" and metrics_scrape_rule() in r.obj["spec"]["rules"]
    ]
    assert scraped, "no rendered policy carries Prometheus's scrape rule: the open rule is not under test"
    for item in rendered:
        assert _review(item.obj, item.user) == [], item.name
        assert _review(item.obj, None) == [], item.name
    shipped = _shipped()
    assert {"default-deny", "allow-platform-egress"} <= {o["metadata"]["name"] for o in shipped}
    for obj in shipped:
        assert _review(obj, "alice", ["system:masters"]) == [], obj["metadata"]["name"]
        assert _review(obj, "alice", ["kubeadm:cluster-admins"]) == [], obj["metadata"]["name"]
        assert _review(obj, None) == [], obj["metadata"]["name"]


def _forbidden() -> list[tuple[str, dict[str, Any], str]]:
    network, authorization = _fraud_network_policy(), _fraud_authorization_policy()
    cases = []

    def case(name: str, base: dict[str, Any], edit: Any, said: str) -> None:
        obj = copy.deepcopy(base)
        edit(obj)
        cases.append((name, obj, said))

    case(
        "egress [{}]",
        network,
        lambda o: o["spec"].update(policyTypes=["Ingress", "Egress"], egress=[{}]),
        "may not carry egress rules",
    )
    case("egress without Egress", network, lambda o: o["spec"].update(egress=[{}]), "may not carry egress rules")
    case("every pod", network, lambda o: o["spec"].update(podSelector={}), "must select exactly one InferenceService")
    case(
        "another label too",
        network,
        lambda o: o["spec"]["podSelector"]["matchLabels"].update(app="redis"),
        "must select exactly one InferenceService",
    )
    case(
        "overwrite default-deny",
        network,
        lambda o: o["metadata"].update(name="default-deny"),
        "its name is the platform's (default-deny)",
    )
    case(
        "a pod peer",
        network,
        lambda o: o["spec"]["ingress"][0]["from"].append({"podSelector": {}}),
        "peer 1 must be namespaces named by",
    )
    case(
        "every namespace",
        network,
        lambda o: o["spec"]["ingress"][0].update({"from": [{"namespaceSelector": {}}]}),
        "peer 0 must be namespaces named by",
    )
    case("from anyone", network, lambda o: o["spec"]["ingress"][0].pop("from"), "must name who it admits")
    case("any port", network, lambda o: o["spec"]["ingress"][0].pop("ports"), "must open only the serving ports")
    case("no selector", authorization, lambda o: o["spec"].pop("selector"), "must select exactly one")
    case(
        "CUSTOM provider",
        authorization,
        lambda o: o["spec"].update(action="CUSTOM", provider={"name": "x"}),
        "action must be ALLOW",
    )
    case("DENY", authorization, lambda o: o["spec"].update(action="DENY"), "action must be ALLOW")
    case("from anyone (rule)", authorization, lambda o: o["spec"]["rules"].append({}), "rule 3 must name who")
    # Prometheus's scrape rule, exactly as promote renders it, is admitted (what promote renders,
    # above); widened by a path or a verb, or opened to callers with an identity, it is refused
    from components.steps.serving_authorization import metrics_scrape_rule

    scrape = metrics_scrape_rule()
    assert scrape in admission_parameters.tenant_network_parameters()["openRules"]
    operation = scrape["to"][0]["operation"]

    def widened(**changed: Any) -> dict[str, Any]:
        return {**scrape, "to": [{"operation": {**operation, **changed}}]}

    case("the scrape rule, any path", authorization, lambda o: o["spec"]["rules"].append(widened(paths=["/*"])),
         "rule 3 source 0 may name only namespaces and principals")  # fmt: skip
    case("the scrape rule, POST too", authorization,
         lambda o: o["spec"]["rules"].append(widened(methods=["GET", "POST"])),
         "rule 3 source 0 may name only namespaces and principals")  # fmt: skip
    case("the scrape rule, another port", authorization,
         lambda o: o["spec"]["rules"].append(widened(ports=["8012"])),
         "rule 3 source 0 may name only namespaces and principals")  # fmt: skip
    case("the scrape rule, to mTLS callers too", authorization,
         lambda o: o["spec"]["rules"].append({"to": scrape["to"]}), "rule 3 must name who")  # fmt: skip
    case(
        "any principal",
        authorization,
        lambda o: o["spec"]["rules"][0]["from"].append({"source": {"principals": ["*"]}}),
        "no wildcard",
    )
    case(
        "notNamespaces",
        authorization,
        lambda o: o["spec"]["rules"][0]["from"].append({"source": {"notNamespaces": ["fraud"]}}),
        "no wildcard",
    )
    case("other name", authorization, lambda o: o["metadata"].update(name="open"), "its name must be")

    def generated(o: dict[str, Any]) -> None:  # no name yet: the violation must not be lost with it
        o["metadata"]["generateName"] = o["metadata"].pop("name")
        o["spec"]["egress"] = [{}]

    case("generateName", network, generated, "may not carry egress rules")
    return cases


def _forbidden_names() -> list[str]:
    names = [name for name, _, _ in _forbidden()]
    assert len(set(names)) == len(names), names  # each case is found by its name
    return names


@pytest.mark.parametrize("case", _forbidden_names())
def test_a_member_widening_the_network_or_the_callers_is_refused(case: str) -> None:
    """issue 29: egress rules, a NetworkPolicy on every pod, the shipped default-deny overwritten,
    peers or ports beyond the serving ones, an AuthorizationPolicy with no selector, a CUSTOM
    provider, DENY, a rule from anyone, an object with no name yet (generateName): each refused,
    naming the problem and the fix."""
    obj, said = next((obj, said) for name, obj, said in _forbidden() if name == case)
    denied = _review(obj, MEMBER)
    assert denied and any(said in m and FIX in m for m in denied), (case, denied)


def test_a_member_updating_the_shipped_default_deny_or_its_own_policy_wider_is_refused() -> None:
    """issue 29: an UPDATE is judged as a CREATE: the shipped default-deny rewritten to admit all
    egress is refused to a member (admitted as the deployer applies it); a member's own `-callers`
    NetworkPolicy updated in place to carry egress is refused, updated as promote renders it is not."""
    (default_deny,) = [o for o in _shipped() if o["metadata"]["name"] == "default-deny"]
    opened = copy.deepcopy(default_deny)
    opened["spec"]["egress"] = [{}]
    assert _review(default_deny, "alice", ["system:masters"], old=default_deny) == []
    assert any("its name is the platform's (default-deny)" in m for m in _review(opened, MEMBER, old=default_deny))
    network = _fraud_network_policy()
    assert _review(network, MEMBER, old=network) == []
    wider = copy.deepcopy(network)
    wider["spec"]["egress"] = [{}]
    assert any("may not carry egress rules" in m for m in _review(wider, MEMBER, old=network))


def test_the_audit_sees_a_stored_widening_but_leaves_the_shipped_names_alone() -> None:
    """Gatekeeper's audit has no requester: a stored `-callers` NetworkPolicy with egress is
    reported; the shipped policies are not (only a deployer writes them)."""
    network = _fraud_network_policy()
    network["spec"]["egress"] = [{}]
    assert any("may not carry egress rules" in m for m in _review(network, None))
    (default_deny,) = [o for o in _shipped() if o["metadata"]["name"] == "default-deny"]
    assert _review(default_deny, None) == []
    assert any("its name is the platform's" in m for m in _review(default_deny, MEMBER))


def test_the_template_without_its_egress_rule_admits_egress_for_everyone() -> None:
    """The control broken on purpose: the same template with the egress rule taken out (and
    policyTypes not checked) admits the `egress: [{}]` the test above refuses."""
    network = _fraud_network_policy()
    network["spec"].update(policyTypes=["Ingress", "Egress"], egress=[{}])
    assert _review(network, MEMBER) != []
    rule = policy(FILE.name)
    rego = rule.template["spec"]["targets"][0]["rego"]
    start = rego.index('problems contains sprintf("policyTypes must be')
    end = rego.index('problems contains sprintf("ingress rule %d must name who')
    broken_template = copy.deepcopy(rule.template)
    broken_template["spec"]["targets"][0]["rego"] = rego[:start] + rego[end:]
    broken = admission.Policy(template=broken_template, constraint=rule.constraint)
    assert broken.parameters == rule.parameters
    every_pod = _fraud_network_policy()
    every_pod["spec"]["podSelector"] = {}
    # still live: the broken template refuses what its other rules cover, and admits what promote renders
    assert any("must select exactly one InferenceService" in m for m in _review(every_pod, MEMBER, rule=broken))
    assert _review(_fraud_network_policy(), MEMBER, rule=broken) == []
    assert _review(network, MEMBER, rule=broken) == []  # yet the egress goes through


def test_the_policy_reviews_only_the_tenant_namespaces() -> None:
    """Matched by kind and by the tenant namespaces: the shared namespaces' policies are not its."""
    network = _fraud_network_policy()
    assert policy(FILE.name).matches(network)
    network["metadata"]["namespace"] = "mlops-pipelines"
    assert not policy(FILE.name).matches(network)
