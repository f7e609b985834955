"""Contract tests of `mlops submit|status|schedule` against a recording stand-in for the Argo server.

No Argo server can run here. The stand-in speaks the Argo REST API paths and error shapes the
client relies on, records each request, and scripts phase changes for --wait. Every request body
is validated against its definition in Argo's JSON schema (WorkflowCreateRequest,
WorkflowTemplateCreateRequest/UpdateRequest, CreateCronWorkflowRequest/UpdateCronWorkflowRequest,
from $MLOPS_SCHEMAS_DIR) and refused with 400, naming the field, as the server's gateway would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from mlops.cli import main
from tests.loopback_http import QuietHandler, serving

TOKEN = "good-token"


REQUEST_DEFINITIONS = {
    ("POST", "workflows"): "WorkflowCreateRequest",
    ("POST", "workflow-templates"): "WorkflowTemplateCreateRequest",
    ("PUT", "workflow-templates"): "WorkflowTemplateUpdateRequest",
    ("POST", "cron-workflows"): "CreateCronWorkflowRequest",
    ("PUT", "cron-workflows"): "UpdateCronWorkflowRequest",
}


def request_problem(schema: dict[str, Any], method: str, kind: str, body: Any) -> str | None:
    """Why Argo would refuse this request body, or None. The schema does not reject unknown
    fields, so top-level keys are checked against the definition's properties as well."""
    import jsonschema

    name = REQUEST_DEFINITIONS.get((method, kind))
    if name is None:
        return None
    definition = schema["definitions"][f"io.argoproj.workflow.v1alpha1.{name}"]
    unknown = sorted(set(body or {}) - set(definition["properties"]))
    if unknown:
        return f"{name}: unknown field(s) {unknown}"
    validator = jsonschema.Draft4Validator({"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{name}", **schema})
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is not None:
        return f"{name}: {'.'.join(str(p) for p in error.absolute_path)}: {error.message[:200]}"
    return None


