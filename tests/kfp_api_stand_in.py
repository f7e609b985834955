"""A stand-in for the Kubeflow Pipelines API server (v2beta1 REST), on loopback, for kfp.Client's calls.

No KFP API server can run here. This one answers the routes kfp.Client uses for `mlops submit|
schedule|status --engine kfp` (healthz, pipelines and their upload, pipeline versions,
experiments, runs, recurring runs) and checks what it receives as the real server does:

- each JSON body is read strictly against the KFP API's own models (kfp_server_api, the package
  kfp depends on, generated from the server's swagger): an unknown field, a wrong type or an enum
  value the model does not allow is refused with 400, as grpc-gateway's strict unmarshalling
  does; the fields the server's validation requires (display_name, a pipeline source, a trigger,
  max_concurrency in 1..10) are required here too;
- a recurring run's cron must have six fields, seconds first (robfig/cron's format, which the
  scheduler uses);
- an uploaded package is parsed from its multipart body and loaded with kfp's own loader: it must
  be a PipelineSpec;
- a run's state moves with each read: PENDING, RUNNING, then SUCCEEDED (or FAILED when
  `fail_runs` is set), its tasks taken from the uploaded IR's root DAG.

Every request is recorded (method, path, query, body) so tests can assert what was sent.
"""

from __future__ import annotations

import datetime
import email.parser
import email.policy
import itertools
import json
import re
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import kfp_server_api.models as models
import yaml

from tests.loopback_http import QuietHandler, start

PREFIX = "/apis/v2beta1"
REQUIRED = {
    "V2beta1Experiment": ("display_name",),
    "V2beta1Run": ("display_name",),
    "V2beta1RecurringRun": ("display_name", "trigger", "max_concurrency"),
    "V2beta1PipelineVersionReference": ("pipeline_id",),
}
INT64 = {("V2beta1RecurringRun", "max_concurrency"), ("V2beta1PeriodicSchedule", "interval_second")}
"""int64 fields, which the generated models type 'str' and protojson reads from a number or a string."""
RESPONSES = {
    ("GET", r"/pipelines"): "V2beta1ListPipelinesResponse",
    ("GET", r"/pipelines/([^/]+)/versions"): "V2beta1ListPipelineVersionsResponse",
    ("GET", r"/experiments"): "V2beta1ListExperimentsResponse",
    ("GET", r"/recurringruns"): "V2beta1ListRecurringRunsResponse",
    ("GET", r"/healthz"): "V2beta1GetHealthzResponse",
}
"""The stand-in's own answers are held to the response models too (list keys are not all snake_case)."""
CRON_FIELDS = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
CRON_TERM = re.compile(r"^(\*|\?|\d+(-\d+)?)(/\d+)?$")


def strict_problems(type_name: str, value: Any, where: str = "") -> list[str]:
    """Why kfp_server_api's model `type_name` would not hold `value` exactly, as grpc-gateway reads it."""
    here = where or type_name
    if value is None:
        return []
    scalar = {"str": str, "bool": bool, "object": object}
    if type_name in scalar:
        return [] if isinstance(value, scalar[type_name]) else [f"{here}: expected {type_name}"]
    if type_name == "int":  # int64 travels as a JSON string too
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit())
        return [] if ok else [f"{here}: expected an integer"]
    if type_name == "datetime":
        try:
            datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return [f"{here}: not an RFC 3339 time"]
        return []
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{here}: expected a list"]
        inner = type_name[5:-1]
        return [p for i, item in enumerate(value) for p in strict_problems(inner, item, f"{here}[{i}]")]
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            return [f"{here}: expected an object"]
        inner = type_name[5:-1].split(",", 1)[1].strip()
        return [p for key, item in value.items() for p in strict_problems(inner, item, f"{here}.{key}")]
    model = getattr(models, type_name)
    if hasattr(model, "allowable_values"):
        return [] if value in model.allowable_values else [f"{here}: {value!r} is not one of {model.allowable_values}"]
    if not isinstance(value, dict):
        return [f"{here}: expected an object"]
    fields = {json_key: model.openapi_types[attribute] for attribute, json_key in model.attribute_map.items()}
    problems = [f"{here}: unknown field {key!r}" for key in sorted(set(value) - set(fields))]
    problems += [f"{here}: {key} is required" for key in REQUIRED.get(type_name, ()) if value.get(key) in (None, "")]
    for key, item in value.items():
        if key in fields:
            kind = "int" if (type_name, key) in INT64 else fields[key]
            problems += strict_problems(kind, item, f"{here}.{key}")
    return problems


