"""`mlops lint manifests/`: render every kustomize overlay and validate every object in it.

- built-in kinds: kubernetes-validate in strict mode (unknown fields fail);
- CRD kinds: the upstream CRD schemas in the shared schema folder (MLOPS_SCHEMAS_DIR);
- Gatekeeper constraints: the parameters schema of their own ConstraintTemplate in the render;
- every workload: the platform's own Gatekeeper policies, on the real OPA engine;
- anything else is an unknown kind, and fails: an object nobody can check does not ship.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from components.errors import ComponentError
from mlops.admission import PolicySet

__all__ = [
    "CRD_FILES",
    "EXCEPTIONS_FILE",
    "KUBERNETES_VERSION",
    "SWAGGER_FILES",
    "Finding",
    "check",
    "check_against_schema",
    "crd_name",
    "crd_schema",
    "exceptions",
    "export_command",
    "lint",
    "needed_schemas",
    "render",
    "schema_problem",
    "schemas_dir",
    "targets",
    "unknown_field_paths",
    "unknown_fields",
]

KUBERNETES_VERSION = "1.32"
CRD_FILES = {
    ("postgresql.cnpg.io", "Cluster"): "cnpg_postgresql.cnpg.io_clusters.yaml",
    ("postgresql.cnpg.io", "ScheduledBackup"): "cnpg_postgresql.cnpg.io_scheduledbackups.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "promop_monitoring.coreos.com_prometheusrules.yaml",
    ("monitoring.coreos.com", "AlertmanagerConfig"): "promop_monitoring.coreos.com_alertmanagerconfigs.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "promop_monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com", "PodMonitor"): "promop_monitoring.coreos.com_podmonitors.yaml",
    ("templates.gatekeeper.sh", "ConstraintTemplate"): "gatekeeper_constrainttemplate-crd.yaml",
    ("serving.kserve.io", "InferenceService"): "kserve_serving.kserve.io_inferenceservices.full.yaml",
    ("argoproj.io", "Workflow"): "argo_argoproj.io_workflows.full.yaml",
    ("argoproj.io", "WorkflowTemplate"): "argo_argoproj.io_workflowtemplates.full.yaml",
    ("argoproj.io", "CronWorkflow"): "argo_argoproj.io_cronworkflows.full.yaml",
    ("serving.kserve.io", "ClusterServingRuntime"): "kserve_serving.kserve.io_clusterservingruntimes.yaml",
    ("serving.kserve.io", "ServingRuntime"): "kserve_serving.kserve.io_servingruntimes.yaml",
    ("trainer.kubeflow.org", "TrainJob"): "trainer_trainer.kubeflow.org_trainjobs.yaml",
    ("trainer.kubeflow.org", "ClusterTrainingRuntime"): "trainer_trainer.kubeflow.org_clustertrainingruntimes.yaml",
    ("ray.io", "RayJob"): "kuberay_ray.io_rayjobs.yaml",
    ("security.istio.io", "AuthorizationPolicy"): "istio_security.istio.io_authorizationpolicies.yaml",
}
SWAGGER_FILES = {("kubeflow.org", "Experiment"): ("katib_v1beta1.swagger.json", "v1beta1.Experiment")}
"""Kinds whose CRD carries no field schema: their schema is the project's swagger definition."""
EXCEPTIONS_FILE = Path(__file__).resolve().parents[1] / "manifests" / "lint-exceptions.yaml"


@dataclass(frozen=True)
class Finding:
    source: str
    obj: str
    problem: str

    def __str__(self) -> str:
        return f"{self.source}: {self.obj}: {self.problem}"


def crd_name(group: str, kind: str) -> str:
    """The CustomResourceDefinition's name on a cluster (<plural>.<group>; every kind lint reads
    pluralises with an s, or a final y with ies: authorizationpolicies)."""
    singular = kind.lower()
    return f"{singular[:-1]}ies.{group}" if singular.endswith("y") else f"{singular}s.{group}"


def export_command(group: str, kind: str, folder: str = "$MLOPS_SCHEMAS_DIR") -> str:
    """How a platform engineer gets the schema lint reads for `kind` from the cluster's own CRD."""
    return f"kubectl get crd {crd_name(group, kind)} -o yaml > {folder}/{CRD_FILES[(group, kind)]}"


def needed_schemas() -> list[str]:
    """Every file lint reads from the schema folder, each with where it comes from."""
    needed = [export_command(group, kind) for group, kind in CRD_FILES]
    needed += [
        f"{file} (the {kind} CRD has no field schema: the project's swagger, Katib's pkg/apis/v1beta1/swagger.json)"
        for (_group, kind), (file, _definition) in SWAGGER_FILES.items()
    ]
    return needed


