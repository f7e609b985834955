"""issue 28: Kubeflow users could compile the IR but not submit, schedule or follow a run (`mlops submit`
spoke only to Argo). `mlops submit|schedule|status --engine kfp` through kfp.Client, against the
KFP API stand-in that reads every body with kfp_server_api's own models (tests/kfp_api_stand_in.py).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from mlops.cli import main
from tests.kfp_api_stand_in import KfpApiStandIn, cron_problems, strict_problems
from tests.test_argo_submit_contract import argo, argo_schema  # noqa: F401  (the Argo stand-in, for status --wait)

TOKEN = "kfp-token"


@pytest.fixture
def kfp_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[KfpApiStandIn]:
    stand_in = KfpApiStandIn(token=TOKEN).start()
    monkeypatch.setenv("KFP_HOST", stand_in.url)
    monkeypatch.setenv("KFP_TOKEN", f"Bearer {TOKEN}")
    monkeypatch.delenv("KFP_NAMESPACE", raising=False)
    monkeypatch.delenv("KFP_CRON_TIMEZONE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    yield stand_in
    stand_in.stop()


def _sent(stand_in: KfpApiStandIn, method: str, path: str) -> list[dict[str, Any]]:
    return [r for r in stand_in.requests if r["method"] == method and r["path"] == f"/apis/v2beta1{path}"]


# --- the stand-in on known cases -------------------------------------------------------------


def test_stand_in_accepts_a_valid_run_and_refuses_unknown_fields_and_missing_required() -> None:
    """Positive control first: a run as kfp.Client builds it passes; then an unknown field, a
    missing display_name, a bad enum and a wrong type are each named."""
    run = {
        "display_name": "fraud-1",
        "experiment_id": "e",
        "pipeline_version_reference": {"pipeline_id": "p", "pipeline_version_id": "v"},
        "runtime_config": {"parameters": {"gate_threshold": 0.8, "force_retrain": True}},
    }
    assert strict_problems("V2beta1Run", run) == []
    assert strict_problems("V2beta1Run", {**run, "namespace": "fraud"}) == ["V2beta1Run: unknown field 'namespace'"]
    assert strict_problems("V2beta1Run", {k: v for k, v in run.items() if k != "display_name"}) == [
        "V2beta1Run: display_name is required"
    ]
    assert strict_problems("V2beta1Run", {**run, "state": "DONE"})[0].startswith("V2beta1Run.state: 'DONE' is not")
    nested = {**run, "runtime_config": {"parameters": {}, "pipelineRoot": "s3://x"}}
    assert strict_problems("V2beta1Run", nested) == ["V2beta1Run.runtime_config: unknown field 'pipelineRoot'"]
    assert strict_problems("V2beta1Run", {**run, "display_name": 3}) == ["V2beta1Run.display_name: expected str"]


def test_stand_in_reads_cron_as_the_scheduler_does() -> None:
    assert cron_problems("0 0 2 * * *") == []
    assert cron_problems("0 30 1 ? * 1-5") == []
    assert cron_problems("@daily") == []
    assert cron_problems("0 2 * * *") and "expected 6 fields" in cron_problems("0 2 * * *")[0]
    assert cron_problems("0 0 25 * * *") == ["cron '0 0 25 * * *': '25' outside 0-23"]


def test_stand_in_refuses_a_recurring_run_with_a_five_field_cron_and_a_run_with_an_unknown_field(
    kfp_api: KfpApiStandIn,
) -> None:
    experiment = kfp_api.handle(
        "POST",
        "/apis/v2beta1/experiments",
        {},
        json.dumps({"display_name": "x"}).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )[1]
    body = {
        "display_name": "n",
        "experiment_id": experiment["experiment_id"],
        "mode": "ENABLE",
        "max_concurrency": "1",
        "trigger": {"cron_schedule": {"cron": "0 2 * * *"}},
        "pipeline_spec": {"pipelineInfo": {"name": "x"}},
    }
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    code, answer = kfp_api.handle("POST", "/apis/v2beta1/recurringruns", {}, json.dumps(body).encode(), headers)
    assert code == 400 and "expected 6 fields" in answer["message"]
    body["trigger"] = {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert kfp_api.handle("POST", "/apis/v2beta1/recurringruns", {}, json.dumps(body).encode(), headers)[0] == 200
    run = {"display_name": "r", "pipeline_spec": {"x": 1}, "pipeline_id": "p"}
    code, answer = kfp_api.handle("POST", "/apis/v2beta1/runs", {}, json.dumps(run).encode(), headers)
    assert code == 400 and "unknown field 'pipeline_id'" in answer["message"]
    assert kfp_api.handle("POST", "/apis/v2beta1/runs", {}, b"{}", {"Content-Type": "application/json"})[0] == 401


def test_stand_in_parses_the_multipart_upload_and_loads_it_with_kfps_loader(
    kfp_api: KfpApiStandIn, tmp_path: Any
) -> None:
    """A compiled IR is accepted through kfp.Client's own multipart upload; a YAML that is not a
    PipelineSpec is refused with 400, and the run's tasks come from the uploaded IR."""
    from mlops import kfp_client
    from pipelines.kfp import compile_ir
    from pipelines.local import declaration

    pipeline = declaration("fraud")
    good, bad = tmp_path / "fraud.yaml", tmp_path / "not-a-pipeline.yaml"
    compile_ir(pipeline, pipeline.config(), str(good), cluster=True)
    bad.write_text("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n")
    connection = kfp_client.connect(server=kfp_api.url, namespace="fraud")
    kfp = kfp_client.client(connection)
    uploaded = kfp.upload_pipeline(str(good), pipeline_name="fraud", namespace="fraud")
    assert kfp_api.pipelines[uploaded.pipeline_id]["namespace"] == "fraud"
    with pytest.raises(Exception, match="invalid pipeline spec") as refused:
        kfp.upload_pipeline_version(str(bad), "v2", pipeline_id=uploaded.pipeline_id)
    assert getattr(refused.value, "status", None) == 400
    version = next(iter(kfp_api.versions))
    experiment = kfp.create_experiment("fraud", namespace="fraud").experiment_id
    run = kfp.run_pipeline(experiment, "r", pipeline_id=uploaded.pipeline_id, version_id=version)
    kfp_api.fail_runs = True
    states = [kfp.get_run(run.run_id).state for _ in range(4)]
    assert states == ["PENDING", "RUNNING", "FAILED", "FAILED"]
    tasks = {t.display_name: t.state for t in kfp.get_run(run.run_id).run_details.task_details}
    assert {"train", "evaluate", "notify-failure"} <= set(tasks) and "FAILED" in tasks.values()


