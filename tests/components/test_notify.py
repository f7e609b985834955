"""The owner's notices (components/steps/notify.py): written as files first, then pushed for Alertmanager.

Issue 28 ("nobody is told"): notify wrote the gate-failure notice and the exit handler's
run-failure notice to files and delivered neither. Here the push is received by a loopback
recorder (it answers what the test tells it to, and keeps each request); the real Pushgateway,
Prometheus and Alertmanager take the same pushes in tests/integration/test_drift_monitoring.py.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.errors import TRANSIENT_EXIT_CODE, ComponentError, TransientError
from components.steps import notify
from tests.cli_runner import mlops
from tests.loopback_http import QuietHandler, start

SCORES = {
    "gate": {"metric": "roc_auc", "value": 0.61, "threshold": 0.8, "direction": ">="},
    "holdout_rows": 2000,
    "model_sha256": "ab" * 32,
}
# Argo's {{workflow.failures}}: a JSON list of the failed nodes
FAILURES = json.dumps(
    [
        {"displayName": "train", "templateName": "train", "phase": "Failed", "message": "exit code 2",
         "podName": "fraud-x7k2p-train-1"},
        {"displayName": "materialize", "templateName": "materialize", "phase": "Error", "message": "pod deleted"},
    ]
)  # fmt: skip


class PushRecorder:
    """A loopback HTTP server in the Pushgateway's place: answers `status`, keeps each request."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(QuietHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"method": "PUT", "path": self.path, "body": body.decode()})
                self.send_response(outer.status)
                self.end_headers()

        self.server = start(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[PushRecorder]:
    recorder = PushRecorder()
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", recorder.url)
    yield recorder
    recorder.server.shutdown()
    recorder.server.server_close()


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def gate_failed(tmp_path: Path) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(SCORES))
    return notify.notify(
        str(metrics), str(tmp_path / "notice"), str(tmp_path / "notice.md"),
        owner="fraud-ml-oncall@bank.internal", pipeline="fraud", model_name="fraud-detector",
        namespace="fraud", run_name="fraud-x7k2p",
    )  # fmt: skip


def test_a_gate_failure_is_pushed_in_the_tenants_group_after_its_file(tmp_path: Path, gateway: PushRecorder) -> None:
    """issue 28: the gate-failure notice was a file nobody received (the workflow still ends
    Succeeded, so no alert fired either): it is now pushed, labelled for the owner's route."""
    summary = gate_failed(tmp_path)
    notice = json.loads((tmp_path / "notice").read_text())
    assert notice["kind"] == "gate-failed" and notice["namespace"] == "fraud" and notice["run"] == "fraud-x7k2p"
    assert "did not pass its gate" in (tmp_path / "notice.md").read_text()
    assert summary["delivered"] == gateway.url
    [push] = gateway.requests
    # one group per (pipeline, kind) in the namespace's own Pushgateway, no pushed namespace (issue 29):
    # the next gate failure replaces this one
    assert push["path"] == "/metrics/job/mlops-notice/kind/gate-failed/pipeline/fraud"
    line = next(line for line in push["body"].splitlines() if line.startswith(notify.GATE_FAILED + "{"))
    assert 'model="fraud-detector"' in line and 'run="fraud-x7k2p"' in line and 'metric="roc_auc"' in line
    assert abs(float(line.split()[-1]) - time.time()) < 60  # when, in seconds


def test_a_run_failure_names_argos_failed_nodes(tmp_path: Path, gateway: PushRecorder) -> None:
    """issue 28: the exit handler's run-failure notice was a file nobody received."""
    summary = notify.notify_failure(
        str(tmp_path / "notice"), pipeline="fraud", owner="fraud-ml-oncall@bank.internal",
        workflow="fraud-x7k2p", status="Failed", failures=FAILURES, namespace="fraud",
    )  # fmt: skip
    notice = json.loads((tmp_path / "notice").read_text())
    assert [node["displayName"] for node in notice["failed_steps"]] == ["train", "materialize"]
    assert summary["failed_steps"] == 2 and summary["delivered"] == gateway.url
    [push] = gateway.requests
    assert push["path"] == "/metrics/job/mlops-notice/kind/run-failed/pipeline/fraud"
    line = next(line for line in push["body"].splitlines() if line.startswith(notify.RUN_FAILED + "{"))
    assert 'failed_steps="materialize,train"' in line and 'status="Failed"' in line
    assert 'workflow="fraud-x7k2p"' in line


