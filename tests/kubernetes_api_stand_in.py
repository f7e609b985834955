"""Stand-ins for the Kubernetes API server and Kubeflow Trainer (no cluster runs here).

A custom object is admitted as the real API server admits one of a CRD with a structural schema
(apiextensions-apiserver, Kubernetes >= 1.27, where server-side field validation is GA), held to
the upstream CRD through `mlops lint`'s own strict checker (mlops.lint.crd_schema, one loader):

- a field the schema does not declare (outside `x-kubernetes-preserve-unknown-fields`) is refused
  with 400 BadRequest ("strict decoding error: unknown field") when the request asks
  `fieldValidation=Strict`; otherwise it is pruned before the object is stored, with a
  `Warning: 299` header (`Warn`, the server's default) or silently (`Ignore`);
- the pruned object is validated against the schema: a violation is 422 Invalid;
- `status` in a create or replace body is dropped: the status subresource owns it.

The request around the object is held as the real server holds it: a POST to an object path or a
PUT to a collection is 405; a body whose namespace is not the URL's is 400 (an empty one takes the
URL's), a replace whose name is not the URL's 400; a create of a name that exists is 409
AlreadyExists, a replace of one that does not 404, a replace of a stale resourceVersion 409 Conflict.

A built-in kind (promote's NetworkPolicy) is held the same way to Kubernetes' own schema
(kubernetes-validate's strict and plain schemas at mlops.lint.KUBERNETES_VERSION): the strict
decoder refuses an unknown field with the same 400, naming every one (a bad value elsewhere in the
body hides none), otherwise it is dropped with the warning.

`InferenceServiceApi` serves that over HTTP to the real kubernetes client (`mlops promote`: the
InferenceService, its AuthorizationPolicy and its NetworkPolicy, the SelfSubjectReview that says
who the kubeconfig is, and Gatekeeper's ValidatingWebhookConfiguration, cluster-scoped: 403 unless the
caller's cluster-wide rules allow the get, as RBAC decides it, 404 when Gatekeeper is not installed);
`TrainerStandIn` answers the custom-objects calls components/steps/trainjob.py makes, and moves a
TrainJob's status the way Kubeflow Trainer v2 does, read by read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from mlops import lint
from mlops.admission_control import GATEKEEPER_CONFIGURATION, GATEKEEPER_WEBHOOK
from pipelines.canary_cron import analyst_cluster_rules
from pipelines.trainer import RUNTIMES
from tests.cluster.rbac_evaluator_without_apiserver import request_info, rule_allows
from tests.loopback_http import QuietHandler


class Refused(Exception):
    """What the API server answers instead of storing the object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": self.reason,
                "code": self.code, "message": self.message}  # fmt: skip


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")


def _delete(obj: Any, path: tuple[str | int, ...]) -> None:
    for part in path[:-1]:
        obj = obj[part]
    del obj[path[-1]]


BUILT_IN = {("networking.k8s.io/v1", "NetworkPolicy")}
"""Built-in kinds the stand-in serves (promote's NetworkPolicy), held to Kubernetes' own OpenAPI
schema at mlops.lint.KUBERNETES_VERSION through kubernetes-validate, the schema `mlops lint` uses."""


def _built_in_unknown(obj: dict[str, Any]) -> list[tuple[str | int, ...]]:
    """Fields Kubernetes' schema does not declare, every one of them in the order the body holds them,
    as the strict decoder names them: the strict schema's additionalProperties errors, all of them
    (a value the schema refuses elsewhere in the body does not hide them)."""
    import jsonschema
    import referencing
    from kubernetes_validate import utils

    version = [v for v in utils.all_versions() if utils.major_minor(v) <= lint.KUBERNETES_VERSION][-1]
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    api_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
    schema = utils.schema_contents(f"{folder}/{obj['kind'].lower()}-{api_version}.json", lint.KUBERNETES_VERSION)
    definitions = utils.schema_contents(f"{folder}/_definitions.json", lint.KUBERNETES_VERSION)
    registry = referencing.Resource.from_contents(definitions) @ (
        referencing.Resource.from_contents(schema) @ referencing.Registry()
    )
    found: list[tuple[str | int, ...]] = []
    for error in jsonschema.Draft202012Validator(schema, registry=registry).iter_errors(obj):
        if error.validator == "additionalProperties":
            parent: tuple[str | int, ...] = tuple(error.path)
            found += [(*parent, key) for key in re.findall(r"'([^']+)'", error.message.split("(", 1)[1])]
    order = list(_paths(obj))
    return sorted(found, key=order.index)


