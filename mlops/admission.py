"""The platform's Gatekeeper policies, evaluated before anything reaches the cluster.

The Rego comes out of the ConstraintTemplates in manifests/policies, the parameters and the
kinds out of their Constraints: exactly what the cluster's Gatekeeper enforces, run on the real
OPA engine (opa-golib-python-bindings embeds OPA v1). `mlops lint` checks every rendered object
with it; `mlops promote` refuses an InferenceService with the message Gatekeeper would give.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.errors import ComponentError
from pipelines.workload_kinds import WORKLOAD_KINDS  # one list, in the lower layer; re-exported here

__all__ = [
    "POLICY_DIR",
    "WORKLOAD_LIBRARY",
    "Policy",
    "PolicySet",
    "load_policies",
    "policies_of",
    "policy",
    "sync_workload_library",
    "write_back",
]

POLICY_DIR = Path(__file__).resolve().parents[1] / "manifests" / "policies"
WORKLOAD_LIBRARY = POLICY_DIR / "lib" / "workloads.rego"


def _engine(rego: str, package: str, libraries: list[str] | None = None) -> Any:
    try:
        from opa_bindings import OpaEngine
    except ImportError as error:
        raise ComponentError(
            "admission",
            "the OPA engine (opa-golib-python-bindings) is not installed",
            "make install (it installs opa-golib-python-bindings with --no-deps --ignore-requires-python)",
        ) from error
    engine = OpaEngine()
    for index, library in enumerate(libraries or []):
        engine.add_policy(f"{package}.lib{index}.rego", library)
    engine.add_policy(f"{package}.rego", rego)
    return engine


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _glob(pattern: str, name: str) -> bool:
    """Gatekeeper's namespace wildcard: `kube-*` (prefix), `*-system` (suffix) or an exact name."""
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return name.endswith(pattern[1:])
    return name == pattern


@dataclass(kw_only=True)
class Policy:
    """One ConstraintTemplate with one of its Constraints."""

    template: dict[str, Any]
    constraint: dict[str, Any]
    engine: Any = field(init=False, repr=False)
    package: str = field(init=False)

    def __post_init__(self) -> None:
        target = self.template["spec"]["targets"][0]
        rego: str = target["rego"]
        self.package = rego.split("package ", 1)[1].split()[0]
        self.engine = _engine(rego, self.package, list(target.get("libs", [])))

    @property
    def name(self) -> str:
        return str(self.constraint["metadata"]["name"])

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.constraint["spec"].get("parameters", {}))

    def matches(self, obj: dict[str, Any]) -> bool:
        """Gatekeeper's match.kinds and match.namespaces / excludedNamespaces: a Namespace is
        matched by its name, a cluster-scoped object by neither list (Gatekeeper cannot
        disqualify it), names by a leading or trailing `*` glob."""
        match = self.constraint["spec"].get("match", {})
        group, kind = _group(obj.get("apiVersion", "")), obj.get("kind", "")
        kinds = match.get("kinds")
        if kinds and not any(self._kind_matches(entry, group, kind) for entry in kinds):
            return False
        metadata = obj.get("metadata", {})
        namespace = metadata.get("name", "") if kind == "Namespace" and not group else metadata.get("namespace", "")
        if not namespace:
            return True
        if match.get("namespaces") and not any(_glob(p, namespace) for p in match["namespaces"]):
            return False
        return not any(_glob(p, namespace) for p in match.get("excludedNamespaces", []))

    @staticmethod
    def _kind_matches(entry: dict[str, Any], group: str, kind: str) -> bool:
        groups = entry.get("apiGroups", [""])
        return kind in entry.get("kinds", []) and ("*" in groups or group in groups)

    def violations(
        self,
        obj: dict[str, Any],
        parameters: dict[str, Any] | None = None,
        *,
        user: str | None = None,
        groups: Sequence[str] = (),
        old: dict[str, Any] | None = None,
    ) -> list[str]:
        """What the rule denies; `user` is the requester (review.userInfo.username), None for a
        review with no request (Gatekeeper's audit, gator); `groups` its groups (userInfo.groups);
        `old` the stored object an UPDATE replaces (review.oldObject), None for a CREATE. A review
        with neither a user nor `old` is the audit's: like Gatekeeper's, it has no operation."""
        version = obj.get("apiVersion", "").rsplit("/", 1)[-1]
        request: dict[str, Any] = {
            "object": obj,
            "kind": {"group": _group(obj.get("apiVersion", "")), "version": version, "kind": obj.get("kind")},
            "namespace": obj.get("metadata", {}).get("namespace", ""),
            "name": obj.get("metadata", {}).get("name", ""),
        }
        if old is not None or user is not None:  # Gatekeeper's audit sends no operation (nor oldObject)
            request["operation"] = "CREATE" if old is None else "UPDATE"
        if old is not None:
            request["oldObject"] = old
        if user is not None:
            request["userInfo"] = {"username": user, **({"groups": list(groups)} if groups else {})}
        review = {"review": request, "parameters": self.parameters if parameters is None else parameters}
        return sorted(v["msg"] for v in self.engine.eval_document(f"{self.package}.violation", review))


