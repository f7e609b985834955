"""Submit, follow, inspect and schedule pipelines on an Argo server, configured as the argo CLI is.

Hera's WorkflowsService reads no environment or kubeconfig, so the connection is built here:
ARGO_SERVER, ARGO_SECURE, ARGO_TOKEN, ARGO_NAMESPACE, ARGO_INSECURE_SKIP_VERIFY, ARGO_HTTP1 and
ARGO_BASE_HREF, with flags taking precedence. A token pasted with its "Bearer " prefix (or
twice, as copying from the UI produces) is normalised, since the server rejects
"Bearer Bearer ..." with a 401 (hera#418, hera#1016). Server errors become messages that say
what to do: 401/403 name the server's auth mode, a missing template names how to install it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.errors import ComponentError, TransientError

__all__ = [
    "BEARER",
    "REQUEST_TIMEOUT",
    "TERMINAL",
    "Connection",
    "chargeback",
    "connect",
    "explain",
    "follow",
    "format_status",
    "get_workflow",
    "memory_limits",
    "node_rows",
    "normalise_token",
    "submit",
    "token_from_argo_cli",
    "token_from_kubeconfig",
    "ui_link",
    "upsert",
    "wait",
]

TERMINAL = ("Succeeded", "Failed", "Error")
BEARER = re.compile(r"^(\s*bearer\s+)+", re.IGNORECASE)
# (connect, read) seconds for every request to the Argo server: Hera sets none, so a server that
# accepts and never answers (a stuck port-forward, an overloaded API) hung `mlops submit` forever.
REQUEST_TIMEOUT = (5.0, 60.0)


@dataclass(frozen=True, kw_only=True)
class Connection:
    url: str
    token: str | None
    namespace: str
    verify_ssl: bool
    ui_base: str

    def redacted(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "namespace": self.namespace,
            "verify_ssl": self.verify_ssl,
            "token": "Bearer ***" if self.token else None,
        }


def normalise_token(raw: str | None) -> str | None:
    """'Bearer Bearer abc' or ' abc\\n' -> 'abc' (Hera adds the one prefix)."""
    if raw is None:
        return None
    token = BEARER.sub("", raw.strip()).strip()
    return token or None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def token_from_argo_cli() -> str:
    try:
        done = subprocess.run(["argo", "auth", "token"], capture_output=True, text=True, timeout=20, check=False)
    except FileNotFoundError as error:
        raise ComponentError(
            "submit", "--token-from argo: the argo CLI is not on PATH", "install the argo CLI, or set ARGO_TOKEN"
        ) from error
    if done.returncode != 0:
        raise ComponentError(
            "submit",
            f"`argo auth token` failed: {done.stderr.strip()[:300]}",
            "log in with the argo CLI first, or set ARGO_TOKEN",
        )
    return done.stdout


def token_from_kubeconfig(path: str | None = None) -> str:
    """The bearer token of the current context's user in the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    location = Path(path or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube" / "config")
    if not location.is_file():
        raise ComponentError("submit", f"no kubeconfig at {location}", "set KUBECONFIG, or use ARGO_TOKEN")
    config = yaml.safe_load(location.read_text()) or {}
    current = config.get("current-context")
    context = next((c["context"] for c in config.get("contexts", []) if c.get("name") == current), None)
    user: dict[str, Any] = next(
        (u.get("user", {}) for u in config.get("users", []) if context and u.get("name") == context.get("user")), {}
    )
    token = user.get("token")
    if not token:
        raise ComponentError(
            "submit",
            f"the kubeconfig's current context {current!r} has no user token",
            "use a service-account token (ARGO_TOKEN=$(kubectl create token ...)) or `argo auth token`",
        )
    return str(token)