def _paths(obj: Any, at: tuple[str | int, ...] = ()) -> Any:
    """Every path in a body, depth first, in the order its keys and items come."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        yield (*at, key)
        yield from _paths(value, (*at, key))


def _built_in_problem(obj: dict[str, Any]) -> str | None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, lint.KUBERNETES_VERSION, strict=False)
    except kubernetes_validate.ValidationError as error:
        return f"{'/'.join(str(p) for p in error.path)}: {error.message[:300]}"
    return None


def decode(body: dict[str, Any], field_validation: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """(the object as decoded, the warnings the server would send), or the strict decoder's 400
    naming every unknown field: what the server does before it looks at the object's values."""
    kind, api_version = body.get("kind", ""), body.get("apiVersion", "")
    built_in = (api_version, kind) in BUILT_IN
    stored: dict[str, Any] = json.loads(json.dumps(body))
    stored.pop("status", None)
    schema = {} if built_in else lint.crd_schema(api_version, kind)
    unknown = _built_in_unknown(stored) if built_in else lint.unknown_field_paths(stored, schema)
    if unknown and field_validation == "Strict":
        fields = ", ".join(f'unknown field "{_dotted(p)}"' for p in unknown)
        raise Refused(400, "BadRequest", f"{kind} in version {api_version.rpartition('/')[2]!r} cannot be handled "
                      f"as a {kind}: strict decoding error: {fields}")  # fmt: skip
    for path in unknown:
        _delete(stored, path)
    return stored, [] if field_validation == "Ignore" else [f'unknown field "{_dotted(p)}"' for p in unknown]


def validate(stored: dict[str, Any]) -> None:
    """A decoded object's values against the schema: 422 Invalid naming the first it refuses."""
    kind, api_version = stored.get("kind", ""), stored.get("apiVersion", "")
    name = stored.get("metadata", {}).get("name") or stored.get("metadata", {}).get("generateName", "")
    if (api_version, kind) in BUILT_IN:
        problem = _built_in_problem(stored)
    else:
        problem = lint.schema_problem(stored, lint.crd_schema(api_version, kind))
    if problem is not None:
        where, _, message = problem.partition(": ")
        group = api_version.rpartition("/")[0]
        raise Refused(422, "Invalid", f'{kind}.{group} "{name}" is invalid: {where.replace("/", ".")}: {message}')