def load_policies(directory: Path = POLICY_DIR) -> list[Policy]:
    """Every (ConstraintTemplate, Constraint) pair in the YAML files of a folder."""
    if not directory.is_dir():
        raise ComponentError("admission", f"no policy folder at {directory}", "pass --policies manifests/policies")
    documents = [d for file in sorted(directory.glob("*.yaml")) for d in yaml.safe_load_all(file.read_text()) if d]
    return policies_of(documents, str(directory))


def policies_of(documents: list[dict[str, Any]], where: str = "the rendered manifests") -> list[Policy]:
    """Every (ConstraintTemplate, Constraint) pair among rendered objects (an overlay's, as installed)."""
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
                f"add the template to {where}",
            )
        policies.append(Policy(template=templates[constraint["kind"]], constraint=constraint))
    return policies


def policy(file: Path) -> Policy:
    """The single policy a file declares (for tests of one rule); its Constraint may live in a file
    of its own beside it (a rendered one: manifests/policies/restricted-scheduling-constraint.yaml)."""
    documents = [d for d in yaml.safe_load_all(file.read_text()) if d]
    template = next(d for d in documents if d.get("kind") == "ConstraintTemplate")
    kind = template["spec"]["crd"]["spec"]["names"]["kind"]
    siblings = [d for other in sorted(file.parent.glob("*.yaml")) for d in yaml.safe_load_all(other.read_text()) if d]
    constraint = next(
        d
        for d in documents + siblings
        if d.get("apiVersion", "").startswith("constraints.gatekeeper.sh/") and d["kind"] == kind
    )
    return Policy(template=template, constraint=constraint)


class PolicySet:
    """All of the platform's policies; `violations` says what Gatekeeper would deny, and why."""

    def __init__(self, directory: Path = POLICY_DIR, *, policies: list[Policy] | None = None) -> None:
        self.policies = load_policies(directory) if policies is None else policies

    def violations(
        self,
        obj: dict[str, Any],
        *,
        user: str | None = None,
        groups: Sequence[str] = (),
        old: dict[str, Any] | None = None,
    ) -> list[str]:
        found = []
        for rule in self.policies:
            if rule.matches(obj) and rule.constraint["spec"].get("enforcementAction", "deny") == "deny":
                denied = rule.violations(obj, user=user, groups=groups, old=old)
                found += [f"[{rule.name}] {message}" for message in denied]
        return found


def _flow_entry(entry: dict[str, list[str]]) -> Any:
    """A match.kinds entry written as `{apiGroups: [...], kinds: [...]}` on one line, as by hand."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    mapping = CommentedMap()
    for key, values in entry.items():
        sequence = CommentedSeq(values)
        sequence.fa.set_flow_style()
        mapping[key] = sequence
    mapping.fa.set_flow_style()
    return mapping


def write_back(directory: Path, update: Callable[[Any], bool], *, write: bool = True) -> list[Path]:
    """Round-trip every YAML file in `directory` through ruamel (comments, quotes, flow style and
    the house indent kept), call `update` on each of its documents (True: it changed that document
    in place), and write back the files a document changed. Returns those files; with write=False
    only reports them (the golden tests). The one writer of generated policy fields."""
    import io

    from ruamel.yaml import YAML

    handler = YAML()
    handler.preserve_quotes = True
    handler.width = 4096
    handler.indent(mapping=2, sequence=4, offset=2)
    stale = []
    for file in sorted(directory.glob("*.yaml")):
        documents = list(handler.load_all(file.read_text()))
        changed = [update(document) for document in documents if document]
        if any(changed):
            stale.append(file)
            if write:
                out = io.StringIO()
                handler.dump_all(documents, out)
                file.write_text(out.getvalue())
    return stale


def sync_workload_library(directory: Path = POLICY_DIR, *, write: bool = True) -> list[Path]:
    """Copy lib/workloads.rego into every template that imports it, and WORKLOAD_KINDS into its
    Constraint's match (Gatekeeper has no shared libraries across templates). Returns the files
    that were out of date; with write=False only reports them (the golden test)."""
    from ruamel.yaml.scalarstring import LiteralScalarString

    library = WORKLOAD_LIBRARY.read_text()
    rego = {  # each template's rego by its Constraint kind, whichever file holds the Constraint
        d["spec"]["crd"]["spec"]["names"]["kind"]: d["spec"]["targets"][0]["rego"]
        for file in sorted(directory.glob("*.yaml"))
        for d in yaml.safe_load_all(file.read_text())
        if d and d.get("kind") == "ConstraintTemplate"
    }

    def update(document: Any) -> bool:
        if document.get("kind") == "ConstraintTemplate":
            target = document["spec"]["targets"][0]
            if "data.lib.workloads" in target["rego"] and list(target.get("libs", [])) != [library]:
                target["libs"] = [LiteralScalarString(library)]
                return True
        elif str(document.get("apiVersion", "")).startswith("constraints.gatekeeper.sh/") and (
            "data.lib.workloads" in rego.get(str(document["kind"]), "")
        ):
            match = document["spec"].setdefault("match", {})
            if json.loads(json.dumps(match.get("kinds"))) != WORKLOAD_KINDS:
                match["kinds"] = [_flow_entry(entry) for entry in WORKLOAD_KINDS]
                return True
        return False

    return write_back(directory, update, write=write)


if __name__ == "__main__":  # make golden: workload policies in step with lib/workloads.rego, parameters with theirs
    from mlops.admission_parameters import sync_parameters

    for stale_file in sync_workload_library() + sync_parameters(POLICY_DIR):
        print(stale_file)
