"""The platform's Gatekeeper policies, evaluated before anything reaches the cluster.

The Rego comes out of the ConstraintTemplates in manifests/policies, the parameters and the
kinds out of their Constraints: exactly what the cluster's Gatekeeper enforces, run on the real
OPA engine (opa-golib-python-bindings embeds OPA v1). `mlops lint` checks every rendered object
with it; `mlops promote` refuses an InferenceService with the message Gatekeeper would give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.errors import ComponentError

POLICY_DIR = Path(__file__).resolve().parents[1] / "manifests" / "policies"


def _engine(rego: str, package: str) -> Any:
    try:
        from opa_bindings import OpaEngine
    except ImportError as error:
        raise ComponentError(
            "admission",
            "the OPA engine (opa-golib-python-bindings) is not installed",
            "make install (it installs opa-golib-python-bindings with --no-deps --ignore-requires-python)",
        ) from error
    engine = OpaEngine()
    engine.add_policy(f"{package}.rego", rego)
    return engine


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


@dataclass(kw_only=True)
class Policy:
    """One ConstraintTemplate with one of its Constraints."""

    template: dict[str, Any]
    constraint: dict[str, Any]
    engine: Any = field(init=False, repr=False)
    package: str = field(init=False)

    def __post_init__(self) -> None:
        rego: str = self.template["spec"]["targets"][0]["rego"]
        self.package = rego.split("package ", 1)[1].split()[0]
        self.engine = _engine(rego, self.package)

    @property
    def name(self) -> str:
        return str(self.constraint["metadata"]["name"])

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.constraint["spec"].get("parameters", {}))

    def matches(self, obj: dict[str, Any]) -> bool:
        """Gatekeeper's match.kinds and match.namespaces / excludedNamespaces."""
        match = self.constraint["spec"].get("match", {})
        group, kind = _group(obj.get("apiVersion", "")), obj.get("kind", "")
        kinds = match.get("kinds")
        if kinds and not any(self._kind_matches(entry, group, kind) for entry in kinds):
            return False
        namespace = obj.get("metadata", {}).get("namespace", "")
        if match.get("namespaces") and namespace not in match["namespaces"]:
            return False
        return namespace not in match.get("excludedNamespaces", [])

    @staticmethod
    def _kind_matches(entry: dict[str, Any], group: str, kind: str) -> bool:
        groups = entry.get("apiGroups", [""])
        return kind in entry.get("kinds", []) and ("*" in groups or group in groups)

    def violations(self, obj: dict[str, Any], parameters: dict[str, Any] | None = None) -> list[str]:
        version = obj.get("apiVersion", "").rsplit("/", 1)[-1]
        review = {
            "review": {
                "object": obj,
                "kind": {"group": _group(obj.get("apiVersion", "")), "version": version, "kind": obj.get("kind")},
                "namespace": obj.get("metadata", {}).get("namespace", ""),
                "name": obj.get("metadata", {}).get("name", ""),
                "operation": "CREATE",
            },
            "parameters": self.parameters if parameters is None else parameters,
        }
        return sorted(v["msg"] for v in self.engine.eval_document(f"{self.package}.violation", review))


def load_policies(directory: Path = POLICY_DIR) -> list[Policy]:
    """Every (ConstraintTemplate, Constraint) pair in the YAML files of a folder."""
    if not directory.is_dir():
        raise ComponentError("admission", f"no policy folder at {directory}", "pass --policies manifests/policies")
    documents = [d for file in sorted(directory.glob("*.yaml")) for d in yaml.safe_load_all(file.read_text()) if d]
    templates = {
        t["spec"]["crd"]["spec"]["names"]["kind"]: t for t in documents if t.get("kind") == "ConstraintTemplate"
    }
    constraints = [d for d in documents if d.get("apiVersion", "").startswith("constraints.gatekeeper.sh/")]
    policies = []
    for constraint in constraints:
        if constraint["kind"] not in templates:
            raise ComponentError(
                "admission",
                f"constraint {constraint['metadata']['name']} of kind {constraint['kind']} has no ConstraintTemplate",
                f"add the template to {directory}",
            )
        policies.append(Policy(template=templates[constraint["kind"]], constraint=constraint))
    return policies


def policy(file: Path) -> Policy:
    """The single policy a file declares (for tests of one rule)."""
    documents = [d for d in yaml.safe_load_all(file.read_text()) if d]
    template = next(d for d in documents if d.get("kind") == "ConstraintTemplate")
    constraint = next(d for d in documents if d.get("apiVersion", "").startswith("constraints.gatekeeper.sh/"))
    return Policy(template=template, constraint=constraint)


class PolicySet:
    """All of the platform's policies; `violations` says what Gatekeeper would deny, and why."""

    def __init__(self, directory: Path = POLICY_DIR) -> None:
        self.policies = load_policies(directory)

    def violations(self, obj: dict[str, Any]) -> list[str]:
        found = []
        for rule in self.policies:
            if rule.matches(obj) and rule.constraint["spec"].get("enforcementAction", "deny") == "deny":
                found += [f"[{rule.name}] {message}" for message in rule.violations(obj)]
        return found