def connect(
    *,
    server: str | None = None,
    token: str | None = None,
    namespace: str | None = None,
    insecure_skip_verify: bool | None = None,
    token_from: str | None = None,
    default_namespace: str | None = None,
) -> Connection:
    """Connection settings from flags, then the argo CLI's environment variables."""
    address = server or os.environ.get("ARGO_SERVER")
    if not address:
        raise ComponentError(
            "submit", "no Argo server configured", "set ARGO_SERVER=host:2746 (as for the argo CLI) or pass --server"
        )
    if "://" not in address:
        secure = os.environ.get("ARGO_SECURE", "true").strip().lower() != "false"
        address = f"{'https' if secure else 'http'}://{address}"
    base_href = os.environ.get("ARGO_BASE_HREF", "").strip("/")
    url = address.rstrip("/") + "/" + (base_href + "/" if base_href else "")
    raw: str | None
    if token_from == "argo":
        raw = token_from_argo_cli()
    elif token_from == "kubeconfig":
        raw = token_from_kubeconfig()
    else:
        raw = token if token is not None else os.environ.get("ARGO_TOKEN")
    skip = (
        insecure_skip_verify
        if insecure_skip_verify is not None
        else _truthy(os.environ.get("ARGO_INSECURE_SKIP_VERIFY"))
    )
    # ARGO_HTTP1 selects the argo CLI's REST client instead of gRPC; this client always speaks HTTP/1.1 REST.
    return Connection(
        url=url,
        token=normalise_token(raw),
        namespace=namespace or os.environ.get("ARGO_NAMESPACE") or default_namespace or "argo",
        verify_ssl=not skip,
        ui_base=url.rstrip("/"),
    )


def _session_with_timeout() -> Any:
    """A requests session whose every request has REQUEST_TIMEOUT unless the caller sets one."""
    import requests

    class TimeoutSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", REQUEST_TIMEOUT)
            return super().request(*args, **kwargs)

    return TimeoutSession()


def _service(connection: Connection) -> Any:
    from hera.workflows import WorkflowsService

    return WorkflowsService(
        host=connection.url,
        token=connection.token,
        namespace=connection.namespace,
        verify_ssl=connection.verify_ssl,
        session=_session_with_timeout(),
    )


def explain(error: Exception, connection: Connection, action: str) -> ComponentError:
    """A server error as problem and fix."""
    from hera.exceptions import Forbidden, NotFound, Unauthorized

    text = str(error)
    if isinstance(error, Unauthorized):
        return ComponentError(
            "submit",
            f"{action}: the Argo server at {connection.url} answered 401 Unauthorized",
            "pass a valid token (ARGO_TOKEN, --token-from argo|kubeconfig); the server must run with "
            "--auth-mode=client (or server), not sso-only, for token access",
        )
    if isinstance(error, Forbidden):
        return ComponentError(
            "submit",
            f"{action}: 403 Forbidden in namespace {connection.namespace!r} ({text})",
            "the token's service account needs RBAC on workflows and workflowtemplates there; "
            "with --auth-mode=server the server's own account is used instead",
        )
    if isinstance(error, NotFound) and "namespace" in text.lower():
        return ComponentError(
            "submit",
            f"{action}: namespace {connection.namespace!r} not found on the server",
            "set ARGO_NAMESPACE or --namespace to a namespace the Argo controller watches",
        )
    if "workflowtemplate" in text.lower() and ("not found" in text.lower() or isinstance(error, NotFound)):
        return ComponentError(
            "submit",
            f"{action}: WorkflowTemplate not found in {connection.namespace!r} ({text})",
            "install it: `mlops submit <pipeline> --install-template`, or apply "
            "`mlops compile <pipeline> --target argo` output with kubectl/GitOps",
        )
    if isinstance(error, OSError) or "Connection" in type(error).__name__ or "Timeout" in type(error).__name__:
        return TransientError(
            "submit",
            f"{action}: cannot reach the Argo server at {connection.url} ({text[:200]})",
            "check ARGO_SERVER, ARGO_SECURE (http vs https) and the network path (port-forward?); then retry",
        )
    return ComponentError(
        "submit",
        f"{action}: the Argo server refused it: {text[:500]}",
        "see the message; `mlops compile` renders the objects for inspection",
    )