def cron_problems(cron: str) -> list[str]:
    """robfig/cron's six-field format (seconds first), or a descriptor."""
    if cron.startswith("@"):
        return (
            []
            if cron in ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
            else [f"cron {cron!r}: unknown descriptor"]
        )
    fields = cron.split()
    if len(fields) != 6:
        return [
            f"cron {cron!r}: expected 6 fields (second minute hour day-of-month month day-of-week), found {len(fields)}"
        ]
    problems = []
    for text, (low, high) in zip(fields, CRON_FIELDS, strict=True):
        for term in text.split(","):
            match = CRON_TERM.match(term)
            numbers = [int(n) for n in re.findall(r"\d+", (match.group(1) if match else ""))]
            if not match or any(n < low or n > high for n in numbers):
                problems.append(f"cron {cron!r}: {term!r} outside {low}-{high}")
    return problems


def load_pipeline_spec(text: str) -> Any:
    """The uploaded IR through kfp's loader: a PipelineSpec, or ValueError."""
    from google.protobuf import json_format
    from kfp import components
    from kfp.pipeline_spec import pipeline_spec_pb2

    first = next(iter(yaml.safe_load_all(text)), None)
    if not isinstance(first, dict) or "root" not in first or "pipelineInfo" not in first:
        raise ValueError("not a compiled pipeline (PipelineSpec has root and pipelineInfo)")
    json_format.ParseDict(first, pipeline_spec_pb2.PipelineSpec())  # unknown fields refused
    return components.load_component_from_text(text).pipeline_spec


def executor_tasks(spec: Any) -> list[str]:
    """The display names of the IR's container tasks, through every nested DAG (conditions, exit handler)."""
    names: list[str] = []

    def walk(dag: Any) -> None:
        for task in dag.tasks.values():
            component = spec.components[task.component_ref.name]
            if component.HasField("dag"):
                walk(component.dag)
            else:
                names.append(task.task_info.name)

    walk(spec.root.dag)
    return sorted(names)