def admit(body: dict[str, Any], field_validation: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """(the object as the server would store it, the warnings it would send), or Refused."""
    stored, warnings = decode(body, field_validation)
    validate(stored)
    return stored, warnings


SERVED = {
    "/apis/serving.kserve.io/v1beta1/": "InferenceService",
    "/apis/security.istio.io/v1/": "AuthorizationPolicy",
    "/apis/networking.k8s.io/v1/": "NetworkPolicy",
}
"""The collections the stand-in serves (`<prefix>namespaces/<ns>/<plural>`), each with its kind."""


def _plural(kind: str) -> str:
    return kind.lower()[:-1] + "ies" if kind.endswith("y") else kind.lower() + "s"


def _route(path: str) -> tuple[str, str, str | None] | None:
    """(kind, namespace, name) of an object path, (kind, namespace, None) of a collection path, as the
    API server's routing decides it; None for a path it serves nothing at."""
    for prefix, kind in SERVED.items():
        rest = path.removeprefix(prefix).split("/")
        if path.startswith(prefix) and len(rest) in (3, 4) and rest[0] == "namespaces" and rest[2] == _plural(kind):
            return kind, rest[1], rest[3] if len(rest) == 4 else None
    return None


def _kind_of(path: str) -> str | None:
    """The kind a collection or object path holds."""
    route = _route(path)
    return route[0] if route else None


NOT_ALLOWED = "the server does not allow this method on the requested resource"
"""A POST to an object path or a PUT to a collection is 405 MethodNotAllowed: the routes are POST on
the collection and PUT on the object (the generic API server's go-restful router; its service error
handler writes the Status). The apiextensions server would hand a POST to a custom resource's
object path to its create handler, which ignores the URL's name: no client means that, so the
stand-in refuses it for every kind, as for the built-in ones."""


def route_of(method: str, path: str, body: dict[str, Any]) -> tuple[str, str, str | None]:
    """(kind, namespace, name or None) a write to `path` addresses, after the routing's own checks:
    a path it serves nothing at is 404, a method the path has no route for 405, a body of another
    kind than the path's 400."""
    route = _route(path)
    if route is None:
        raise Refused(404, "NotFound", f"{path} not found")
    if (method == "POST") != (route[2] is None):
        raise Refused(405, "MethodNotAllowed", NOT_ALLOWED)
    if body.get("kind") != route[0]:
        raise Refused(400, "BadRequest", f"the body's kind {body.get('kind')!r} is not {route[0]}, as {path} is")
    return route


def addressed(stored: dict[str, Any], namespace: str, name: str | None) -> None:
    """The decoded object held to the request's URL, as the create and update handlers hold it after
    decoding: an empty namespace takes the URL's, another one is 400; on a replace (`name`), a
    name other than the URL's is 400; on a create, no name nor generateName is 422."""
    metadata = stored.setdefault("metadata", {})
    if metadata.setdefault("namespace", namespace) != namespace:
        raise Refused(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on "
                      "the request")  # fmt: skip
    if name is not None and metadata.get("name", "") != name:
        raise Refused(400, "BadRequest", f"the name of the object ({metadata.get('name', '')}) does not match the name "
                      f"on the URL ({name})")  # fmt: skip
    if name is None and not metadata.get("name") and not metadata.get("generateName"):
        kind, group = stored.get("kind", ""), stored.get("apiVersion", "").rpartition("/")[0]
        raise Refused(422, "Invalid", f'{kind}.{group} "" is invalid: metadata.name: Required value: name or '
                      "generateName is required")  # fmt: skip


SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
WEBHOOK_CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"


def gatekeeper_configuration(failure_policy: str) -> dict[str, Any]:
    """Gatekeeper's ValidatingWebhookConfiguration as its chart installs it, as the API server returns it:
    `validatingWebhookFailurePolicy` on the validation webhook, Fail on the ignore-label check."""
    webhooks = [(GATEKEEPER_WEBHOOK, failure_policy), ("check-ignore-label.gatekeeper.sh", "Fail")]
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": GATEKEEPER_CONFIGURATION, "resourceVersion": "1"},
            "webhooks": [{"name": name, "failurePolicy": policy, "sideEffects": "None", "matchPolicy": "Exact",
                          "admissionReviewVersions": ["v1", "v1beta1"]} for name, policy in webhooks]}  # fmt: skip


KUBECONFIG_USER = "bob@bank.internal"
"""Who the stand-in says the kubeconfig is, unless a test sets `InferenceServiceApi.username`."""


