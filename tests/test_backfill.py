"""issue 31 item 6: `mlops backfill` (one run per date, N in flight, each date ran / cached / failed)
and `mlops submit --date`, on known cases and against the Argo and KFP server stand-ins.

The Argo stand-in is tests/test_argo_submit_contract.py's FakeArgo (every request body validated
against Argo's JSON schema), here naming each created workflow after its logical date and ending
it as the test scripts: its memoized steps answered from the cache, run, or a pod failed with an
exit code. Its answers carry what a real server's do for a WorkflowTemplate run: the template's
spec as stored (the pipeline's own rendering, so which steps are memoized is the project's) and
nodes with `memoizationStatus` as Argo's controller sets it (a hit runs no pod; a miss is the
retry parent of the attempts that ran).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from components.errors import ComponentError
from mlops.backfill import (
    CACHED,
    FAILED,
    RAN,
    Outcome,
    argo_outcome,
    check_parallel,
    dates_between,
    exit_code,
    kfp_outcome,
    table,
)
from mlops.cli import main
from tests.kfp_api_stand_in import KfpApiStandIn
from tests.test_argo_submit_contract import FakeArgo, argo, argo_schema, argo_server  # noqa: F401  (fixtures)
from tests.test_kfp_submit import kfp_api  # noqa: F401  (the KFP stand-in fixture)

DAY = dt.date(2026, 12, 4)
MEMOIZED = ("materialize", "train", "evaluate")
"""The fraud pipeline's memoized steps (pipelines/caching.py); validate and drift run every time."""


# --- the workflow documents, as Argo's controller writes them ---------------------------------


def _node(name: str, step: str, kind: str, phase: str, **more: Any) -> dict[str, Any]:
    """A node of `step`'s template (a retry attempt's display name adds `(n)`)."""
    shown = more.pop("displayName", step)
    return {"id": name, "name": name, "displayName": shown, "type": kind, "phase": phase, "templateName": step} | more


def _memo(step: str, hit: bool) -> dict[str, Any]:
    return {"memoizationStatus": {"hit": hit, "key": f"{step}-0123abcd-fraud", "cacheName": "mlops-step-cache"}}