# --- submit ------------------------------------------------------------------------------------


def test_submit_uploads_then_versions_then_reuses_and_runs_with_the_inputs(
    kfp_api: KfpApiStandIn, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first submit uploads the pipeline (kfp's loader read a PipelineSpec from the multipart
    body) and its version named from sha and IR digest; a later commit adds a version; the same IR
    again uploads nothing. Each run is in the tenant's namespace and experiment, on the
    content-named version, with -p's inputs typed as the IR declares them."""
    import pipelines.local

    monkeypatch.setattr(pipelines.local, "git_commit", lambda start=None: "a" * 40)
    argv = ["submit", "fraud", "--engine", "kfp", "-p", "gate-threshold=0.9", "--force-retrain"]
    assert main(argv) == 0
    uploads = _sent(kfp_api, "POST", "/pipelines/upload")
    assert len(uploads) == 1 and uploads[0]["query"]["namespace"] == "fraud"
    run = _sent(kfp_api, "POST", "/runs")[0]["body"]
    assert run["runtime_config"]["parameters"] == {"gate_threshold": 0.9, "force_retrain": True, "git_commit": "a" * 40}
    experiment = kfp_api.experiments[run["experiment_id"]]
    assert (experiment["display_name"], experiment["namespace"]) == ("fraud", "fraud")
    assert "uploaded" in capsys.readouterr().out

    monkeypatch.setattr(pipelines.local, "git_commit", lambda start=None: "b" * 40)
    assert main(["submit", "fraud", "--engine", "kfp"]) == 0
    assert main(["submit", "fraud", "--engine", "kfp"]) == 0
    versions = [r["query"]["name"] for r in _sent(kfp_api, "POST", "/pipelines/upload_version")]
    assert [name[: len("fraud-") + 12] for name in versions] == ["fraud-" + "a" * 12, "fraud-" + "b" * 12]
    assert len(_sent(kfp_api, "POST", "/pipelines/upload")) == 1
    out = capsys.readouterr().out
    assert "versioned" in out and "unchanged" in out
    first, second, third = (r["body"]["pipeline_version_reference"] for r in _sent(kfp_api, "POST", "/runs"))
    named = {v["display_name"]: v["pipeline_version_id"] for v in kfp_api.versions.values()}
    assert first["pipeline_version_id"] == named[versions[0]]
    assert second == third and second["pipeline_version_id"] == named[versions[1]]


def test_submit_wait_exits_0_on_succeeded_and_1_on_failed(
    kfp_api: KfpApiStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["submit", "fraud", "--engine", "kfp", "--wait", "--poll-seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "PENDING" in out and "RUNNING" in out and "SUCCEEDED" in out
    kfp_api.fail_runs = True
    assert main(["submit", "fraud", "--engine", "kfp", "--wait", "--poll-seconds", "0.01"]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "stand-in failure" in captured.out
    assert "--engine kfp" in captured.err


def test_status_prints_state_and_tasks_and_waits(kfp_api: KfpApiStandIn, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", "fraud", "--engine", "kfp"]) == 0
    run_id = next(iter(kfp_api.runs))
    capsys.readouterr()
    assert main(["status", run_id, "--engine", "kfp"]) == 0
    out = capsys.readouterr().out
    assert "state=PENDING" in out and "- train PENDING" in out
    assert main(["status", run_id, "--engine", "kfp", "--wait", "--poll-seconds", "0.01"]) == 0
    assert "SUCCEEDED" in capsys.readouterr().out


def test_unreachable_server_exits_75(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KFP_HOST", f"http://127.0.0.1:{port}")
    assert main(["status", "some-run", "--engine", "kfp", "--wait", "--namespace", "fraud"]) == 75
    assert main(["status", "some-run", "--engine", "kfp"]) == 75  # namespace kubeflow: kfp.Client probes healthz


def test_unauthorized_names_the_fix(kfp_api: KfpApiStandIn, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("KFP_TOKEN", "wrong")
    assert main(["status", "r", "--engine", "kfp"]) == 2
    assert "KFP_TOKEN" in capsys.readouterr().err


def test_dry_run_sends_nothing(kfp_api: KfpApiStandIn, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", "fraud", "--engine", "kfp", "--dry-run", "-p", "raw-data=s3://b/x.parquet"]) == 0
    assert main(["schedule", "fraud", "--engine", "kfp", "--dry-run", "--timezone", "UTC"]) == 0
    assert kfp_api.requests == []
    out = capsys.readouterr().out
    assert '"raw_data": "s3://b/x.parquet"' in out and '"cron": "0 0 2 * * *"' in out


# --- schedule ----------------------------------------------------------------------------------


def test_schedule_creates_a_recurring_run_with_the_six_field_cron(
    kfp_api: KfpApiStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", "fraud", "--engine", "kfp", "--cron", "30 1 * * 1-5", "--timezone", "UTC"]) == 0
    body = _sent(kfp_api, "POST", "/recurringruns")[0]["body"]
    assert body["trigger"] == {"cron_schedule": {"cron": "0 30 1 * * 1-5"}}
    assert (body["max_concurrency"], body["no_catchup"], body["mode"]) == (1, True, "ENABLE")
    assert main(["schedule", "fraud", "--engine", "kfp", "--cron", "30 1 * * 1-5", "--timezone", "UTC"]) == 0
    assert len(kfp_api.recurring) == 1 and "unchanged" in capsys.readouterr().out
    assert main(["schedule", "fraud", "--engine", "kfp", "--cron", "0 3 * * *", "--timezone", "UTC"]) == 0
    assert [r["trigger"]["cron_schedule"]["cron"] for r in kfp_api.recurring.values()] == ["0 0 3 * * *"]


def test_schedule_refuses_a_timezone_the_scheduler_does_not_read(
    kfp_api: KfpApiStandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """fraud's config says Europe/Amsterdam; KFP has no per-run timezone."""
    assert main(["schedule", "fraud", "--engine", "kfp"]) == 2
    assert "CRON_SCHEDULE_TIMEZONE" in capsys.readouterr().err and kfp_api.requests == []
    monkeypatch.setenv("KFP_CRON_TIMEZONE", "Europe/Amsterdam")
    assert main(["schedule", "fraud", "--engine", "kfp"]) == 0
    assert [r["trigger"]["cron_schedule"]["cron"] for r in kfp_api.recurring.values()] == ["0 0 2 * * *"]


def test_argo_status_wait_follows_a_workflow_too(
    argo: Any,  # noqa: F811  (the fixture imported above)
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`status --wait` is one flag for both engines: on Argo it follows the workflow the same way."""
    argo.phases = ["Running", "Succeeded"]
    assert main(["status", "fraud-x7k2p", "--namespace", "fraud", "--wait", "--poll-seconds", "0"]) == 0
    assert "fraud-x7k2p: Running" in capsys.readouterr().out
    argo.phases = ["Running", "Failed"]
    assert main(["status", "fraud-x7k2p", "--namespace", "fraud", "--wait", "--poll-seconds", "0"]) == 1


def test_schedule_refuses_a_dated_raw_data_a_kfp_recurring_run_cannot_fill(
    kfp_api: KfpApiStandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 31 item 6: KFP v2 leaves [[ScheduledTime]] unexpanded, so a dated cluster.raw_data would
    read the same unfilled template each night: refused before anything is sent, naming the ways
    that work. Control: Argo's CronWorkflow for the same config hands each run its scheduled time."""
    from pipelines.declaration import PipelineDeclaration

    original = PipelineDeclaration.config

    def dated(self: PipelineDeclaration, path: Any = None) -> Any:
        return original(self, path).with_overrides({"cluster.raw_data": "s3://fraud-data/{date}/events.parquet"})

    monkeypatch.setattr(PipelineDeclaration, "config", dated)
    monkeypatch.setenv("KFP_CRON_TIMEZONE", "Europe/Amsterdam")
    assert main(["schedule", "fraud", "--engine", "kfp"]) == 2
    err = capsys.readouterr().err
    assert "kubeflow/pipelines#12494" in err and "--date YYYY-MM-DD" in err and kfp_api.requests == []
    assert main(["schedule", "fraud", "--dry-run"]) == 0
    assert "{{workflow.scheduledTime}}" in capsys.readouterr().out