def test_no_pushgateway_configured_writes_the_notice_and_delivers_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: a laptop without monitoring (empty MLOPS_PUSHGATEWAY_URL), as the drift step."""
    monkeypatch.delenv("MLOPS_PUSHGATEWAY_URL", raising=False)
    assert gate_failed(tmp_path)["delivered"] == ""
    assert json.loads((tmp_path / "notice").read_text())["kind"] == "gate-failed"


def test_an_unreachable_or_failing_pushgateway_is_transient_and_the_file_is_written_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateway: PushRecorder
) -> None:
    gateway.status = 503
    with pytest.raises(TransientError, match="did not take the owner's notice"):
        gate_failed(tmp_path / "a")
    assert json.loads((tmp_path / "a" / "notice").read_text())["kind"] == "gate-failed"
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", closed_port())
    with pytest.raises(TransientError, match="MLOPS_PUSHGATEWAY_URL"):
        gate_failed(tmp_path / "b")
    assert (tmp_path / "b" / "notice.md").exists()


def test_a_refused_push_is_permanent(tmp_path: Path, gateway: PushRecorder) -> None:
    """A 403 (a push the tenant may not make) does not pass on retry: exit 2, saying whose group."""
    gateway.status = 403
    with pytest.raises(ComponentError, match="refused the owner's notice") as refused:
        gate_failed(tmp_path)
    assert not isinstance(refused.value, TransientError)
    assert "group {'pipeline': 'fraud'" in str(refused.value)  # whose group, and the fix


def test_the_exit_handlers_command_exits_75_when_the_pushgateway_is_down(tmp_path: Path) -> None:
    """As the exit handler's retry strategy sees it: `mlops step notify-failure` exits 75 (retried)."""
    import os

    env = {**os.environ, "MLOPS_PUSHGATEWAY_URL": closed_port()}
    result = mlops("step", "notify-failure", "--notice-out", str(tmp_path / "notice"),
                   "--pipeline", "fraud", "--owner", "o@x", "--workflow", "fraud-1", "--status", "Failed",
                   "--failures", FAILURES, "--namespace", "fraud", env=env, timeout=120)  # fmt: skip
    assert result.returncode == TRANSIENT_EXIT_CODE, result.stdout + result.stderr
    assert json.loads((tmp_path / "notice").read_text())["workflow"] == "fraud-1"


def test_argos_failures_parse_and_anything_else_is_kept_as_a_message() -> None:
    assert notify.failed_nodes("") == []
    assert notify.failed_nodes("train failed") == [{"message": "train failed"}]
    assert notify.failed_nodes('{"not": "a list"}') == [{"message": '{"not": "a list"}'}]
    assert notify.failed_nodes(FAILURES)[0] == {
        "displayName": "train", "templateName": "train", "phase": "Failed", "message": "exit code 2",
        "podName": "fraud-x7k2p-train-1",
    }  # fmt: skip


class _Output:
    def __init__(self, path: Path) -> None:
        self.path = str(path)


def test_kubeflows_exit_handler_sends_the_same_notice(tmp_path: Path, gateway: PushRecorder) -> None:
    """issue 28: a Kubeflow run had no exit handler at all. The IR's exit task (pipelines/kfp.py)
    gets the values Argo's exit handler gets; a failed run pushes the run-failed notice, a run
    that succeeded writes a placeholder and pushes nothing."""
    from kfp.dsl import PipelineTaskFinalStatus

    from pipelines.argo import render
    from pipelines.kfp import build_pipeline
    from pipelines.kfp_components import notify_failure
    from pipelines.local import declaration

    fraud = declaration("fraud")
    cfg = fraud.config()
    handler = next(
        t for t in render(fraud, cfg)["WorkflowTemplate"]["spec"]["templates"] if t["name"] == "notify-failure"
    )["container"]["args"]
    argo = {handler[i].removeprefix("--"): handler[i + 1] for i in range(0, len(handler), 2)}
    ir = build_pipeline(fraud, cfg, cluster=True).pipeline_spec
    exit_task = ir.root.dag.tasks["notify-failure"]
    kfp = {
        name: value.runtime_value.constant.string_value
        for name, value in exit_task.inputs.parameters.items()
        if name != "final_status"  # the orchestrator fills it in
    }
    assert {name: argo[name] for name in ("pipeline", "owner", "namespace")} == kfp

    def final(state: str) -> PipelineTaskFinalStatus:
        return PipelineTaskFinalStatus(
            state=state,
            pipeline_job_resource_name="projects/p/locations/l/pipelineJobs/fraud-20261204",
            pipeline_task_name="exit-handler-1",
            error_code=None if state == "SUCCEEDED" else 9,
            error_message=None if state == "SUCCEEDED" else "task train failed",
        )

    notify_failure(final("SUCCEEDED"), **kfp, notice=_Output(tmp_path / "ok"))
    assert json.loads((tmp_path / "ok").read_text())["kind"] == "none" and gateway.requests == []
    notify_failure(final("FAILED"), **kfp, notice=_Output(tmp_path / "failed"))
    notice = json.loads((tmp_path / "failed").read_text())
    assert notice["workflow"] == "fraud-20261204" and notice["failed_steps"][0]["message"] == "task train failed"
    [push] = gateway.requests
    assert push["path"].startswith("/metrics/job/mlops-notice/kind/run-failed/pipeline/fraud")


def test_the_failed_steps_label_names_each_step_once_not_the_dag_or_its_attempts() -> None:
    """Issue 28 (fidelity, Argo's JSON failures): `{{workflow.failures}}` lists the workflow's own
    DAG node and each failed attempt beside the task, so the label read `fraud-ab12cd,validate,
    validate(0)`; and Argo passes `null` when no node failed, which became a bogus message."""
    from components.steps.notify import failed_nodes, failed_step_names

    failures = (
        '[{"displayName": "fraud-ab12cd", "templateName": "fraud", "phase": "Failed"},'
        ' {"displayName": "validate", "templateName": "validate", "phase": "Failed"},'
        ' {"displayName": "validate(0)", "templateName": "validate", "phase": "Failed"}]'
    )
    assert failed_step_names(failed_nodes(failures), "fraud-ab12cd") == ["validate"]
    assert failed_nodes("null") == []