class FakeArgo:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.requests: list[dict[str, Any]] = []
        self.templates: dict[str, dict[str, Any]] = {}
        self.crons: dict[str, dict[str, Any]] = {}
        self.phases = ["Pending", "Running", "Succeeded"]
        self.namespaces = {"fraud", "team-b"}

    def created(self, workflow: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The answer to a valid create of `workflow`: the new workflow, Pending."""
        return 200, self.workflow("fraud-x7k2p", "Pending")

    def read(self, name: str) -> tuple[int, dict[str, Any]]:
        """The answer to a read of workflow `name`: it, in the next scripted phase."""
        phase = self.phases.pop(0) if len(self.phases) > 1 else self.phases[0]
        return 200, self.workflow(name, phase)

    def workflow(self, name: str, phase: str) -> dict[str, Any]:
        nodes = {
            name: {
                "id": name,
                "name": name,
                "displayName": name,
                "type": "DAG",
                "phase": phase,
                "children": [f"{name}-1", f"{name}-2"],
                "startedAt": "2026-11-28T02:00:00Z",
            },
            f"{name}-1": {
                "id": f"{name}-1",
                "name": f"{name}.train",
                "displayName": "train",
                "type": "Pod",
                "phase": phase,
                "templateName": "train",
                "startedAt": "2026-11-28T02:00:01Z",
                "inputs": {"artifacts": [{"name": "train_set", "s3": {"key": f"{name}/materialize/train_set.tgz"}}]},
                "outputs": {
                    "artifacts": [{"name": "model", "s3": {"key": f"{name}/train/model.tgz"}}],
                    "exitCode": "0",
                },
                "resourcesDuration": {"cpu": 120, "memory": 2048, "nvidia.com/gpu": 3812},
            },
            f"{name}-2": {
                "id": f"{name}-2",
                "name": f"{name}.evaluate",
                "displayName": "evaluate",
                "type": "Pod",
                "phase": phase,
                "templateName": "evaluate",
                "startedAt": "2026-11-28T02:10:00Z",
                "inputs": {"artifacts": [{"name": "model", "s3": {"key": f"{name}/train/model.tgz"}}]},
                "resourcesDuration": {"cpu": 30, "memory": 512},
            },
        }
        return {
            "metadata": {"name": name, "namespace": "fraud"},
            "spec": {"workflowTemplateRef": {"name": "fraud"}},
            "status": {
                "phase": phase,
                "nodes": nodes if phase != "Pending" else {},
                "message": "child failed" if phase == "Failed" else None,
            },
        }


def _handler(state: FakeArgo) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.requests.append(
                {"method": method, "path": self.path, "auth": self.headers.get("Authorization"), "body": body}
            )
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._reply(401, {"code": 16, "message": "token not valid"})
            parts = self.path.strip("/").split("/")  # api v1 <kind> <ns> [name]
            kind, namespace, name = parts[2], parts[3], parts[4] if len(parts) > 4 else None
            if problem := request_problem(state.schema, method, kind, body):
                return self._reply(400, {"code": 3, "message": problem})
            if namespace not in state.namespaces:
                return self._reply(404, {"code": 5, "message": f'namespaces "{namespace}" not found'})
            if kind == "workflows" and method == "POST":
                workflow = body["workflow"]
                ref = workflow["spec"]["workflowTemplateRef"]["name"]
                if ref not in state.templates:
                    return self._reply(400, {"code": 3, "message": f'workflowtemplates.argoproj.io "{ref}" not found'})
                return self._reply(*state.created(workflow))
            if kind == "workflows" and method == "GET":
                return self._reply(*state.read(name or ""))
            store, key = (
                {"workflow-templates": (state.templates, "template"), "cron-workflows": (state.crons, "cronWorkflow")}
            )[kind]
            if method == "POST":
                item = json.loads(json.dumps(body[key]))
                if item["metadata"]["name"] in store:
                    return self._reply(409, {"code": 6, "message": "already exists"})
                item["metadata"]["resourceVersion"] = "7"
                store[item["metadata"]["name"]] = item
                return self._reply(200, item)
            if method == "GET":
                if name not in store:
                    return self._reply(404, {"code": 5, "message": "not found"})
                return self._reply(200, store[name])
            if method == "PUT":
                item = json.loads(json.dumps(body[key]))
                if item["metadata"].get("resourceVersion") != store[name]["metadata"]["resourceVersion"]:
                    return self._reply(409, {"code": 10, "message": "the object has been modified"})
                item["metadata"]["resourceVersion"] = "8"
                store[name] = item
                return self._reply(200, item)
            return self._reply(405, {"message": "unexpected"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

    return Handler


@pytest.fixture(scope="module")
def argo_schema(schemas_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((schemas_dir / "argo-workflows-v4.1.2.intorstring.schema.json").read_text())
    return loaded


@contextmanager
def argo_server(monkeypatch: pytest.MonkeyPatch, state: FakeArgo) -> Iterator[FakeArgo]:
    """`state` (a FakeArgo, or one that scripts its answers otherwise) served as the Argo server
    that the client's environment names, for the block."""
    with serving(_handler(state)) as server:
        monkeypatch.setenv("ARGO_SERVER", f"127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("ARGO_SECURE", "false")
        monkeypatch.setenv("ARGO_TOKEN", TOKEN)
        monkeypatch.delenv("ARGO_NAMESPACE", raising=False)
        yield state


@pytest.fixture
def argo(monkeypatch: pytest.MonkeyPatch, argo_schema: dict[str, Any]) -> Iterator[FakeArgo]:
    with argo_server(monkeypatch, FakeArgo(argo_schema)) as state:
        yield state


@pytest.mark.parametrize("token", [TOKEN, f"Bearer {TOKEN}", f"  Bearer Bearer {TOKEN}\n"])
def test_contract_submit_sends_one_bearer_prefix_to_the_namespaced_endpoint(
    argo: FakeArgo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], token: str
) -> None:
    monkeypatch.setenv("ARGO_TOKEN", token)
    argo.templates["fraud"] = {"metadata": {"name": "fraud", "resourceVersion": "1"}}
    assert (
        main(["submit", "fraud", "-p", "raw-data=s3://fraud-data/2026-11-27.parquet", "-p", "gate_threshold=0.9"]) == 0
    )
    request = argo.requests[-1]
    assert (request["method"], request["path"], request["auth"]) == (
        "POST",
        "/api/v1/workflows/fraud",
        f"Bearer {TOKEN}",
    )
    workflow = request["body"]["workflow"]
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "fraud"}
    assert {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]} == {
        "gate-threshold": "0.9",
        "raw-data": "s3://fraud-data/2026-11-27.parquet",
    }
    out = capsys.readouterr().out
    assert "fraud-x7k2p" in out and "/workflows/fraud/fraud-x7k2p" in out


def test_contract_no_cache_sends_a_fresh_cache_salt_each_time(argo: FakeArgo) -> None:
    """Every memoized step's key ends in the cache-salt input: a new one runs every step again."""
    argo.templates["fraud"] = {"metadata": {"name": "fraud"}}
    salts = []
    for _ in range(2):
        assert main(["submit", "fraud", "--no-cache"]) == 0
        parameters = {
            p["name"]: p["value"] for p in argo.requests[-1]["body"]["workflow"]["spec"]["arguments"]["parameters"]
        }
        salts.append(parameters["cache-salt"])
    assert len(set(salts)) == 2 and all(len(salt) == 12 for salt in salts)
    assert main(["submit", "fraud"]) == 0  # control: without --no-cache the template's empty salt stands
    sent = argo.requests[-1]["body"]["workflow"]["spec"].get("arguments", {}).get("parameters", [])
    assert "cache-salt" not in {p["name"] for p in sent}


def test_contract_namespace_from_environment_and_flag(argo: FakeArgo, monkeypatch: pytest.MonkeyPatch) -> None:
    argo.templates["fraud"] = {"metadata": {"name": "fraud"}}
    monkeypatch.setenv("ARGO_NAMESPACE", "team-b")
    assert main(["submit", "fraud"]) == 0
    assert argo.requests[-1]["path"] == "/api/v1/workflows/team-b"
    assert main(["submit", "fraud", "--namespace", "fraud"]) == 0
    assert argo.requests[-1]["path"] == "/api/v1/workflows/fraud"


