"""The rendered platform every journey test checks against: each overlay with every tenant, and
the one function that says which check (RBAC, admission, schema, network) refuses a journey.

Test code standing in for a cluster: RBAC, NetworkPolicy and admission are evaluated here on what
`kubectl kustomize` renders; see each evaluator's module for what it models."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import yaml

from mlops import admission
from mlops.lint import check
from tests.cluster.journeys import REPO, Journey
from tests.cluster.rbac_evaluator_without_apiserver import Identity, Rbac
from tests.manifests.networkpolicy_evaluator_without_cni import Address, Evaluator, Pod
from tests.rendered_manifests import render

MANIFESTS = REPO / "manifests"
TENANTS = sorted(p.parent.name for p in (MANIFESTS / "tenants").glob("*/namespace.yaml"))
FLOWS = yaml.safe_load((MANIFESTS / "base" / "network" / "required-flows.yaml").read_text())
NAME = "kubernetes.io/metadata.name"
API_SERVER_PORT = 443


@dataclass(frozen=True)
class Platform:
    """One overlay with every tenant, as rendered, and what each check reads of it."""

    overlay: str
    objects: list[dict[str, Any]]
    rbac: Rbac
    policies: list[admission.Policy]
    network: Evaluator
    namespaces: dict[str, dict[str, str]]


def installed_policies(objects: list[dict[str, Any]]) -> list[admission.Policy]:
    """The Gatekeeper policies the overlay installs: each rendered Constraint with its rendered template."""
    templates = {t["spec"]["crd"]["spec"]["names"]["kind"]: t for t in objects if t.get("kind") == "ConstraintTemplate"}
    constraints = [o for o in objects if o.get("apiVersion", "").startswith("constraints.gatekeeper.sh/")]
    # a Constraint whose template is not rendered has no CRD to be created with: nothing enforces it
    # (tests/manifests holds every policy file to being rendered by both overlays)
    return [
        admission.Policy(template=templates[c["kind"]], constraint=c) for c in constraints if c["kind"] in templates
    ]


def load(overlay: str) -> Platform:
    objects = render(MANIFESTS / "overlays" / overlay)
    for tenant in TENANTS:
        objects += render(MANIFESTS / "tenants" / tenant)
    namespaces = {
        o["metadata"]["name"]: {**o["metadata"].get("labels", {}), NAME: o["metadata"]["name"]}
        for o in objects
        if o["kind"] == "Namespace"
    }
    # the operators' and the cluster's namespaces: named by the flows, or holding a rendered object
    named = [e.get("namespace", "") for e in FLOWS["endpoints"].values()]
    for name in [*named, *(o["metadata"].get("namespace", "") for o in objects)]:
        if name and not name.startswith("{"):
            namespaces.setdefault(name, {NAME: name})
    network = Evaluator([o for o in objects if o["kind"] == "NetworkPolicy"])
    return Platform(overlay, objects, Rbac.of(objects), installed_policies(objects), network, namespaces)


# --- the checks -------------------------------------------------------------------------------------
def endpoint(platform: Platform, name: str, tenant: str) -> Pod | Address:
    declared = FLOWS["endpoints"][name]
    if "address" in declared:
        return Address(declared["address"])
    namespace = tenant if declared["namespace"].startswith("{") else declared["namespace"]
    return Pod(namespace, dict(declared["labels"]), platform.namespaces[namespace])


def refusal(platform: Platform, who: Identity, journey: Journey, tenant: str) -> str | None:
    """Which check refuses the journey, in the order a cluster makes them, and why; None if none does."""
    if journey.request is not None and not platform.rbac.allows(who, journey.request):
        return f"RBAC: {who} may not {journey.request}"
    obj = journey.creates
    if obj is not None:
        denied = [
            f"[{p.name}] {m}"
            for p in platform.policies
            if p.matches(obj) and p.constraint["spec"].get("enforcementAction", "deny") == "deny"
            for m in p.violations(obj)
        ]
        if denied:
            return f"admission: {obj['kind']} {obj['metadata'].get('name')}: {denied}"
        problem = check(obj)
        if problem:
            return f"schema: {obj['kind']} {obj['metadata'].get('name')}: {problem}"
    if journey.hop is not None:
        source, target = (endpoint(platform, n, tenant) for n in journey.hop)
        if not platform.network.allowed(source, target, API_SERVER_PORT):
            return f"network: {journey.hop[0]} -> {journey.hop[1]}:{API_SERVER_PORT} in {tenant}"
    if journey.flow is not None:
        source, target, port = journey.flow
        if not platform.network.allowed(source, target, port):
            return f"network: {source} -> {target}:{port}"
    return None


def closed(platform: Platform, namespace: str) -> Platform:
    """Broken on purpose: the namespace's NetworkPolicies replaced by a default deny of both directions."""
    deny = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "broken-on-purpose", "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    kept = [p for p in platform.network.policies if p["metadata"].get("namespace") != namespace]
    return replace(platform, network=Evaluator([*kept, deny]))