def schemas_dir() -> Path:
    named = os.environ.get("MLOPS_SCHEMAS_DIR")
    path = Path(named or Path(__file__).resolve().parents[2] / "shared" / "schemas")
    if not path.is_dir():
        source = f"MLOPS_SCHEMAS_DIR names {path}" if named else f"MLOPS_SCHEMAS_DIR is not set and its default {path}"
        raise ComponentError(
            "lint",
            f"no schema folder: {source} is not a folder. lint validates each custom kind against its CRD's"
            " schema, from these files in that folder (one per kind the manifests use):\n  "
            + "\n  ".join(needed_schemas()),
            "export them from the cluster you install on (the commands above, docs/install.md), then"
            " `export MLOPS_SCHEMAS_DIR=<that folder>` and run again",
        )
    return path


def render(kustomization: Path) -> list[dict[str, Any]]:
    done = subprocess.run(["kubectl", "kustomize", str(kustomization)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ComponentError(
            "lint",
            f"kustomize could not render {kustomization}: {done.stderr.strip()[:500]}",
            "fix the kustomization it names",
        )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def targets(path: Path) -> list[Path]:
    """The kustomizations to render: the path itself, or each overlay and tenant under it; or a
    rendered YAML file (`mlops tune --katib`'s Experiment, a TrainJob)."""
    if path.is_file() or (path / "kustomization.yaml").exists():
        return [path]
    overlays = sorted(p.parent for p in path.glob("overlays/*/kustomization.yaml"))
    overlays += sorted(p.parent for p in path.glob("tenants/*/kustomization.yaml") if p.parent.name != "base")
    if not overlays:
        raise ComponentError(
            "lint",
            f"no kustomization.yaml at {path} nor overlays under it",
            "point lint at manifests/ or at one overlay",
        )
    return overlays


def _python_patterns(node: Any) -> Any:
    """CRD schemas carry Go regexes; Go accepts an inline flag after the anchor (`^(?i)...`),
    Python only at the start, so such a pattern is rewritten to the equivalent `(?i)^...`."""
    if isinstance(node, dict):
        return {
            key: (
                ("(?i)^" + value[len("^(?i)") :])
                if key == "pattern" and isinstance(value, str) and value.startswith("^(?i)")
                else _python_patterns(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_python_patterns(item) for item in node]
    return node


def check_against_schema(obj: Any, schema: dict[str, Any]) -> str | None:
    """The first schema violation, as `path: message`, or None; a field the schema does not know
    is one too (the API server would prune it without a word: a misspelt field silently lost)."""
    problem = schema_problem(obj, schema)
    if problem is not None:
        return problem
    unknown = unknown_fields(obj, schema)
    return f"{unknown[0]}: field not in the schema" if unknown else None


def schema_problem(obj: Any, schema: dict[str, Any]) -> str | None:
    """The first violation of the schema itself (types, enums, required, patterns), unknown fields aside."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    return f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message[:300]}" if error is not None else None


def unknown_fields(obj: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of fields a structural (CRD) schema does not declare, where it declares its fields."""
    return [path + "".join(f"/{part}" for part in found) for found in unknown_field_paths(obj, schema, bool(path))]


def unknown_field_paths(obj: Any, schema: dict[str, Any], nested: bool = False) -> list[tuple[str | int, ...]]:
    """The same as key tuples (a key may hold a `/`): what an API server prunes from a custom object
    unless its request asks for strict field validation (then it refuses the object, naming them)."""
    if isinstance(obj, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if schema.get("x-kubernetes-preserve-unknown-fields") or (properties is None and extra is None):
            return []
        found: list[tuple[str | int, ...]] = []
        for key, value in obj.items():
            child = (properties or {}).get(key)
            if child is None and isinstance(extra, dict):
                child = extra
            if child is None:
                if nested or key not in ("apiVersion", "kind", "metadata", "status"):
                    found.append((key,))
                continue
            found += [(key, *rest) for rest in unknown_field_paths(value, child, True)]
        return found
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [
            (index, *rest)
            for index, item in enumerate(obj)
            for rest in unknown_field_paths(item, schema["items"], True)
        ]
    return []


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The schema the strict checker holds `kind` to (its upstream CRD in the schema folder): the one
    loader for lint, the tests and the test-side stand-ins for the API server."""
    group, _, version = api_version.rpartition("/")
    schema = _crd_schema(group, kind, version)
    if schema is None:
        raise ComponentError(
            "lint",
            f"no CRD schema for {api_version} {kind} in {schemas_dir()}",
            "add its CRD file to the schema folder (MLOPS_SCHEMAS_DIR) and name it in mlops.lint.CRD_FILES",
        )
    return schema


def check(obj: dict[str, Any]) -> str | None:
    """What `mlops lint` says of one object (schema, unknown fields, embedded workloads), or None."""
    return _validate_one(obj, {})


@cache
def _crd_schema(group: str, kind: str, version: str) -> dict[str, Any] | None:
    file = CRD_FILES.get((group, kind))
    if file is None or not (schemas_dir() / file).exists():
        return None
    # libyaml's loader where PyYAML has it: an Argo CRD is 2.8 MB, 4 s in the pure-Python one, 0.4 s here
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((schemas_dir() / file).read_text(), Loader=loader)
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = _python_patterns(entry["schema"]["openAPIV3Schema"])
            return schema
    return None


@cache
def _swagger_schema(group: str, kind: str) -> dict[str, Any] | None:
    """A JSON schema of `kind` from its swagger definitions, references inlined (objects the swagger
    leaves untyped, such as a Katib trial's spec, accept anything: they are checked on their own)."""
    import json

    entry = SWAGGER_FILES.get((group, kind))
    if entry is None or not (schemas_dir() / entry[0]).exists():
        return None
    definitions = json.loads((schemas_dir() / entry[0]).read_text())["definitions"]

    def inline(node: Any, depth: int = 0) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = definitions.get(node["$ref"].rsplit("/", 1)[-1])
                if target is None or depth > 30:
                    return {}  # a type the swagger does not define (ObjectMeta, Unstructured): open
                return inline(target, depth + 1)
            return {key: inline(value, depth) for key, value in node.items() if key != "default"}
        if isinstance(node, list):
            return [inline(item, depth) for item in node]
        return node

    schema: dict[str, Any] = inline(definitions[entry[1]])
    return schema


def _embedded_workloads(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Objects a custom resource carries whole, as the swagger leaves them untyped: a Katib trial's Job."""
    if obj.get("kind") == "Experiment" and obj.get("apiVersion", "").startswith("kubeflow.org/"):
        trial = obj.get("spec", {}).get("trialTemplate", {}).get("trialSpec")
        return [("/spec/trialTemplate/trialSpec", trial)] if isinstance(trial, dict) else []
    return []


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def _validate_one(obj: dict[str, Any], templates: dict[str, dict[str, Any]]) -> str | None:
    import kubernetes_validate

    api = obj.get("apiVersion", "")
    group, _, version = api.rpartition("/")
    kind = obj.get("kind", "")
    if group == "constraints.gatekeeper.sh":
        template = templates.get(kind.lower())
        if template is None:
            return f"constraint of kind {kind} has no ConstraintTemplate in this render"
        schema = template["spec"]["crd"]["spec"].get("validation", {}).get("openAPIV3Schema", {})
        problem = check_against_schema(obj.get("spec", {}).get("parameters", {}), schema)
        return f"parameters: {problem}" if problem else None
    schema = _crd_schema(group, kind, version) or _swagger_schema(group, kind)
    file = CRD_FILES.get((group, kind))
    if schema is None and file and not (schemas_dir() / file).is_file():
        export = export_command(group, kind, str(schemas_dir()))
        return f"no schema for {api} {kind}: {schemas_dir() / file} is missing (export it: {export})"
    if schema is not None:
        problem = check_against_schema(obj, schema)
        for where, embedded in _embedded_workloads(obj):
            problem = problem or _prefixed(where, _validate_one(embedded, templates))
        return problem
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return f"unknown kind {api} {kind}: no schema to validate it against"
    except kubernetes_validate.ValidationError as error:
        return f"{'/'.join(str(p) for p in error.path)}: {error.message[:300]}"
    return None


def _prefixed(where: str, problem: str | None) -> str | None:
    return f"{where}: {problem}" if problem else None


def exceptions() -> dict[tuple[str, str], str]:
    entries = yaml.safe_load(EXCEPTIONS_FILE.read_text()) if EXCEPTIONS_FILE.exists() else []
    return {(entry["apiVersion"], entry["kind"]): " ".join(entry["reason"].split()) for entry in entries or []}


def lint(path: Path, report: Any = print) -> tuple[int, list[Finding]]:
    """Render and check every kustomization under `path`; returns (objects checked, findings)."""
    policies = PolicySet()
    skipped = exceptions()
    findings: list[Finding] = []
    checked = 0
    for target in targets(path):
        objects = [doc for doc in yaml.safe_load_all(target.read_text()) if doc] if target.is_file() else render(target)
        templates = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ConstraintTemplate"}
        for obj in objects:
            checked += 1
            problem = _validate_one(obj, templates)
            reason = skipped.get((obj.get("apiVersion", ""), obj.get("kind", "")))
            if problem and problem.startswith("unknown kind") and reason:
                report(f"SKIP {target}: {_name(obj)}: {reason}")
                problem = None
            if problem:
                findings.append(Finding(str(target), _name(obj), problem))
            findings += [Finding(str(target), _name(obj), f"policy {v}") for v in policies.violations(obj)]
    return checked, findings
