"""Tenants: one declaration, manifests/tenants/tenants.yaml, and everything that names a tenant rendered from it.

A tenant is declared once: its name (its namespace, PostgreSQL role, Redis user and S3 prefix),
its owner (who is mailed for any model-owner alert of its namespace that no pipeline route
catches), whether it may use the GPU nodes, its quota, and the pipelines it keeps in its own
repository (the platform cannot see those, so their owners and Feast projects are declared here).
`mlops tenant add NAME --cluster` writes it; `make golden` (pipelines/golden.py) renders from it
the tenant's folder (namespace, kustomization, quota, Feast CronJobs, beside the ConfigMap, Redis
and alert routes), the platform's PostgreSQL roles, databases and PgBouncer lines, and the
namespace lists of the restricted-scheduling Constraint. The golden check fails until the
rendering is committed, so a tenant written by hand in one place and not the others cannot ship.

A name is refused before anything is written when it is not a DNS-1123 label, when it is not a
bare SQL identifier (it becomes the role `<name>` and the database `feast_<name>`, written
unquoted), or when it is a namespace the platform, its operators or Kubernetes already use
(`platform_namespaces`: read from the manifests, plus the few operators no manifest names).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from components.config import ClusterSettings, PipelineConfig
from components.errors import ComponentError
from pipelines.scheduling_constraint import (
    CONSTRAINT_FILE,
    SCHEDULING_PRIORITY_CLASSES,
    SCHEDULING_TOLERATIONS,
    restricted_scheduling_constraint,
)
from pipelines.tenant_feast import feast_cronjob

__all__ = [
    "DNS_LABEL",
    "EMAIL",
    "FEAST_CRONJOB_FILE",
    "HEADER",
    "ISTIO_INJECTION",
    "KUBERNETES_NAMESPACES",
    "KUSTOMIZATION_FILE",
    "MEMBERS_GROUP",
    "NAMESPACE_FILE",
    "OPERATOR_NAMESPACES",
    "QUANTITY",
    "QUOTA_FILE",
    "SQL_NAME",
    "STEP",
    "TENANTS_FILE",
    "DeclaredPipeline",
    "Quota",
    "Tenant",
    "TenantDeclaration",
    "TenantPipeline",
    "add",
    "alert_routing",
    "declare",
    "kustomization",
    "load",
    "loopback_alertmanager",
    "namespace",
    "platform_namespaces",
    "quota",
    "tenant_manifests",
    "tenant_pipelines",
    "validate",
]

STEP = "tenant"
TENANTS_FILE = "tenants.yaml"
FEAST_CRONJOB_FILE = "feast-materialize.yaml"
QUOTA_FILE = "quota.yaml"
NAMESPACE_FILE = "namespace.yaml"
ISTIO_INJECTION = {"istio-injection": "enabled"}
"""Istio's namespace label for automatic sidecar injection (https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/)."""
KUSTOMIZATION_FILE = "kustomization.yaml"
MEMBERS_GROUP = "tenant-members"
"""The Group subject of tenants/base's RoleBindings, replaced by `<tenant>-members` in each tenant."""

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SQL_NAME = re.compile(r"^[a-z][a-z0-9]{0,56}$")  # feast_<name> stays within PostgreSQL's 63 bytes
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")

KUBERNETES_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
OPERATOR_NAMESPACES = {
    "kserve": "KServe's controller (docs/install.md)",
    "gatekeeper-system": "Gatekeeper, which enforces manifests/policies/",
    "kubeflow-system": "Kubeflow Trainer v2's controller",
    "cert-manager": "the certificates of KServe's and Gatekeeper's webhooks",
}
"""Operators the platform needs whose namespace no manifest names (the others are read from manifests/)."""


def _dns_name(value: str) -> str:
    if not DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label: use at most 63 lowercase letters, digits and '-',"
            " starting and ending with a letter or digit"
        )
    return value


class Quota(BaseModel):
    """The tenant's ResourceQuota `tenant-budget`: one team's sweep cannot starve the others."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cpu: str = Field("32", description="requests.cpu")
    memory: str = Field("128Gi", description="requests.memory")
    memory_limit: str = Field("192Gi", description="limits.memory")
    gpu: int | None = Field(None, ge=0, description="requests.nvidia.com/gpu; default 4 with gpu: true, else 0")
    pods: int = Field(100, ge=1)
    persistentvolumeclaims: int = Field(10, ge=0)

    @field_validator("cpu", "memory", "memory_limit")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not QUANTITY.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 32, 500m, 128Gi)")
        return value


class DeclaredPipeline(BaseModel):
    """A pipeline the tenant keeps in its own repository: the platform's `make golden` never sees
    its config.yaml, so its owner (for its alert route) and Feast project (for its CronJob) are here."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    owner: str
    project: str = Field("", description="its Feast project (materialize.project); default: the pipeline's name")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_name(value)

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not EMAIL.match(value):
            raise ValueError(f"owner {value!r} is not an email address")
        return value

    @property
    def feast_project(self) -> str:
        return self.project or self.name