def ended(name: str, script: str, templates: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A finished run of the fraud WorkflowTemplate. `script`: "cached" (every memoized step a hit),
    "ran" (train missed and ran), "ran-unmarked" (train's pod ran, no memoizationStatus anywhere:
    only the stored template says it is memoized), "failed-<exit code>" (materialize's pod failed),
    "oom" (train killed for memory), "deadline" (failed with no pod failed)."""
    nodes: dict[str, Any] = {}
    root = _node(name, name, "DAG", "Succeeded", children=[], startedAt="2026-12-04T02:00:00Z")
    nodes[name] = root

    def attempt(step: str, phase: str, index: int, **more: Any) -> None:
        parent = nodes[f"{name}.{step}"]
        pod = _node(f"{name}.{step}({index})", step, "Pod", phase, displayName=f"{step}({index})", **more)
        pod["startedAt"] = f"2026-12-04T02:{len(nodes):02d}:00Z"
        parent.setdefault("children", []).append(pod["id"])
        nodes[pod["id"]] = pod

    for step in ("validate", "drift", *MEMOIZED):
        memoized = step in MEMOIZED and script != "ran-unmarked"
        hit = memoized and (script == "cached" or (script.startswith("ran") and step != "train"))
        phase = "Succeeded"
        node = _node(f"{name}.{step}", step, "Pod" if hit else "Retry", phase, **(_memo(step, hit) if memoized else {}))
        node["startedAt"] = f"2026-12-04T02:{len(nodes):02d}:00Z"
        nodes[node["id"]] = node
        root["children"].append(node["id"])
        if not hit:
            attempt(step, phase, 0, outputs={"exitCode": "0"}, resourcesDuration={"cpu": 30, "memory": 512})
    status: dict[str, Any] = {"phase": "Succeeded", "nodes": nodes}
    if script.startswith("failed-"):
        code = script.split("-", 1)[1]
        nodes[f"{name}.materialize"]["phase"] = nodes[f"{name}.materialize(0)"]["phase"] = "Failed"
        nodes[f"{name}.materialize(0)"] |= {"outputs": {"exitCode": code}, "message": f"Error (exit code {code})"}
        status |= {"phase": "Failed", "message": "child 'materialize' failed"}
    if script == "oom":
        nodes[f"{name}.train(0)"] |= {"phase": "Failed", "message": "OOMKilled (exit code 137)"}
        status |= {"phase": "Failed", "message": "child 'train' failed"}
    if script == "deadline":
        status |= {"phase": "Failed", "message": "Step exceeded its deadline"}
    if templates is not None:
        status["storedWorkflowTemplateSpec"] = {"templates": templates}
    metadata = {"name": name, "namespace": "fraud"}
    return {"metadata": metadata, "spec": {"workflowTemplateRef": {"name": "fraud"}}, "status": status}


@pytest.fixture(scope="module")
def fraud_template() -> dict[str, Any]:
    """The fraud pipeline's WorkflowTemplate as `mlops submit --install-template` installs it."""
    from pipelines.argo import render
    from pipelines.local import declaration

    pipeline = declaration("fraud")
    template: dict[str, Any] = render(pipeline, pipeline.config())["WorkflowTemplate"]
    return template


# --- dates, classification, exit code on known cases -----------------------------------------


def test_dates_are_every_calendar_day_both_ends_included() -> None:
    assert dates_between("2028-02-27", "2028-03-01") == [dt.date(2028, 2, d) for d in (27, 28, 29)] + [
        dt.date(2028, 3, 1)
    ]
    assert dates_between("2026-12-04", "2026-12-04") == [DAY]
    assert len(dates_between("2027-01-01", "2028-01-01")) == 366


@pytest.mark.parametrize(
    ("start", "end", "named"),
    [
        ("2026-12-05", "2026-12-04", "--from 2026-12-05 is after --to 2026-12-04"),
        ("2026-01-01", "2027-01-02", "367 dates; a backfill runs at most 366"),
        ("2026-12-32", "2027-01-02", "neither a date (YYYY-MM-DD)"),
        ("", "2026-12-04", "--from is empty"),
    ],
)
def test_dates_refused_name_the_problem_and_fix(start: str, end: str, named: str) -> None:
    with pytest.raises(ComponentError) as refused:
        dates_between(start, end)
    assert named in refused.value.problem and refused.value.fix


def test_parallel_below_one_is_refused() -> None:
    assert check_parallel(1) == 1
    with pytest.raises(ComponentError, match="--parallel 1 or more"):
        check_parallel(0)


def test_every_memoized_step_a_hit_is_cached_though_validate_and_drift_ran(fraud_template: dict[str, Any]) -> None:
    templates = fraud_template["spec"]["templates"]
    assert {t["name"] for t in templates if t.get("memoize")} == set(MEMOIZED)  # the project's own memoized steps
    outcome = argo_outcome(DAY, "fraud-a", ended("fraud-a", "cached", templates))
    assert outcome == Outcome(day=DAY, run="fraud-a", result=CACHED)


@pytest.mark.parametrize("script", ["ran", "ran-unmarked"])
def test_a_memoized_step_whose_pod_ran_is_not_cached(script: str, fraud_template: dict[str, Any]) -> None:
    """Negative control: train missed the cache (its retry parent's memoizationStatus says hit: false,
    or only the stored template says train is memoized) and its pod ran, so the run ran."""
    templates = fraud_template["spec"]["templates"]
    assert argo_outcome(DAY, "fraud-b", ended("fraud-b", script, templates)).result == RAN
    assert argo_outcome(DAY, "fraud-b", ended("fraud-b", "cached", templates)).result == CACHED


def test_no_memoized_step_known_is_ran_never_cached() -> None:
    """Without the stored template and without memoizationStatus nothing says a step was cached."""
    assert argo_outcome(DAY, "fraud-c", ended("fraud-c", "ran-unmarked")).result == RAN


@pytest.mark.parametrize(
    ("script", "permanent", "step", "message", "code"),
    [
        ("failed-2", True, "materialize", "Error (exit code 2)", 2),
        ("failed-1", False, "materialize", "Error (exit code 1)", 75),
        ("failed-75", False, "materialize", "Error (exit code 75)", 75),
        ("oom", True, "train", "OOMKilled (exit code 137)", 2),
        ("deadline", False, "-", "Step exceeded its deadline", 75),
    ],
)
def test_a_failed_run_names_its_step_and_whether_a_rerun_can_pass(
    script: str, permanent: bool, step: str, message: str, code: int
) -> None:
    outcome = argo_outcome(DAY, "fraud-d", ended("fraud-d", script))
    assert (outcome.result, outcome.permanent, outcome.step, outcome.message) == (FAILED, permanent, step, message)
    assert exit_code([outcome]) == code


def _kfp_run(state: str, tasks: list[tuple[str, str, str]]) -> dict[str, Any]:
    details = [
        {"display_name": name, "state": task_state} | ({"error": {"message": error}} if error else {})
        for name, task_state, error in tasks
    ]
    return {"run_id": "r1", "state": state, "run_details": {"task_details": details}}


def test_kfp_cached_is_every_executor_skipped_by_the_cache_decision() -> None:
    """KFP's v2beta1 API has no CACHED task state; a cache hit is the executor node SKIPPED."""
    import kfp_server_api.models as models

    assert "CACHED" not in models.V2beta1RuntimeState.allowable_values
    hit = [("train-driver", "SUCCEEDED", ""), ("train", "SUCCEEDED", ""), ("executor", "SKIPPED", "")]
    assert kfp_outcome(DAY, "r1", _kfp_run("SUCCEEDED", hit + hit)).result == CACHED
    ran = [("train-driver", "SUCCEEDED", ""), ("executor", "SUCCEEDED", "")]
    assert kfp_outcome(DAY, "r1", _kfp_run("SUCCEEDED", hit + ran)).result == RAN, "control: one executor ran"
    assert kfp_outcome(DAY, "r1", _kfp_run("SUCCEEDED", [("train", "SUCCEEDED", "")])).result == RAN


def test_kfp_failure_reads_the_exit_code_from_the_message() -> None:
    permanent = kfp_outcome(DAY, "r1", _kfp_run("FAILED", [("train", "FAILED", "train exited 2 (stand-in failure)")]))
    assert (permanent.result, permanent.step, permanent.permanent) == (FAILED, "train", True)
    transient = kfp_outcome(DAY, "r1", _kfp_run("FAILED", [("train", "FAILED", "exit status 75")]))
    assert (transient.result, transient.permanent) == (FAILED, False)
    assert exit_code([permanent, transient]) == 2 and exit_code([transient]) == 75


def test_exit_code_and_table() -> None:
    ran = Outcome(day=DAY, run="fraud-a", result=RAN)
    cached = Outcome(day=DAY + dt.timedelta(days=1), run="fraud-b", result=CACHED)
    refused = Outcome(day=DAY + dt.timedelta(days=2), run="", result=FAILED, step="submit", message="denied\n twice")
    assert exit_code([ran, cached]) == 0
    assert exit_code([ran, refused]) == 75
    lines = table([ran, cached, refused]).splitlines()
    assert lines[0].split() == ["date", "run", "result", "step", "message"]
    assert lines[1].split() == ["2026-12-04", "fraud-a", "ran"]
    assert lines[3].split() == ["2026-12-06", "-", "failed", "submit", "denied", "twice"]
    assert all(line == line.rstrip() for line in lines)


# --- mlops backfill against the Argo stand-in ------------------------------------------------


class DatedArgo(FakeArgo):
    """FakeArgo that names each created workflow after its logical date, answers Running twice and
    then as `script` says for that date, refuses a create for a date in `refuse`, and records how many
    runs were in flight (created, not yet seen ended) at most."""

    def __init__(self, schema: dict[str, Any], template: dict[str, Any]) -> None:
        super().__init__(schema)
        self.templates["fraud"] = template
        self.script: dict[str, str] = {}
        self.refuse: set[str] = set()
        self.dates: dict[str, str] = {}
        self.reads: dict[str, int] = {}
        self.in_flight = self.most_in_flight = 0

    def created(self, workflow: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        day = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}["logical-date"]
        if day in self.refuse:
            return 400, {"code": 3, "message": f"admission webhook denied the request: no extract for {day}"}
        name = f"fraud-{day.replace('-', '')}"
        self.dates[name], self.reads[name] = day, 0
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        return 200, self.workflow(name, "Pending")

    def read(self, name: str) -> tuple[int, dict[str, Any]]:
        self.reads[name] += 1
        if self.reads[name] <= 2:
            return 200, self.workflow(name, "Running")
        if self.reads[name] == 3:  # the read that shows the client the run ended
            self.in_flight -= 1
        stored = self.templates["fraud"]["spec"]["templates"]
        return 200, ended(name, self.script.get(self.dates[name], "ran"), stored)


@pytest.fixture
def dated_argo(
    monkeypatch: pytest.MonkeyPatch,
    argo_schema: dict[str, Any],  # noqa: F811  (the fixture imported above)
    fraud_template: dict[str, Any],
) -> Iterator[DatedArgo]:
    with argo_server(monkeypatch, DatedArgo(argo_schema, fraud_template)) as state:
        assert isinstance(state, DatedArgo)
        yield state


def _created(state: FakeArgo) -> list[dict[str, Any]]:
    return [r for r in state.requests if r["method"] == "POST" and r["path"] == "/api/v1/workflows/fraud"]


def test_backfill_runs_each_date_two_at_a_time_and_reports_each(
    dated_argo: DatedArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    dated_argo.script = {"2026-12-01": "cached", "2026-12-02": "failed-1"}
    argv = ["backfill", "fraud", "--from", "2026-12-01", "--to", "2026-12-03", "--parallel", "2", "--poll-seconds", "0"]
    assert main(argv) == 75
    bodies = [r["body"]["workflow"] for r in _created(dated_argo)]
    assert [{p["name"]: p["value"] for p in b["spec"]["arguments"]["parameters"]} for b in bodies] == [
        {"logical-date": "2026-12-01"},
        {"logical-date": "2026-12-02"},
        {"logical-date": "2026-12-03"},
    ]
    assert [b["metadata"]["labels"]["mlops.private-platform.io/logical-date"] for b in bodies] == [
        "2026-12-01",
        "2026-12-02",
        "2026-12-03",
    ]
    assert dated_argo.most_in_flight == 2 and dated_argo.in_flight == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("2026-12-0") and "  " in line}
    assert rows["2026-12-01"] == ["2026-12-01", "fraud-20261201", "cached"]
    assert rows["2026-12-02"][:4] == ["2026-12-02", "fraud-20261202", "failed", "materialize"]
    assert "Error (exit code 1)" in out
    assert rows["2026-12-03"] == ["2026-12-03", "fraud-20261203", "ran"]
    assert "3 dates: 1 ran, 1 cached, 1 failed; exit 75" in out


def test_backfill_one_at_a_time_by_default_and_exit_2_on_a_permanent_failure(
    dated_argo: DatedArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    dated_argo.script = {"2026-12-02": "failed-2"}
    assert main(["backfill", "fraud", "--from", "2026-12-01", "--to", "2026-12-02", "--poll-seconds", "0"]) == 2
    assert dated_argo.most_in_flight == 1
    assert "a date failed permanently" in capsys.readouterr().out


def test_a_refused_submit_fails_its_date_and_the_others_go_on(
    dated_argo: DatedArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    dated_argo.refuse = {"2026-12-02"}
    assert main(["backfill", "fraud", "--from", "2026-12-01", "--to", "2026-12-03", "--poll-seconds", "0"]) == 2
    assert len(_created(dated_argo)) == 3 and sorted(dated_argo.dates.values()) == ["2026-12-01", "2026-12-03"]
    out = capsys.readouterr().out
    refused = next(line for line in out.splitlines() if line.startswith("2026-12-02  "))
    assert refused.split()[1:4] == ["-", "failed", "submit"]
    assert "no extract for 2026-12-02" in refused
    assert "2 ran, 0 cached, 1 failed" in out


def test_an_unauthorized_server_stops_the_backfill(
    dated_argo: DatedArgo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "stale")
    assert main(["backfill", "fraud", "--from", "2026-12-01", "--to", "2026-12-03", "--poll-seconds", "0"]) == 2
    assert len(_created(dated_argo)) == 1, "stopped at the first 401, not tried for each date"
    captured = capsys.readouterr()
    assert "401 Unauthorized" in captured.err and "2026-12-02" not in captured.out


def test_backfill_dry_run_prints_the_dates_and_bodies_and_sends_nothing(
    dated_argo: DatedArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", "fraud", "--from", "2026-12-30", "--to", "2027-01-01", "--dry-run"]) == 0
    assert dated_argo.requests == []
    plan = json.loads(capsys.readouterr().out)
    assert plan["dates"] == ["2026-12-30", "2026-12-31", "2027-01-01"]
    parameters = [r["body"]["workflow"]["spec"]["arguments"]["parameters"] for r in plan["requests"]]
    assert parameters == [[{"name": "logical-date", "value": day}] for day in plan["dates"]]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--from", "2026-12-04", "--to", "2026-12-01"], "is after --to"),
        (["--from", "2026-12-01", "--to", "2026-12-04", "--parallel", "0"], "--parallel 1 or more"),
        (["--from", "2025-01-01", "--to", "2026-12-04"], "at most 366"),
        (["--from", "04/12/2026", "--to", "2026-12-04"], "YYYY-MM-DD"),
    ],
)
def test_backfill_refuses_before_sending_anything(
    dated_argo: DatedArgo, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    assert main(["backfill", "fraud", *argv]) == 2
    assert named in capsys.readouterr().err and dated_argo.requests == []


# --- mlops submit --date ----------------------------------------------------------------------


def test_submit_date_sets_the_run_input_and_the_label(
    argo: FakeArgo,  # noqa: F811  (the fixture imported above)
    capsys: pytest.CaptureFixture[str],
) -> None:
    argo.templates["fraud"] = {"metadata": {"name": "fraud"}}
    assert main(["submit", "fraud", "--date", "2026-12-04"]) == 0
    workflow = argo.requests[-1]["body"]["workflow"]
    assert workflow["spec"]["arguments"]["parameters"] == [{"name": "logical-date", "value": "2026-12-04"}]
    assert workflow["metadata"]["labels"]["mlops.private-platform.io/logical-date"] == "2026-12-04"
    assert main(["submit", "fraud"]) == 0  # control: no date, no label and no logical-date
    undated = argo.requests[-1]["body"]["workflow"]
    assert "mlops.private-platform.io/logical-date" not in undated["metadata"]["labels"]
    assert "arguments" not in undated["spec"]
    sent = len(argo.requests)
    assert main(["submit", "fraud", "--date", "2026-02-30"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert main(["submit", "fraud", "--date", "2026-12-04", "-p", "logical-date=2026-12-05"]) == 2
    assert "name different days" in capsys.readouterr().err
    assert len(argo.requests) == sent, "a refused date sends nothing"


# --- mlops backfill --engine kfp against the KFP stand-in ------------------------------------


def test_kfp_backfill_runs_each_date_with_its_logical_date(
    kfp_api: KfpApiStandIn,  # noqa: F811  (the fixture imported above)
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["backfill", "fraud", "--engine", "kfp", "--from", "2026-12-01", "--to", "2026-12-02", "--poll-seconds", "0"]
    assert main(argv) == 0
    runs = [r["body"] for r in kfp_api.requests if r["method"] == "POST" and r["path"] == "/apis/v2beta1/runs"]
    assert [r["runtime_config"]["parameters"]["logical_date"] for r in runs] == ["2026-12-01", "2026-12-02"]
    assert [r["display_name"] for r in runs] == ["fraud-2026-12-01", "fraud-2026-12-02"]
    out = capsys.readouterr().out
    assert "2 dates: 2 ran, 0 cached, 0 failed; exit 0" in out
    kfp_api.fail_runs = True
    assert main([*argv[:5], "2026-12-03", "--to", "2026-12-03", "--poll-seconds", "0"]) == 2
    out = capsys.readouterr().out
    failed = next(line for line in out.splitlines() if line.startswith("2026-12-03  "))
    assert "failed" in failed and "exited 2 (stand-in failure)" in failed


def test_kfp_submit_date_sets_logical_date(
    kfp_api: KfpApiStandIn,  # noqa: F811  (the fixture imported above)
) -> None:
    assert main(["submit", "fraud", "--engine", "kfp", "--date", "2026-12-04"]) == 0
    run = next(r["body"] for r in kfp_api.requests if r["method"] == "POST" and r["path"] == "/apis/v2beta1/runs")
    assert run["runtime_config"]["parameters"]["logical_date"] == "2026-12-04"
