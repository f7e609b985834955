"""Who does what on the cluster, one row each, derived from the code wherever the code already knows.

A journey is a caller, one API request (verb, group, resource/subresource, namespace, name), why
it happens, and whether it must be allowed; where the request creates an object, the object
itself (for admission and the schema); where its caller's pod makes a network hop to do it, the
hop. The rows come from:

- the team member's Argo traffic: `mlops submit|status|schedule` run against the recording Argo
  server stand-in (tests/test_argo_submit_contract.py), each recorded call read through
  ARGO_SERVER_ROUTES into the Kubernetes requests the Argo server makes *as the token's caller*
  (`--auth-mode=client`); the objects created are the recorded request bodies;
- the caller the token is: read from the README's recipe (`readme_token_identity`), so the README
  cannot name a token its readers are refused or that cannot submit;
- `mlops promote` (mlops/kube.py) and the TrainJob launcher (components/steps/trainjob.py): every
  kubernetes-client call in those modules, read from their source (`client_calls`);
- what Argo and kubectl do on the runner's behalf, the UI's routes and the denials: HAND_ROWS and
  the functions below, each citing where the requirement comes from.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.steps.promote import PLATFORM_CONFIGMAP
from tests.cluster.rbac_evaluator_without_apiserver import Identity, Request, person, service_account
from tests.conftest import REPO
from tests.manifests.networkpolicy_evaluator_without_cni import Address, Pod

ARGO = "argoproj.io"


@dataclass(frozen=True)
class Journey:
    who: str
    """a role name: member, runner, other-member, token (the README's), platform:<ns>:<sa>"""
    request: Request | None
    """None for a journey that is only a network hop (a store the workload talks to)"""
    why: str
    allowed: bool = True
    creates: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    hop: tuple[str, str] | None = None
    """(from, to) endpoint names of manifests/base/network/required-flows.yaml, port from PORTS"""
    tolerated: bool = False
    """the code carries on when refused (a fallback), so a refusal is allowed but reported"""
    flow: tuple[Pod | Address, Pod | Address, int] | None = field(default=None, compare=False, hash=False)
    """a hop between resolved endpoints (from the rendered workloads and Services), with its port"""

    @property
    def api(self) -> Request:
        """The API request, for a journey that makes one."""
        assert self.request is not None, f"{self.why}: a network hop, no API request"
        return self.request

    def __str__(self) -> str:
        return f"{self.who}: {self.request or 'connects'} ({self.why})"


# --- the Argo server, acting as its caller ----------------------------------------------------------
# What the Argo server (v3.5/3.6, --auth-mode=client) asks the Kubernetes API for each REST route,
# with the caller's own token (server/auth: the clients in the request context): the route's
# service in server/workflow, server/workflowtemplate, server/cronworkflow; logs through
# server/workflow's log streamer; artifacts through server/artifacts (artifact_server.go), whose
# driver reads the artifact repository's credentials Secret with the caller's kube client.
ARGO_SERVER_ROUTES: list[tuple[str, str, list[tuple[str, str, str]]]] = [
    ("POST", r"api/v1/workflows/(?P<ns>[^/]+)", [("create", ARGO, "workflows")]),
    ("GET", r"api/v1/workflows/(?P<ns>[^/]+)", [("list", ARGO, "workflows")]),
    ("GET", r"api/v1/workflows/(?P<ns>[^/]+)/(?P<name>[^/]+)", [("get", ARGO, "workflows")]),
    ("GET", r"api/v1/workflow-events/(?P<ns>[^/]+)", [("list", ARGO, "workflows"), ("watch", ARGO, "workflows")]),
    (
        "GET",
        r"api/v1/workflows/(?P<ns>[^/]+)/(?P<name>[^/]+)/log",
        [("get", ARGO, "workflows"), ("list", "", "pods"), ("get", "", "pods/log")],
    ),
    (
        "GET",
        r"artifacts/(?P<ns>[^/]+)/(?P<name>[^/]+)/[^/]+/[^/]+",
        [("get", ARGO, "workflows"), ("get", "", "secrets/@artifact-secret")],
    ),
    ("POST", r"api/v1/workflow-templates/(?P<ns>[^/]+)", [("create", ARGO, "workflowtemplates")]),
    ("GET", r"api/v1/workflow-templates/(?P<ns>[^/]+)/(?P<name>[^/]+)", [("get", ARGO, "workflowtemplates")]),
    ("PUT", r"api/v1/workflow-templates/(?P<ns>[^/]+)/(?P<name>[^/]+)", [("update", ARGO, "workflowtemplates")]),
    ("POST", r"api/v1/cron-workflows/(?P<ns>[^/]+)", [("create", ARGO, "cronworkflows")]),
    ("GET", r"api/v1/cron-workflows/(?P<ns>[^/]+)/(?P<name>[^/]+)", [("get", ARGO, "cronworkflows")]),
    ("PUT", r"api/v1/cron-workflows/(?P<ns>[^/]+)/(?P<name>[^/]+)", [("update", ARGO, "cronworkflows")]),
]
# What the UI and the argo CLI call beyond `mlops` itself, for the same team member.
ARGO_UI_CALLS = [
    ("GET", "api/v1/workflows/{ns}", "the UI and `argo list` list the namespace's runs"),
    ("GET", "api/v1/workflow-events/{ns}", "the UI and `argo watch` follow runs as they change"),
    ("GET", "api/v1/workflows/{ns}/run-x/log", "`argo logs` and the UI's log tab stream a step's log"),
    ("GET", "artifacts/{ns}/run-x/node-1/model", "the UI downloads a step's output artifact"),
]
BODY_KEYS = {"workflows": "workflow", "workflowtemplates": "template", "cronworkflows": "cronWorkflow"}


def argo_server_requests(
    method: str, path: str, body: Any, artifact_secret: str
) -> list[tuple[Request, dict[str, Any] | None]]:
    """The Kubernetes requests the Argo server makes as its caller for one REST call, with the object
    a create or update carries. An unknown route fails: teach ARGO_SERVER_ROUTES what it does."""
    route = path.split("?", 1)[0].strip("/")
    for route_method, pattern, requests in ARGO_SERVER_ROUTES:
        found = re.fullmatch(pattern, route)
        if route_method != method or not found:
            continue
        namespace, name = found["ns"], found.groupdict().get("name") or ""
        made: list[tuple[Request, dict[str, Any] | None]] = []
        for verb, group, resource in requests:
            resource, _, subresource = resource.partition("/")
            target = name if group == ARGO and verb not in ("list", "watch") else ""
            if subresource == "@artifact-secret":
                subresource, target = "", artifact_secret
            created = (body or {}).get(BODY_KEYS.get(resource, "")) if verb in ("create", "update") else None
            made.append((Request(verb, resource, group, subresource, namespace, target), created))
        if method == "POST" and route.startswith("api/v1/workflows/"):
            reference = ((body or {}).get("workflow", {}).get("spec", {}).get("workflowTemplateRef") or {}).get("name")
            if reference:  # the server resolves the template to validate the run (templateresolution)
                made.insert(0, (Request("get", "workflowtemplates", ARGO, "", namespace, reference), None))
        return made
    raise AssertionError(f"no ARGO_SERVER_ROUTES entry for {method} /{route}: say what the Argo server asks for it")


# --- the README's token -----------------------------------------------------------------------------
README_TOKEN = re.compile(r"^export ARGO_TOKEN=\"\$\((?P<command>[^)]*)\)\"", re.MULTILINE)


def readme_token_identity(readme: str, tenant: str, member: Identity) -> tuple[Identity, list[Journey]]:
    """Whose token the README tells a team member to use, and the requests minting it takes.

    `kubectl -n NS create token SA` mints a token for ServiceAccount SA (create serviceaccounts/token
    on SA, as the member) and the Argo server then acts as SA; `argo auth token` prints the member's
    own kubeconfig credentials, so the server acts as the member."""
    found = README_TOKEN.search(readme)
    assert found, "the README's submit recipe sets no ARGO_TOKEN=$(...): the journeys cannot tell whose token it is"
    words = found["command"].split()
    if words[:3] == ["argo", "auth", "token"]:
        return member, []
    if words[0] == "kubectl" and "create" in words and "token" in words:
        account = words[words.index("token") + 1]
        namespace = words[words.index("-n") + 1] if "-n" in words else tenant
        namespace = tenant if namespace == "fraud" else namespace  # the README's example tenant
        mint = Request("create", "serviceaccounts", "", "token", namespace, account)
        return service_account(namespace, account), [
            Journey("member", mint, f"the README's recipe mints the token: {found['command']}")
        ]
    raise AssertionError(f"the README's token recipe {found['command']!r} is not one the journeys know")


# --- the kubernetes client calls in our own modules ---------------------------------------------------
CLIENT_METHOD = re.compile(r"^(get|read|list|create|replace|patch|delete)_(namespaced_)?([a-z_]+?)$")
CLIENT_VERBS = {"get": "get", "read": "get", "list": "list", "create": "create", "replace": "update", "patch": "patch"}
CLIENT_VERBS["delete"] = "delete"
CORE_KINDS = {
    "config_map": ("configmaps", ""),
    "secret": ("secrets", ""),
    "pod": ("pods", ""),
    "pod_log": ("pods", "log"),
    "service_account_token": ("serviceaccounts", "token"),
    "network_policy": ("networkpolicies", ""),
}
KIND_GROUPS = {"network_policy": "networking.k8s.io"}
"""The API group of a typed client's kind outside the core group (NetworkingV1Api for promote's NetworkPolicy)."""
CLUSTER_KINDS = {
    "self_subject_review": ("selfsubjectreviews", "authentication.k8s.io"),
    "validating_webhook_configuration": ("validatingwebhookconfigurations", "admissionregistration.k8s.io"),
}
"""Typed calls of cluster-scoped kinds (no `namespaced_` in the method): the SelfSubjectReview of a sign-off,
and the read of Gatekeeper's webhook configuration (--admission cluster), by its name, the first argument."""


@dataclass(frozen=True)
class ClientCall:
    """One kubernetes-client call in a module's source: verb, group, resource, subresource, and the
    namespace when the source names it as a constant (else the caller's own)."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str | None
    name: str | None
    caught: bool
    line: int


def _constants(tree: ast.Module) -> dict[str, str]:
    values: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else node.targets
            sources = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for target, source in zip(targets, sources, strict=False):
                if isinstance(target, ast.Name) and isinstance(source, ast.Constant) and isinstance(source.value, str):
                    values[target.id] = source.value
    return values


def _imported_constants(module: Path) -> dict[str, str]:
    """The module's string constants as Python sees them once imported: also those it unpacks from
    another module (mlops/kube.py's GROUP, PLURAL, ... from components/steps/serving_api.py)."""
    import importlib

    try:
        name = ".".join(module.resolve().relative_to(REPO).with_suffix("").parts)
    except ValueError:  # a module outside the repository (a test's own file): its source alone
        return {}
    loaded = importlib.import_module(name)
    return {key: value for key, value in vars(loaded).items() if key.isupper() and isinstance(value, str)}


def _caught_api_errors(tree: ast.Module) -> set[int]:
    """Lines of calls inside a try whose handler swallows ApiException by returning a fallback."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        for handler in node.handlers:
            names = ast.unparse(handler.type) if handler.type else ""
            if "ApiException" in names and all(not isinstance(s, ast.Raise) for s in handler.body):
                lines |= {n.lineno for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Call)}
    return lines


def _literal(node: ast.expr, constants: dict[str, str]) -> str | None:
    """A string argument's value: a literal, or a module constant; None when only known at run time."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return constants.get(node.id) if isinstance(node, ast.Name) else None


def client_calls(module: Path) -> list[ClientCall]:
    """Every kubernetes-client call (CustomObjectsApi, CoreV1Api) a module makes, read from its source."""
    tree = ast.parse(module.read_text())
    constants, caught = _constants(tree) | _imported_constants(module), _caught_api_errors(tree)
    calls = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        found = CLIENT_METHOD.match(node.func.attr)
        if not found or not (found[2] or found[3] in ("custom_object", "cluster_custom_object", *CLUSTER_KINDS)):
            continue
        args = [_literal(a, constants) for a in node.args]
        if found[3] in CLUSTER_KINDS:
            (resource, group), subresource, namespace = CLUSTER_KINDS[found[3]], "", ""
            name = args[0] if found[1] != "create" and args else None  # a create's first argument is its body
        elif found[3] == "custom_object":
            group, resource, subresource, namespace, name = args[0] or "?", args[3] or "?", "", args[2], None
        else:
            resource, subresource = CORE_KINDS.get(found[3], (found[3], ""))
            group, name, namespace = (
                KIND_GROUPS.get(found[3], ""),
                args[0] if args else None,
                args[1] if len(args) > 1 else None,
            )
        calls.append(
            ClientCall(
                CLIENT_VERBS[found[1]],
                group,
                resource,
                subresource,
                namespace,
                name,
                node.lineno in caught,
                node.lineno,
            )
        )
    return sorted(calls, key=lambda c: c.line)


def client_journeys(module: Path, who: str, tenant: str, why: str, hop: tuple[str, str] | None) -> list[Journey]:
    rows = []
    for call in client_calls(module):
        request = Request(
            call.verb,
            call.resource,
            call.group,
            call.subresource,
            tenant if call.namespace is None else call.namespace,
            call.name or "",  # "": cluster-scoped
        )
        where = f"{module.relative_to(REPO)}:{call.line}"
        rows.append(Journey(who, request, f"{why} ({where})", hop=hop, tolerated=call.caught))
    return rows


# --- what no code of ours says, one row each with its source ------------------------------------------
def runner_rows(tenant: str, trainjob: dict[str, Any] | None) -> list[Journey]:
    """The runner ServiceAccount as Argo's executor and resource template use it (Argo >= 3.4)."""
    hop = ("pipeline-pod", "api-server")

    def row(verb: str, resource: str, why: str, group: str = ARGO, **extra: Any) -> Journey:
        return Journey("runner", Request(verb, resource, group, namespace=tenant), why, hop=hop, **extra)

    trainer = "trainer.kubeflow.org"
    return [
        row("create", "workflowtaskresults", "the executor reports each step's outputs (Argo docs: workflow-rbac.md)"),
        row("patch", "workflowtaskresults", "the executor completes its step's result (Argo docs: workflow-rbac.md)"),
        row("create", "trainjobs", "Argo's resource template creates the TrainJob", trainer, creates=trainjob),
        row("list", "trainjobs", "the resource template waits with `kubectl get -w` (list, then watch)", trainer),
        row("watch", "trainjobs", "the resource template waits with `kubectl get -w` (list, then watch)", trainer),
        Journey("runner", Request("get", path="/apis"), "kubectl's discovery in the resource template", hop=hop),
    ]


def denial_rows(
    tenant: str, other_tenant: str, platform_namespaces: list[str], allowed: list[Journey]
) -> list[Journey]:
    """What must stay refused: every member request in another tenant's namespace, the runner on
    Secrets, a member on the platform's namespaces, and minting the runner's token."""
    rows = [
        Journey(
            "member",
            Request(j.api.verb, j.api.resource, j.api.group, j.api.subresource, other_tenant, j.api.name),
            f"a {tenant} member in {other_tenant}: {j.why}",
            allowed=False,
        )
        for j in allowed
        if j.who == "member" and j.api.namespace == tenant
    ]
    rows += [
        Journey(
            "runner", Request(verb, "secrets", namespace=tenant, name=name), "the runner reads no Secret", allowed=False
        )
        for verb, name in (("get", "tenant-s3-credentials"), ("list", ""), ("watch", ""))
    ]
    # the namespace's mlops-platform ConfigMap says where the feature store, registry and decision log
    # are; the scoring transformer reads it through envFrom (the promotion guard pins that name, not
    # its keys), so neither a member nor the runner may write it (helper-92's review)
    writes = [(verb, PLATFORM_CONFIGMAP) for verb in ("update", "patch", "delete")] + [("create", "")]
    rows += [
        Journey(
            who,
            Request(verb, "configmaps", namespace=tenant, name=name),
            f"the {who} never rewrites {PLATFORM_CONFIGMAP}, which tells the transformer where its stores are",
            allowed=False,
        )
        for who in ("member", "runner")
        for verb, name in writes
    ]
    rows.append(
        Journey(
            "member",
            Request("create", "serviceaccounts", "", "token", tenant, "pipeline-runner"),
            "members never mint the runner's token: it would carry the runner's rights out of the cluster",
            allowed=False,
        )
    )
    for namespace in platform_namespaces:
        for verb, resource, group in (
            ("update", "deployments", "apps"),
            ("patch", "configmaps", ""),
            ("get", "secrets", ""),
            ("create", "rolebindings", "rbac.authorization.k8s.io"),
            ("create", "workflows", ARGO),
            ("delete", "pods", ""),
        ):
            why = f"a {tenant} member never edits the platform's namespace {namespace}"
            rows.append(Journey("member", Request(verb, resource, group, namespace=namespace), why, allowed=False))
    return rows


def identities(tenant: str, runner: str) -> dict[str, Identity]:
    return {
        "member": person(f"alice@{tenant}", f"{tenant}-members"),
        "runner": service_account(tenant, runner),
    }