class Tenant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    owner: str = Field(description="mailed for the namespace's model-owner alerts no pipeline route catches")
    gpu: bool = Field(False, description="may its pods tolerate the GPU taints (restricted-scheduling)")
    quota: Quota = Field(default_factory=Quota)
    pipelines: tuple[DeclaredPipeline, ...] = Field(default=(), description="pipelines kept in its own repository")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        _dns_name(value)
        if not SQL_NAME.match(value):
            raise ValueError(
                f"{value!r} is also the PostgreSQL role {value} and database feast_{value}, written unquoted:"
                " use a lowercase letter, then up to 56 lowercase letters or digits (no '-')"
            )
        return value

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not EMAIL.match(value):
            raise ValueError(f"owner {value!r} is not an email address: give the team's alert address")
        return value

    @model_validator(mode="after")
    def _gpu_quota(self) -> Tenant:
        if not self.gpu and self.quota.gpu:
            raise ValueError(f"gpu is false but quota.gpu is {self.quota.gpu}: set gpu: true, or quota.gpu: 0")
        return self

    @property
    def gpu_quota(self) -> int:
        return self.quota.gpu if self.quota.gpu is not None else (4 if self.gpu else 0)


class TenantDeclaration(BaseModel):
    """The whole file. Validated with context {"reserved": {namespace: where it is used}}."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tenants: tuple[Tenant, ...]

    @model_validator(mode="after")
    def _unique_and_free(self, info: ValidationInfo) -> TenantDeclaration:
        names = [tenant.name for tenant in self.tenants]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tenants declared twice: {duplicates}; keep one entry each")
        reserved: dict[str, str] = (info.context or {}).get("reserved", {})
        taken = {name: reserved[name] for name in names if name in reserved}
        if taken:
            raise ValueError(
                "tenant names that are platform namespaces: "
                + "; ".join(f"{name} ({where})" for name, where in sorted(taken.items()))
                + "; choose another name"
            )
        return self

    @property
    def names(self) -> list[str]:
        return [tenant.name for tenant in self.tenants]


def _namespace_names(node: Any, found: set[str]) -> None:
    """Every namespace a manifest document names: `namespace:` values and namespace selectors."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("namespace", "kubernetes.io/metadata.name") and isinstance(value, str):
                found.add(value)
            _namespace_names(value, found)
    elif isinstance(node, list):
        for item in node:
            _namespace_names(item, found)


def platform_namespaces(manifests: Path) -> dict[str, str]:
    """Every namespace a tenant may not take, with where it is used: each Namespace, `namespace:`,
    namespace selector and `<service>.<namespace>.svc` host in manifests/ outside the tenants'
    folders and the rendered Constraint; the operators no manifest names; Kubernetes' own."""
    reserved = {name: "Kubernetes' own namespace" for name in KUBERNETES_NAMESPACES}
    reserved |= OPERATOR_NAMESPACES
    for row in (*SCHEDULING_PRIORITY_CLASSES, *SCHEDULING_TOLERATIONS):
        for name in row["namespaces"]:
            if not name.startswith("{"):
                reserved.setdefault(
                    name, "named by the restricted-scheduling Constraint (pipelines/scheduling_constraint.py)"
                )
    paths = sorted(manifests.rglob("*.yaml"), key=lambda path: (path.name != "namespaces.yaml", path))
    for path in paths:
        relative = path.relative_to(manifests)
        if relative.parts[0] == "tenants" or path.name == CONSTRAINT_FILE:
            continue
        text = path.read_text()
        found: set[str] = set(re.findall(r"\b[a-z0-9-]+\.([a-z0-9][-a-z0-9]*)\.svc\b", text))
        for document in yaml.safe_load_all(text):
            if isinstance(document, dict) and document.get("kind") == "Namespace":
                found.add(str(document.get("metadata", {}).get("name", "")))
            _namespace_names(document, found)
        for name in sorted(found):
            if DNS_LABEL.match(name):
                reserved.setdefault(name, f"used by manifests/{relative}")
    return reserved


def _refusal(error: ValidationError, source: str, fix: str) -> ComponentError:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'tenants'}: {problem['msg'].removeprefix('Value error, ')}"
        for problem in error.errors()
    )
    return ComponentError(STEP, f"{source}: {problems}", fix)


def validate(data: Any, manifests: Path, source: str, fix: str) -> TenantDeclaration:
    try:
        return TenantDeclaration.model_validate(data, context={"reserved": platform_namespaces(manifests)})
    except ValidationError as error:
        raise _refusal(error, source, fix) from error