def test_contract_wait_follows_phases_and_reports_resources_duration(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    argo.templates["fraud"] = {"metadata": {"name": "fraud"}}
    assert main(["submit", "fraud", "--wait", "--poll-seconds", "0"]) == 0
    out = capsys.readouterr().out
    assert out.index("fraud-x7k2p: Pending") < out.index("fraud-x7k2p: Running") < out.index("fraud-x7k2p: Succeeded")
    assert "nvidia.com/gpu=3812" in out and "memory=2048" in out
    assert [r["path"] for r in argo.requests if r["method"] == "GET"] == ["/api/v1/workflows/fraud/fraud-x7k2p"] * 3


def test_contract_wait_exits_non_zero_when_the_run_fails(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    argo.templates["fraud"] = {"metadata": {"name": "fraud"}}
    argo.phases = ["Running", "Failed"]
    assert main(["submit", "fraud", "--wait", "--poll-seconds", "0"]) == 1
    assert "ended Failed" in capsys.readouterr().err


def test_contract_401_names_the_auth_mode(
    argo: FakeArgo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "stale")
    assert main(["submit", "fraud"]) == 2
    err = capsys.readouterr().err
    assert "401 Unauthorized" in err and "--auth-mode=client" in err
    assert argo.requests[-1]["auth"] == "Bearer stale"


def test_contract_errors_for_unknown_namespace_and_missing_template(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["submit", "fraud", "--namespace", "ghost"]) == 2
    assert "namespace 'ghost' not found" in capsys.readouterr().err
    assert main(["submit", "fraud"]) == 2
    err = capsys.readouterr().err
    assert "WorkflowTemplate not found" in err and "--install-template" in err


def test_contract_install_template_creates_then_updates_with_resource_version(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["submit", "fraud", "--install-template"]) == 0
    assert "WorkflowTemplate fraud created" in capsys.readouterr().out
    assert main(["submit", "fraud", "--install-template"]) == 0
    assert "WorkflowTemplate fraud updated" in capsys.readouterr().out
    put = next(r for r in argo.requests if r["method"] == "PUT")
    assert put["path"] == "/api/v1/workflow-templates/fraud/fraud"
    assert put["body"]["template"]["metadata"]["resourceVersion"] == "7"
    assert put["body"]["template"]["spec"]["templates"]


def test_contract_schedule_upserts_the_cron_workflow(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "fraud", "--cron", "30 1 * * *", "--timezone", "UTC"]) == 0
    created = argo.requests[-1]["body"]["cronWorkflow"]
    assert created["spec"]["schedules"] == ["30 1 * * *"] and created["spec"]["timezone"] == "UTC"
    assert created["spec"]["startingDeadlineSeconds"] == 3600 and created["spec"]["concurrencyPolicy"] == "Forbid"
    assert main(["schedule", "fraud"]) == 0
    assert "updated" in capsys.readouterr().out
    assert argo.crons["fraud-nightly"]["spec"]["schedules"] == ["0 2 * * *"]


def test_contract_status_prints_the_lowered_node_tree(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    argo.phases = ["Running"]
    assert main(["status", "fraud-x7k2p", "--namespace", "fraud"]) == 0
    out = capsys.readouterr().out
    assert "- train [Pod] Running  template=train  exit=0" in out
    assert "reads  model=fraud-x7k2p/train/model.tgz" in out
    assert "writes model=fraud-x7k2p/train/model.tgz" in out
    assert "nvidia.com/gpu=3812" in out


def test_contract_token_from_kubeconfig(argo: FakeArgo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    argo.templates["fraud"] = {"metadata": {"name": "fraud"}}
    config = {
        "current-context": "prod",
        "contexts": [{"name": "prod", "context": {"user": "ci"}}],
        "users": [{"name": "ci", "user": {"token": f"Bearer {TOKEN}"}}],
    }
    (tmp_path / "config").write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("ARGO_TOKEN", "wrong")
    assert main(["submit", "fraud", "--token-from", "kubeconfig"]) == 0
    assert argo.requests[-1]["auth"] == f"Bearer {TOKEN}"


def test_the_stand_in_refuses_a_request_its_schema_refuses(argo: FakeArgo) -> None:
    """The validation is real: a malformed create (a string where Argo wants an object, an unknown
    top-level field) is refused with 400 naming the field, while the client's requests pass."""
    import os
    import urllib.error
    import urllib.request

    url = f"http://{os.environ['ARGO_SERVER']}/api/v1/workflows/fraud"
    for body, named in (
        ({"namespace": "fraud", "workflow": {"metadata": {"generateName": "x-"}, "spec": "oops"}}, "spec"),
        ({"namespace": "fraud", "workflow": {"metadata": {}}, "dryRun": True}, "dryRun"),
    ):
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 400 and named in refused.value.read().decode()