def _call(connection: Connection, action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    import requests
    from hera.exceptions import HeraException

    try:
        return function(*args, **kwargs)
    except (HeraException, requests.RequestException) as error:
        raise explain(error, connection, action) from error


def _with_resource_version(obj: Any, version: str | None) -> Any:
    return obj.model_copy(update={"metadata": obj.metadata.model_copy(update={"resource_version": version})})


def _upsert_api(kind: str) -> tuple[Any, str, Any, Any]:
    """(model, service noun, create request, update request) of an upsertable kind."""
    from hera.workflows import models as m

    table = {
        "WorkflowTemplate": (
            m.WorkflowTemplate,
            "workflow_template",
            lambda obj: m.WorkflowTemplateCreateRequest(template=obj),
            lambda name, obj: m.WorkflowTemplateUpdateRequest(name=name, template=obj),
        ),
        "CronWorkflow": (
            m.CronWorkflow,
            "cron_workflow",
            lambda obj: m.CreateCronWorkflowRequest(cron_workflow=obj),
            lambda name, obj: m.UpdateCronWorkflowRequest(name=name, cron_workflow=obj),
        ),
    }
    return table[kind]


def upsert(connection: Connection, kind: str, document: dict[str, Any]) -> str:
    """Create a WorkflowTemplate or CronWorkflow, or update it in place (keeping resourceVersion)."""
    from hera.exceptions import AlreadyExists

    service = _service(connection)
    name = document["metadata"]["name"]
    model, noun, create_request, update_request = _upsert_api(kind)
    obj = model.model_validate(document)
    namespace = connection.namespace

    def create() -> Any:
        return getattr(service, f"create_{noun}")(create_request(obj), namespace=namespace)

    def get() -> Any:
        return getattr(service, f"get_{noun}")(name, namespace=namespace)

    def update(current: Any) -> Any:
        fresh = _with_resource_version(obj, current.metadata.resource_version)
        return getattr(service, f"update_{noun}")(name, update_request(name, fresh), namespace=namespace)

    try:
        _call(connection, f"create {kind} {name}", create)
        return "created"
    except ComponentError as error:
        if not isinstance(error.__cause__, AlreadyExists):
            raise
    current = _call(connection, f"read {kind} {name}", get)
    _call(connection, f"update {kind} {name}", update, current)
    return "updated"


def submit(connection: Connection, workflow: dict[str, Any]) -> str:
    from hera.workflows import models as m

    service = _service(connection)
    created = _call(
        connection,
        "submit",
        service.create_workflow,
        m.WorkflowCreateRequest(workflow=m.Workflow.model_validate(workflow)),
        namespace=connection.namespace,
    )
    return str(created.metadata.name)


def get_workflow(connection: Connection, name: str) -> dict[str, Any]:
    service = _service(connection)
    found = _call(connection, f"get workflow {name}", service.get_workflow, name, namespace=connection.namespace)
    document: dict[str, Any] = found.model_dump(by_alias=True, exclude_none=True, mode="json")
    return document


def wait(
    connection: Connection, name: str, *, poll_seconds: float = 5.0, timeout_seconds: float = 86400, report: Any = print
) -> dict[str, Any]:
    """Follow the workflow until it ends; reports each phase change; returns the final object."""

    def phase() -> tuple[dict[str, Any], str]:
        document = get_workflow(connection, name)
        return document, document.get("status", {}).get("phase") or "Pending"

    hint = f"follow it with `mlops status {name}` or in the UI"
    return follow(
        name, phase, TERMINAL, hint, poll_seconds=poll_seconds, timeout_seconds=timeout_seconds, report=report
    )


def follow(
    name: str,
    read: Callable[[], tuple[dict[str, Any], str]],
    terminal: Collection[str],
    hint: str,
    *,
    poll_seconds: float,
    timeout_seconds: float,
    report: Any = print,
) -> dict[str, Any]:
    """Poll `read` (the run's document and its state) until the state is terminal, reporting each
    change as `<name>: <state>`; returns the final document. Past `timeout_seconds` the error
    names the state and `hint`, how to follow the run from there. Argo's wait and KFP's."""
    deadline = time.monotonic() + timeout_seconds
    last = None
    while True:
        document, state = read()
        if state != last:
            report(f"{name}: {state}")
            last = state
        if state in terminal:
            return document
        if time.monotonic() > deadline:
            raise ComponentError("submit", f"{name} still {state} after {timeout_seconds:.0f}s", hint)
        time.sleep(poll_seconds)


def ui_link(connection: Connection, name: str) -> str:
    return f"{connection.ui_base}/workflows/{connection.namespace}/{name}"


def _artifact_keys(node: dict[str, Any], side: str) -> list[str]:
    keys = []
    for artifact in node.get(side, {}).get("artifacts", []) or []:
        location = artifact.get("s3", {}).get("key") or artifact.get("key") or artifact.get("path", "")
        keys.append(f"{artifact['name']}={location}")
    return keys


def node_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The controller's lowered view: one row per node, in start order, with depth in the tree."""
    nodes: dict[str, Any] = document.get("status", {}).get("nodes", {}) or {}
    parents = {child: node_id for node_id, node in nodes.items() for child in node.get("children", []) or []}

    def depth(node_id: str) -> int:
        level = 0
        while node_id in parents:
            node_id = parents[node_id]
            level += 1
        return level

    rows = []
    for node_id, node in sorted(nodes.items(), key=lambda item: (item[1].get("startedAt") or "", item[0])):
        rows.append(
            {
                "depth": depth(node_id),
                "name": node.get("displayName", node_id),
                "type": node.get("type", ""),
                "phase": node.get("phase", ""),
                "template": node.get("templateName", ""),
                "reads": _artifact_keys(node, "inputs"),
                "writes": _artifact_keys(node, "outputs"),
                "exit_code": node.get("outputs", {}).get("exitCode", ""),
                "resources": node.get("resourcesDuration", {}) or {},
                "message": node.get("message", ""),
            }
        )
    return rows


def memory_limits(document: dict[str, Any]) -> dict[str, str]:
    """Each template's memory limit, from the workflow's own templates or the WorkflowTemplate it ran."""
    status = document.get("status", {})
    stored = (status.get("storedWorkflowTemplateSpec") or {}).get("templates") or []
    templates = [*stored, *(document.get("spec", {}).get("templates") or [])]
    limits: dict[str, str] = {}
    for template in templates:
        memory = (template.get("container") or {}).get("resources", {}).get("limits", {}).get("memory")
        if memory:
            limits.setdefault(str(template.get("name", "")), str(memory))
    return limits


def format_status(document: dict[str, Any]) -> str:
    from pipelines.resources import killed_for_memory, memory_advice

    status = document.get("status", {})
    limits = memory_limits(document)
    lines = [
        f"{document['metadata']['name']}  phase={status.get('phase', 'Pending')}  "
        f"started={status.get('startedAt', '-')}  finished={status.get('finishedAt', '-')}"
    ]
    if status.get("message"):
        lines.append(f"  message: {status['message']}")
    for row in node_rows(document):
        resources = ", ".join(f"{k}={v}" for k, v in sorted(row["resources"].items()))
        lines.append(
            f"{'  ' * row['depth']}- {row['name']} [{row['type']}] {row['phase']}"
            f"{'  template=' + row['template'] if row['template'] else ''}"
            f"{'  exit=' + str(row['exit_code']) if row['exit_code'] != '' else ''}"
            f"{'  resources: ' + resources if resources else ''}"
        )
        for key in row["reads"]:
            lines.append(f"{'  ' * row['depth']}    reads  {key}")
        for key in row["writes"]:
            lines.append(f"{'  ' * row['depth']}    writes {key}")
        if row["message"]:
            lines.append(f"{'  ' * row['depth']}    message: {row['message']}")
        if row["type"] == "Pod" and killed_for_memory(row["message"]):  # not retried (pipelines/argo.py)
            step = row["template"] or row["name"]
            lines.append(f"{'  ' * row['depth']}    {memory_advice(step, limits.get(step))}")
    return "\n".join(lines)


def chargeback(document: dict[str, Any]) -> list[tuple[str, str, dict[str, int]]]:
    """(step, phase, resourcesDuration) for each Pod node: what chargeback reads (GPU-seconds, memory)."""
    return [(row["name"], row["phase"], row["resources"]) for row in node_rows(document) if row["type"] == "Pod"]