def load(manifests: Path) -> TenantDeclaration:
    """The declaration, validated; a permanent error naming each problem and its fix."""
    path = manifests / "tenants" / TENANTS_FILE
    if not path.is_file():
        raise ComponentError(
            STEP, f"{path} does not exist", "declare a tenant: mlops tenant add NAME --cluster --owner EMAIL"
        )
    fix = f"edit {path} as the message says, then run `make golden`"
    return validate(yaml.safe_load(path.read_text()) or {"tenants": []}, manifests, str(path), fix)


HEADER = """\
# The platform's tenants, one entry each: the one source of everything that names a tenant.
# `mlops tenant add NAME --cluster --owner EMAIL` adds one; `make golden` renders from this file
# each tenants/<name>/ folder, the PostgreSQL roles, databases and PgBouncer lines, the alert
# routes and the restricted-scheduling Constraint (pipelines/tenancy.py). Commit both together.
"""


def declare(name: str, owner: str, *, gpu: bool = False, gpu_quota: int | None = None, **quota: Any) -> Tenant:
    """A tenant from command-line values, refused (permanent, exit 2) with each problem and its fix."""
    limits = {key: value for key, value in {**quota, "gpu": gpu_quota}.items() if value is not None}
    try:
        return Tenant.model_validate({"name": name, "owner": owner, "gpu": gpu, "quota": limits})
    except ValidationError as error:
        raise _refusal(error, f"tenant {name!r}", "give the value the message asks for; nothing was written") from error


def add(manifests: Path, tenant: Tenant) -> Path:
    """Append `tenant` to the declaration, refusing (before writing) a name taken or invalid."""
    path = manifests / "tenants" / TENANTS_FILE
    current = load(manifests).tenants if path.is_file() else ()
    declaration = validate(
        {"tenants": [*(t.model_dump(mode="json") for t in current), tenant.model_dump(mode="json")]},
        manifests,
        f"tenant {tenant.name}",
        "choose another name (mlops tenant list --cluster shows the declared ones); nothing was written",
    )
    documents = [
        t.model_dump(mode="json", exclude_defaults=True) | {"quota": t.quota.model_dump(mode="json")}
        for t in declaration.tenants
    ]
    for document in documents:
        if document["quota"]["gpu"] is None:
            del document["quota"]["gpu"]
    path.write_text(HEADER + yaml.safe_dump({"tenants": documents}, sort_keys=False))
    return path


@dataclass(frozen=True, kw_only=True)
class TenantPipeline:
    """A pipeline a tenant runs: installed here (its config.yaml) or declared in tenants.yaml."""

    name: str
    owner: str
    project: str
    cluster: ClusterSettings | None  # None: declared, the Secrets are the platform's defaults

    def secret(self, field: str) -> str:
        value = getattr(self.cluster, field) if self.cluster else ClusterSettings.model_fields[field].default
        return str(value)


def tenant_pipelines(tenant: Tenant, configs: Iterable[PipelineConfig]) -> list[TenantPipeline]:
    """The pipelines of a tenant: the installed ones whose namespace it is, then its declared ones
    (an installed pipeline wins a name both know)."""
    found = {
        c.pipeline: TenantPipeline(name=c.pipeline, owner=c.owner, project=c.materialize.project, cluster=c.cluster)
        for c in configs
        if c.cluster.namespace == tenant.name
    }
    for declared in tenant.pipelines:
        found.setdefault(
            declared.name,
            TenantPipeline(name=declared.name, owner=declared.owner, project=declared.feast_project, cluster=None),
        )
    return [found[name] for name in sorted(found)]


def namespace(tenant: Tenant) -> dict[str, Any]:
    """The Namespace: a pipelines namespace (the platform's policies admit it by role), Pod
    Security's restricted profile enforced on every pod (Gatekeeper, manifests/policies/, covers
    the Workflows and InferenceServices before any pod exists), and Istio's sidecar in every pod
    (ISTIO_INJECTION): the AuthorizationPolicy promote renders for each model admits callers by
    their mTLS identity (components/steps/serving_authorization.py, issue 29), which only a pod with a
    sidecar has and only a sidecar enforces. Restricted holds because the install puts Istio's
    CNI plugin, not the NET_ADMIN init container, in charge of the redirect (docs/install.md)."""
    restricted = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": tenant.name,
            "labels": {
                "mlops.private-platform.io/role": "pipelines",
                "mlops.private-platform.io/tenant": tenant.name,
                **restricted,
                "pod-security.kubernetes.io/enforce-version": "latest",
                **ISTIO_INJECTION,
            },
            "annotations": {"mlops.private-platform.io/owner": tenant.owner},
        },
    }