class KfpApiStandIn:
    """State of the stand-in server; `url` once started."""

    def __init__(self, *, token: str | None = None, fail_runs: bool = False) -> None:
        self.token = token
        self.fail_runs = fail_runs
        self.failing_task: str | None = None
        """The task that fails when fail_runs is set (None: the first); the others are SKIPPED."""
        self.failure_message = "{task} exited 2 (stand-in failure)"
        """Its error message (google.rpc.Status.message); a pod killed at its memory limit carries
        Kubernetes' reason as Argo reports the node: "OOMKilled (exit code 137)"."""
        self.requests: list[dict[str, Any]] = []
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}
        self.specs: dict[str, Any] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.reads: dict[str, int] = {}
        self.recurring: dict[str, dict[str, Any]] = {}
        self.ids = (f"{n:08d}-0000-4000-8000-000000000000" for n in itertools.count(1))
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> KfpApiStandIn:
        stand_in = self

        class Handler(QuietHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parsed = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                with stand_in.lock:
                    headers = {key.lower(): value for key, value in self.headers.items()}
                    code, body = stand_in.handle(self.command, parsed.path, query, raw, headers)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

        self.server = start(Handler)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def handle(
        self, method: str, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str]
    ) -> tuple[int, Any]:
        headers = {key.lower(): value for key, value in headers.items()}
        content_type = headers.get("content-type", "")
        body: Any = None
        if raw and content_type.startswith("application/json"):
            body = json.loads(raw)
        self.requests.append({"method": method, "path": path, "query": query, "body": body})
        if self.token and headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"code": 16, "message": "Unauthenticated"}
        try:
            return self._route(method, path.removeprefix(PREFIX), query, body, raw, content_type)
        except _Refused as refusal:
            return refusal.code, {"code": 3 if refusal.code == 400 else 5, "message": refusal.message}

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, raw: bytes, ctype: str
    ) -> tuple[int, Any]:
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", r"/healthz", lambda: {"multi_user": True}),
            ("GET", r"/pipelines", lambda: {"pipelines": self._filtered(self.pipelines, query)}),
            ("POST", r"/pipelines/upload", lambda: self._upload(query, raw, ctype, None)),
            ("POST", r"/pipelines/upload_version", lambda: self._upload(query, raw, ctype, query.get("pipelineid"))),
            ("GET", r"/pipelines/([^/]+)/versions", lambda pid: {"pipeline_versions": self._versions(pid, query)}),
            ("GET", r"/experiments", lambda: {"experiments": self._filtered(self.experiments, query)}),
            (
                "POST",
                r"/experiments",
                lambda: self._create("V2beta1Experiment", body, self.experiments, "experiment_id"),
            ),
            ("POST", r"/runs", lambda: self._create_run(body)),
            ("GET", r"/runs/([^/]+)", self._read_run),
            ("POST", r"/recurringruns", lambda: self._create_recurring(body)),
            ("GET", r"/recurringruns", lambda: {"recurringRuns": self._recurring_list(query)}),
            ("DELETE", r"/recurringruns/([^/]+)", lambda rid: self._delete(self.recurring, rid)),
        ]
        for verb, pattern, action in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                answer = action(*match.groups())
                model = RESPONSES.get((verb, pattern))
                assert model is None or not strict_problems(model, answer), strict_problems(model or "", answer)
                return 200, answer
        raise _Refused(404, f"no route {method} {path}")

    def _filtered(self, table: dict[str, dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
        rows = list(table.values())
        if query.get("namespace"):
            rows = [r for r in rows if r.get("namespace") == query["namespace"]]
        for predicate in json.loads(query.get("filter") or "{}").get("predicates", []):
            if predicate.get("operation") not in ("EQUALS", 1):  # proto JSON: the name or its number
                raise _Refused(400, f"filter operation {predicate.get('operation')} not supported by the stand-in")
            rows = [r for r in rows if r.get(predicate["key"]) == predicate.get("stringValue")]
        return rows

    def _versions(self, pipeline_id: str, query: dict[str, str]) -> list[dict[str, Any]]:
        if pipeline_id not in self.pipelines:
            raise _Refused(404, f"pipeline {pipeline_id} not found")
        mine = {k: v for k, v in self.versions.items() if v["pipeline_id"] == pipeline_id}
        return self._filtered(mine, query)

    def _upload(self, query: dict[str, str], raw: bytes, ctype: str, pipeline_id: str | None) -> dict[str, Any]:
        if not ctype.startswith("multipart/form-data"):
            raise _Refused(400, f"upload must be multipart/form-data, not {ctype!r}")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw
        )
        files = [
            part
            for part in message.iter_parts()
            if part.get_param("name", header="content-disposition") == "uploadfile"
        ]
        if len(files) != 1:
            raise _Refused(400, "the upload carries no part named uploadfile")
        try:
            spec = load_pipeline_spec(bytes(files[0].get_payload(decode=True)).decode())
        except Exception as error:  # any loader failure is the server's 400
            raise _Refused(400, f"invalid pipeline spec: {error}") from error
        name = query.get("name") or query.get("display_name") or ""
        if not name:
            raise _Refused(400, "a pipeline (version) needs a name")
        now = datetime.datetime.now(datetime.UTC).isoformat()
        if pipeline_id is None:
            if self._filtered(
                self.pipelines,
                {
                    "filter": json.dumps(
                        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
                    ),
                    "namespace": query.get("namespace", ""),
                },
            ):
                raise _Refused(409, f"pipeline {name} already exists")
            pipeline_id = next(self.ids)
            self.pipelines[pipeline_id] = {
                "pipeline_id": pipeline_id,
                "display_name": name,
                "name": name,
                "description": query.get("description", ""),
                "namespace": query.get("namespace", ""),
                "created_at": now,
            }
        elif pipeline_id not in self.pipelines:
            raise _Refused(404, f"pipeline {pipeline_id} not found")
        if any(v["pipeline_id"] == pipeline_id and v["display_name"] == name for v in self.versions.values()):
            raise _Refused(409, f"version {name} already exists")
        version_id = next(self.ids)
        self.versions[version_id] = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": version_id,
            "display_name": name,
            "name": name,
            "created_at": now,
        }
        self.specs[version_id] = spec
        return self.pipelines[pipeline_id] if query.get("pipelineid") is None else self.versions[version_id]

    def _create(self, model: str, body: Any, table: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
        problems = strict_problems(model, body)
        if problems:
            raise _Refused(400, "; ".join(problems))
        made = {**body, key: next(self.ids), "created_at": datetime.datetime.now(datetime.UTC).isoformat()}
        table[made[key]] = made
        return made

    def _source(self, body: dict[str, Any]) -> str:
        reference = body.get("pipeline_version_reference") or {}
        if not reference and not body.get("pipeline_spec"):
            raise _Refused(400, "a run needs a pipeline_version_reference or a pipeline_spec")
        version = self.versions.get(reference.get("pipeline_version_id", ""))
        if reference and (version is None or version["pipeline_id"] != reference.get("pipeline_id")):
            raise _Refused(404, f"pipeline version {reference} not found")
        if body.get("experiment_id") and body["experiment_id"] not in self.experiments:
            raise _Refused(404, f"experiment {body['experiment_id']} not found")
        return str(reference.get("pipeline_version_id", ""))

    def _create_run(self, body: Any) -> dict[str, Any]:
        problems = strict_problems("V2beta1Run", body)
        if problems:
            raise _Refused(400, "; ".join(problems))
        self._source(body)
        made = self._create("V2beta1Run", body, self.runs, "run_id")
        made["state"] = "PENDING"
        self.reads[made["run_id"]] = 0
        return made

    def _read_run(self, run_id: str) -> dict[str, Any]:
        if run_id not in self.runs:
            raise _Refused(404, f"run {run_id} not found")
        run = self.runs[run_id]
        final = "FAILED" if self.fail_runs else "SUCCEEDED"
        states = ["PENDING", "RUNNING", final]
        self.reads[run_id] += 1
        run["state"] = states[min(self.reads[run_id] - 1, 2)]
        version = (run.get("pipeline_version_reference") or {}).get("pipeline_version_id", "")
        spec = self.specs.get(version)
        tasks = executor_tasks(spec) if spec is not None else []
        details = []
        failing = self.failing_task or (tasks[0] if tasks else "")
        for index, task in enumerate(tasks):
            state = run["state"] if run["state"] != "FAILED" or task == failing else "SKIPPED"
            detail: dict[str, Any] = {"display_name": task, "task_id": f"{run_id}-{index}", "state": state}
            if state == "FAILED":
                detail["error"] = {"code": 2, "message": self.failure_message.format(task=task)}
            details.append(detail)
        run["run_details"] = {"task_details": details}
        if run["state"] == "FAILED":
            run["error"] = {"code": 2, "message": "a task failed (stand-in failure)"}
        problems = strict_problems("V2beta1Run", run)
        assert not problems, problems  # the stand-in answers only what the model holds
        return run

    def _create_recurring(self, body: Any) -> dict[str, Any]:
        problems = strict_problems("V2beta1RecurringRun", body)
        if problems:
            raise _Refused(400, "; ".join(problems))
        cron = ((body.get("trigger") or {}).get("cron_schedule") or {}).get("cron")
        if cron is not None and cron_problems(cron):
            raise _Refused(400, "; ".join(cron_problems(cron)))
        if not 1 <= int(body["max_concurrency"]) <= 10:
            raise _Refused(400, "max_concurrency must be in [1, 10]")
        self._source(body)
        return self._create("V2beta1RecurringRun", body, self.recurring, "recurring_run_id")

    def _recurring_list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        rows = self._filtered(self.recurring, {"filter": query.get("filter", "")})
        if query.get("experiment_id"):
            rows = [r for r in rows if r.get("experiment_id") == query["experiment_id"]]
        return rows

    def _delete(self, table: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
        if table.pop(key, None) is None:
            raise _Refused(404, f"{key} not found")
        return {}


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