class InferenceServiceApi(QuietHandler):
    """get/create/replace of InferenceServices, AuthorizationPolicies and NetworkPolicies (what
    promote applies, SERVED) and KServe's inferenceservice-config, kept in memory, each body
    addressed and admitted as above; a create of a name that exists is 409 AlreadyExists, a replace
    of an object that does not exist 404, a replace whose resourceVersion is stale 409 Conflict.
    `edits_after_read` plays a concurrent writer that changes the object right after the client's
    next read; `created_after_read` one that creates an object right after the client's next read of
    its path found none. Class attributes hold the state: reset them before each server (the fixture
    does)."""

    objects: ClassVar[dict[str, dict[str, Any]]] = {}
    deploy_config: ClassVar[dict[str, Any]] = {"defaultDeploymentMode": "Serverless"}
    calls: ClassVar[list[str]] = []
    warnings: ClassVar[list[str]] = []
    edits_after_read: ClassVar[int] = 0
    created_after_read: ClassVar[dict[str, dict[str, Any]]] = {}
    """Object path: what another writer creates there right after a read of that path is 404."""
    forbidden: ClassVar[set[str]] = set()
    """Kinds the caller's RBAC does not cover: each request for one is 403 Forbidden."""
    username: ClassVar[str] = KUBECONFIG_USER
    """Who the kubeconfig authenticates as: a SelfSubjectReview's answer ("" plays an anonymous one)."""
    webhooks: ClassVar[list[Callable[[dict[str, Any], str], list[str]]]] = []
    """The installed validating webhooks (Gatekeeper's): what each denies of an object the caller writes,
    run on every create and replace, dry runs included, after the schema, as the API server does."""
    webhook_configurations: ClassVar[dict[str, dict[str, Any]]] = {}
    """The ValidatingWebhookConfigurations installed, by name (install_gatekeeper adds Gatekeeper's)."""
    lost_answers: ClassVar[dict[str, int]] = {}
    """Object path: the status (504) the next write there gets although it was stored (its outcome unknown)."""
    edits_after_write: ClassVar[dict[str, dict[str, Any]]] = {}
    """Object path: the spec another writer puts there right after the client's next write of it."""
    cluster_rules: ClassVar[list[dict[str, Any]]] = []
    """What the caller may do cluster-wide (a read of a cluster-scoped object no rule allows is 403): by
    default the canary analyst's rendered ClusterRole (pipelines/canary_cron.py)."""

    @classmethod
    def reset(cls) -> None:
        cls.objects, cls.calls, cls.warnings, cls.edits_after_read = {}, [], [], 0
        cls.forbidden, cls.created_after_read, cls.lost_answers, cls.edits_after_write = set(), {}, {}, {}
        cls.deploy_config = {"defaultDeploymentMode": "Serverless"}
        cls.username = KUBECONFIG_USER
        cls.webhooks, cls.webhook_configurations = [], {}
        cls.cluster_rules = analyst_cluster_rules()

    @classmethod
    def install_gatekeeper(
        cls, judge: Callable[[dict[str, Any], str], list[str]], failure_policy: str = "Fail"
    ) -> None:
        """Gatekeeper's webhook judging with `judge`, and its configuration at `failure_policy`."""
        cls.webhooks = [judge]
        cls.webhook_configurations = {GATEKEEPER_CONFIGURATION: gatekeeper_configuration(failure_policy)}

    def _cluster_scoped(self, path: str) -> None:
        """GET of a ValidatingWebhookConfiguration: RBAC first (403 naming what is missing), then 404 or it."""
        name = path.removeprefix(WEBHOOK_CONFIGURATIONS)
        asked = request_info("GET", path)
        if not any(rule_allows(rule, asked) for rule in self.cluster_rules):
            self._send(403, Refused(403, "Forbidden", f'validatingwebhookconfigurations.admissionregistration.k8s.io '
                       f'"{name}" is forbidden: User "{self.username}" cannot get resource '
                       '"validatingwebhookconfigurations" in API group "admissionregistration.k8s.io" at the '
                       "cluster scope").status())  # fmt: skip
        elif name in self.webhook_configurations:
            self._send(200, self.webhook_configurations[name])
        else:
            self._send(404, Refused(404, "NotFound", f'validatingwebhookconfigurations.admissionregistration.k8s.io '
                       f'"{name}" not found').status())  # fmt: skip

    def _send(self, status: int, body: dict[str, Any], warnings: list[str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for warning in warnings or []:
            self.send_header("Warning", f'299 - "{warning}"')
        self.end_headers()
        self.wfile.write(data)

    def _request(self) -> tuple[str, str | None]:
        url = urlsplit(self.path)
        return url.path, next(iter(parse_qs(url.query).get("fieldValidation", [])), None)

    def do_GET(self) -> None:
        path, _ = self._request()
        self.calls.append(f"GET {path}")
        if _kind_of(path) in self.forbidden:
            self._send(403, Refused(403, "Forbidden", f"cannot get {path}").status())
        elif path.startswith(WEBHOOK_CONFIGURATIONS):
            self._cluster_scoped(path)
        elif path == "/api/v1/namespaces/kserve/configmaps/inferenceservice-config":
            self._send(200, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inferenceservice-config"},
                             "data": {"deploy": json.dumps(self.deploy_config)}})  # fmt: skip
        elif path in self.objects:
            self._send(200, self.objects[path])
            if InferenceServiceApi.edits_after_read > 0:  # someone else's kubectl edit lands now
                InferenceServiceApi.edits_after_read -= 1
                live = self.objects[path]["metadata"]
                live["resourceVersion"] = str(int(live["resourceVersion"]) + 1)
        else:
            self._send(404, Refused(404, "NotFound", f"{path} not found").status())
            if path in self.created_after_read:  # someone else's create lands now
                self.objects[path] = {**self.created_after_read.pop(path)}
                self.objects[path]["metadata"] = {**self.objects[path]["metadata"], "resourceVersion": "1"}

    def _dry_run(self) -> bool:
        """dryRun=All: validated and admitted, never stored (any other value the real server refuses)."""
        given = parse_qs(urlsplit(self.path).query).get("dryRun", [])
        if given and given != ["All"]:
            raise Refused(400, "BadRequest", f"invalid dryRun {given}: only All is supported")
        return bool(given)

    def _admitted(self) -> tuple[str, dict[str, Any], list[str]] | None:
        path, field_validation = self._request()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            self.calls.append(f"{self.command} {path}" + (" (dry run)" if self._dry_run() else ""))
            if _kind_of(path) in self.forbidden:
                raise Refused(403, "Forbidden", f"cannot {self.command} {path}")
            _, namespace, name = route_of(self.command, path, body)
            stored, warnings = decode(body, field_validation)
            addressed(stored, namespace, name)
            if self.command == "PUT" and path not in self.objects:
                raise Refused(404, "NotFound", f"{path} not found")
            validate(stored)
            if self.command == "POST":
                meta = stored["metadata"]
                meta["name"] = meta.get("name") or meta.get("generateName", "") + "x7k2p"
                meta.pop("generateName", None)
                if f"{path}/{meta['name']}" in self.objects:
                    group = stored["apiVersion"].rpartition("/")[0]
                    raise Refused(409, "AlreadyExists", f'{path.rpartition("/")[2]}.{group} "{meta["name"]}" '
                                  "already exists")  # fmt: skip
            denied = [message for webhook in self.webhooks for message in webhook(stored, self.username)]
            if denied:
                raise Refused(403, "Forbidden", f'admission webhook "{GATEKEEPER_WEBHOOK}" denied the request: '
                              + "\n".join(denied))  # fmt: skip
        except Refused as refused:
            self._send(refused.code, refused.status())
            return None
        InferenceServiceApi.warnings += warnings
        return path, stored, warnings

    def do_POST(self) -> None:
        if urlsplit(self.path).path == SELF_SUBJECT_REVIEWS:  # authentication.k8s.io/v1: who am I
            self.calls.append(f"POST {SELF_SUBJECT_REVIEWS}")
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if body.get("kind") != "SelfSubjectReview":
                self._send(400, Refused(400, "BadRequest", f"a {body.get('kind')} is not a SelfSubjectReview").status())
                return
            info = {"username": self.username, "groups": ["system:authenticated"]} if self.username else {}
            self._send(201, {**body, "metadata": {"creationTimestamp": None}, "status": {"userInfo": info}})
            return
        admitted = self._admitted()
        if admitted is None:
            return
        path, stored, warnings = admitted
        stored["metadata"]["resourceVersion"] = "1"
        self._store(f"{path}/{stored['metadata']['name']}", 201, stored, warnings)

    def do_PUT(self) -> None:
        admitted = self._admitted()
        if admitted is None:
            return
        path, stored, warnings = admitted
        if stored["metadata"].get("resourceVersion") != self.objects[path]["metadata"]["resourceVersion"]:
            self._send(409, Refused(409, "Conflict", "the object has been modified").status())
            return
        stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)
        self._store(path, 200, stored, warnings)

    def _store(self, path: str, status: int, stored: dict[str, Any], warnings: list[str]) -> None:
        """Store a write (not a dry run) and answer it: or lose the answer (`lost_answers`), or let another
        writer change the object right after (`edits_after_write`: their spec, the next resourceVersion)."""
        if not self._dry_run():
            self.objects[path] = stored
        if not self._dry_run() and path in self.lost_answers:  # stored, but the client never hears so
            code = self.lost_answers.pop(path)
            said = "Timeout: request did not complete within requested timeout - context deadline exceeded"
            return self._send(code, Refused(code, "Timeout", said).status())
        self._send(status, stored, warnings)
        if not self._dry_run() and path in self.edits_after_write:
            theirs = {**json.loads(json.dumps(stored)), "spec": self.edits_after_write.pop(path)}
            theirs["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)
            self.objects[path] = theirs


COMPLETE = ("Complete", "AllJobsCompleted", "jobset completed successfully")
FAILED = ("Failed", "FailedJobs", "jobset failed due to one or more job failures")
"""Trainer copies JobSet's terminal condition onto the TrainJob, renaming only its type."""


class TrainerStandIn:
    """create/get of trainjobs as the API server answers them while Kubeflow Trainer runs the job.

    Created: admitted as above (the launcher asks for strict field validation), and its runtime
    must exist, as Trainer's webhook requires: the platform's are those pipelines/trainer.py
    renders. Then, read by read: no status (the controller has not reconciled yet); the `node` job
    active (here `run_nodes(job)` runs the nodes to the end and says whether they succeeded); the
    terminal condition, Complete or Failed, with the job counts. Each status it reports is held to
    the CRD's status schema too."""

    def __init__(self, run_nodes: Callable[[dict[str, Any]], bool], runtimes: tuple[str, ...] = RUNTIMES) -> None:
        self.run_nodes, self.runtimes = run_nodes, runtimes
        self.jobs: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, list[str]] = {}
        """Per job, the phase each read returned: none, active, Complete or Failed."""
        self._succeeded: dict[str, bool] = {}

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any], **options: Any
    ) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        assert (group, version, plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
        try:
            job, _ = admit(body, options.get("field_validation"))
            runtime = job["spec"]["runtimeRef"]["name"]
            if runtime not in self.runtimes:
                raise Refused(422, "Invalid", f'admission webhook denied the request: spec.runtimeRef: Invalid value: '
                              f'"{runtime}": specified clusterTrainingRuntime must be created before the TrainJob is '
                              "created")  # fmt: skip
        except Refused as refused:
            error = ApiException(status=refused.code, reason=refused.reason)
            error.body = json.dumps(refused.status())
            raise error from refused
        meta = job["metadata"]
        meta["name"] = meta.get("name") or meta.pop("generateName") + "x7k2p"
        meta.pop("generateName", None)
        meta["namespace"] = namespace
        self.jobs[meta["name"]], self.seen[meta["name"]] = job, []
        return job

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, **options: Any
    ) -> dict[str, Any]:
        job, seen = self.jobs[name], self.seen[name]
        if not seen:
            seen.append("none")
            return json.loads(json.dumps(job))
        if seen[-1] == "none":
            job["status"] = {"jobsStatus": [_counts(active=1, ready=1)]}
            self._succeeded[name] = self.run_nodes(job)
            seen.append("active")
        elif seen[-1] == "active":
            kind, reason, message = COMPLETE if self._succeeded[name] else FAILED
            counts = _counts(succeeded=1) if self._succeeded[name] else _counts(failed=1)
            condition = {"type": kind, "status": "True", "reason": reason, "message": message,
                         "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
            job["status"] = {"conditions": [condition], "jobsStatus": [counts]}
            seen.append(kind)
        else:
            seen.append(seen[-1])
        problem = lint.schema_problem(job, lint.crd_schema(job["apiVersion"], job["kind"]))
        assert problem is None, f"the stand-in's own status breaks the CRD: {problem}"
        return json.loads(json.dumps(job))


def _counts(**given: int) -> dict[str, Any]:
    return {"name": "node", **{k: given.get(k, 0) for k in ("active", "ready", "succeeded", "failed", "suspended")}}