def quota(tenant: Tenant) -> dict[str, Any]:
    q = tenant.quota
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "tenant-budget", "namespace": tenant.name},
        "spec": {
            "hard": {
                "requests.cpu": q.cpu,
                "requests.memory": q.memory,
                "limits.memory": q.memory_limit,
                "requests.nvidia.com/gpu": str(tenant.gpu_quota),
                "pods": str(q.pods),
                "persistentvolumeclaims": str(q.persistentvolumeclaims),
            }
        },
    }


def _member_subjects(base: Path) -> list[tuple[str, int]]:
    """Each RoleBinding subject in tenants/base that is the placeholder group: (binding, index)."""
    found = []
    for document in yaml.safe_load_all((base / "tenant.yaml").read_text()):
        if not isinstance(document, dict) or document.get("kind") != "RoleBinding":
            continue
        for index, subject in enumerate(document.get("subjects", [])):
            if subject.get("kind") == "Group" and subject.get("name") == MEMBERS_GROUP:
                found.append((str(document["metadata"]["name"]), index))
    return found


def kustomization(tenant: Tenant, files: list[str], base: Path) -> dict[str, Any]:
    """The tenant's kustomization: its rendered files, tenants/base, and its members' group in
    every binding of tenants/base that names the placeholder."""
    patches = [
        {
            "target": {"kind": "RoleBinding", "name": name},
            "patch": f"- op: replace\n  path: /subjects/{index}/name\n  value: {tenant.name}-members\n",
        }
        for name, index in _member_subjects(base)
    ]
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": tenant.name,
        "resources": [*files, "../base"],
        "patches": patches,
    }


def tenant_manifests(
    manifests: Path,
    declaration: TenantDeclaration,
    configs: list[PipelineConfig],
    dump: Callable[[dict[str, Any]], str],
    generated_files: list[str],
) -> dict[Path, str]:
    """What `make golden` writes from the declaration alone: each tenant's Namespace, quota, Feast
    CronJobs and kustomization (listing `generated_files`, the ConfigMap and the rest that golden
    renders beside them), and the restricted-scheduling Constraint."""
    from pipelines.standard import IMAGE

    header = "# Generated by `make golden` from manifests/tenants/tenants.yaml (pipelines/tenancy.py): do not edit.\n"
    rendered: dict[Path, str] = {}
    for tenant in declaration.tenants:
        folder = manifests / "tenants" / tenant.name
        rendered[folder / NAMESPACE_FILE] = header + dump(namespace(tenant))
        rendered[folder / QUOTA_FILE] = header + dump(quota(tenant))
        files = [NAMESPACE_FILE, QUOTA_FILE, *generated_files]
        cronjobs = [feast_cronjob(tenant, pipeline, IMAGE) for pipeline in tenant_pipelines(tenant, configs)]
        if cronjobs:
            rendered[folder / FEAST_CRONJOB_FILE] = header + "---\n".join(dump(job) for job in cronjobs)
            files.append(FEAST_CRONJOB_FILE)
        rendered[folder / KUSTOMIZATION_FILE] = header + dump(
            kustomization(tenant, files, manifests / "tenants" / "base")
        )
    constraint = restricted_scheduling_constraint(declaration.tenants)
    rendered[manifests / "policies" / CONSTRAINT_FILE] = header + dump(constraint)
    return rendered


def alert_routing(tenant: Tenant, configs: Iterable[PipelineConfig]) -> dict[str, Any]:
    """The tenant's AlertmanagerConfig: its installed and declared pipelines' owners, then its own owner."""
    from pipelines.alerting import OwnerRoute, alertmanager_config

    declared = [OwnerRoute(pipeline=p.name, owner=p.owner, namespace=tenant.name) for p in tenant.pipelines]
    return alertmanager_config(tenant.name, configs, owner=tenant.owner, declared=declared)


def loopback_alertmanager(configs: Iterable[PipelineConfig], webhook_url: str, manifests: Path) -> dict[str, Any]:
    """alertmanager.yml for `mlops dev up --monitoring`: the same routes as the tenants'
    AlertmanagerConfigs, from the declaration when this checkout has one (an installed wheel has
    no manifests/: then the installed pipelines' routes only)."""
    from pipelines.alerting import OwnerRoute, TenantOwnerRoute, alertmanager_yaml

    declared = load(manifests).tenants if (manifests / "tenants" / TENANTS_FILE).is_file() else ()
    return alertmanager_yaml(
        configs,
        webhook_url,
        tenants=[TenantOwnerRoute(tenant=t.name, owner=t.owner) for t in declared],
        declared=[OwnerRoute(pipeline=p.name, owner=p.owner, namespace=t.name) for t in declared for p in t.pipelines],
    )
