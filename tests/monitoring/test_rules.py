"""Every alert rule, unit-tested by Prometheus's own `promtool test rules` (not by reading YAML)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

RULES = REPO / "manifests" / "monitoring" / "prometheus-rules.yaml"
TESTS = Path(__file__).parent / "prometheus-rules.test.yaml"


def _alerts() -> set[str]:
    document = yaml.safe_load(RULES.read_text())
    return {rule["alert"] for group in document["spec"]["groups"] for rule in group["rules"]}


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make test` installs Debian's prometheus package (make monitoring-install)"
    return found


@pytest.mark.integration  # Debian's promtool, installed by `make test` (services-install)
def test_promtool_passes_every_rule_test(tmp_path: Path) -> None:
    document = yaml.safe_load(RULES.read_text())
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": document["spec"]["groups"]}, sort_keys=False))
    shutil.copy(TESTS, tmp_path / "tests.yaml")
    checked = subprocess.run(
        [_promtool(), "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([_promtool(), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.integration
def test_promtool_fails_a_wrong_expectation(tmp_path: Path) -> None:
    """The negative control: the same harness fails when an expectation is wrong."""
    document = yaml.safe_load(RULES.read_text())
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": document["spec"]["groups"]}, sort_keys=False))
    tests = yaml.safe_load(TESTS.read_text())
    drift = next(test for test in tests["tests"] if test["name"].startswith("drift"))
    case = next(case for case in drift["alert_rule_test"] if case["alertname"] == "ModelDriftDetected")
    case["exp_alerts"][0]["exp_labels"]["pipeline"] = "forecast"
    tests["tests"] = [drift]  # the one group the wrong expectation is in (the others cost 15 s)
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    tested = subprocess.run([_promtool(), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert tested.returncode != 0 and "ModelDriftDetected" in tested.stdout + tested.stderr


def test_every_alert_is_shown_firing() -> None:
    tests = yaml.safe_load(TESTS.read_text())
    firing = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert _alerts() == firing, "every rule needs a promtool case where it fires"


TENANT_ROUTED = frozenset({"DecisionLogDropping", "DecisionLogSpilling", "RequestLogDropping"})
"""Raised from the serving pods' own series (issue 32: the decision log), which carry their
namespace and no pipeline: they reach the tenant's owner by its catch-all route (TenantOwnerRoute)."""


def _model_owner_alerts_without_routing(rules: dict[str, Any], tests: dict[str, Any]) -> list[str]:
    """Each rule labelled `owner: model-owner` that is never shown firing, or is shown raising a
    model-owner alert without every label the owner's route matches on (pipelines/alerting.py):
    the pipeline owner's, or for TENANT_ROUTED the tenant owner's."""
    from pipelines.alerting import OwnerRoute, TenantOwnerRoute

    by_pipeline = set(OwnerRoute(pipeline="p", owner="o", namespace="n").matchers) - {"owner"}
    by_tenant = set(TenantOwnerRoute(tenant="t", owner="o").matchers) - {"owner"}
    shown: dict[str, list[dict[str, str]]] = {}
    for test in tests["tests"]:
        for case in test.get("alert_rule_test", []):
            for alert in case.get("exp_alerts") or []:
                shown.setdefault(case["alertname"], []).append(alert["exp_labels"])
    problems = []
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            if rule["labels"].get("owner") != "model-owner":
                continue
            raised = [labels for labels in shown.get(rule["alert"], []) if labels.get("owner") == "model-owner"]
            if not raised:
                problems.append(f"{rule['alert']}: no promtool case shows it firing")
            routed_by = by_tenant if rule["alert"] in TENANT_ROUTED else by_pipeline
            problems += [
                f"{rule['alert']}: {labels} has no {key}"
                for labels in raised
                for key in sorted(routed_by)
                if not labels.get(key)
            ]
    return problems


def test_every_model_owner_alert_carries_what_the_owners_route_matches() -> None:
    """issue 28: ArgoWorkflowFailed carried no `pipeline` label, so the tenant's AlertmanagerConfig
    (routes match owner=model-owner and pipeline=<name>) never sent it to the owner its runbook
    names. Every rule labelled `owner: model-owner` is shown firing in a promtool case, with the
    route's labels; promtool (test_promtool_passes_every_rule_test) proves the rule raises exactly
    those labels. The control: the same walk over ArgoWorkflowFailed's old expectation fails."""
    rules = yaml.safe_load(RULES.read_text())
    tests = yaml.safe_load(TESTS.read_text())
    assert _model_owner_alerts_without_routing(rules, tests) == []
    pipelines = next(test for test in tests["tests"] if test["name"] == "pipelines")
    for case in pipelines["alert_rule_test"]:
        for alert in case.get("exp_alerts") or []:
            alert["exp_labels"].pop("pipeline", None)  # as before the fix: namespace and phase only
    assert any(
        problem.startswith("ArgoWorkflowFailed:") and problem.endswith("has no pipeline")
        for problem in _model_owner_alerts_without_routing(rules, tests)
    )
    decisions = next(test for test in tests["tests"] if test["name"] == "decision log")
    for case in decisions["alert_rule_test"]:
        for alert in case.get("exp_alerts") or []:
            alert["exp_labels"].pop("namespace", None)  # a tenant-routed alert without its namespace
    assert "DecisionLogDropping: " in " ".join(_model_owner_alerts_without_routing(rules, tests))
    unshown = {**tests, "tests": [test for test in tests["tests"] if test["name"] != "pipelines"]}
    assert "PipelineRunFailed: no promtool case shows it firing" in _model_owner_alerts_without_routing(rules, unshown)


def test_the_drift_rules_read_what_the_drift_step_pushes() -> None:
    """The drift step's families (components/steps/drift_metrics.py, the one source) in the rules that
    watch the nightly: a renamed family would leave DriftMetricsMissing and DriftPValueNaN silent, and
    only the platform-wide DriftMetricsAbsent would fire, a day later (helper-93)."""
    from components.steps.drift_metrics import HEARTBEAT, METRICS, P_VALUE, SHARE, THRESHOLD

    rules = yaml.safe_load(RULES.read_text())
    exprs: dict[str, str] = {}
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                exprs[rule["alert"]] = exprs.get(rule["alert"], "") + rule["expr"]
    assert {HEARTBEAT, P_VALUE, SHARE, THRESHOLD} <= set(METRICS)  # each one pushed
    assert f"{HEARTBEAT}{{" in exprs["DriftMetricsMissing"] and f"{HEARTBEAT}{{" in exprs["DriftMetricsAbsent"]
    assert f"{P_VALUE}{{" in exprs["DriftPValueNaN"]
    assert f"{SHARE}{{" in exprs["ModelDriftDetected"] and f"{THRESHOLD}{{" in exprs["ModelDriftDetected"]


def test_the_decision_log_rules_read_the_transformers_metrics() -> None:
    """issue 32: the rules read the sink's own families (components/serving/decision_log.py, the one
    source), with `dropped` the outcome that pages."""
    from components.serving.decision_log import RECORDS, SPILL_BYTES

    rules = yaml.safe_load(RULES.read_text())
    expr = {rule["alert"]: rule["expr"] for group in rules["spec"]["groups"] for rule in group["rules"]}
    assert f'{RECORDS}_total{{outcome="dropped"' in expr["DecisionLogDropping"]
    assert f"{SPILL_BYTES}{{" in expr["DecisionLogSpilling"]
    from components.serving.request_log import LOG_RECORDS

    assert f'{LOG_RECORDS}_total{{outcome="dropped"' in expr["RequestLogDropping"]


def test_the_rules_read_what_the_notices_and_the_workflow_metric_push() -> None:
    """The metric names have one source each: the notices' gauges (components/steps/notify.py) and the
    WorkflowTemplate's run counter (pipelines/argo.py), which Argo exports as argo_workflows_<name>."""
    from components.steps import notify
    from pipelines.argo_metrics import RUN_FAILED_METRIC

    rules = yaml.safe_load(RULES.read_text())
    expr = {rule["alert"]: rule["expr"] for group in rules["spec"]["groups"] for rule in group["rules"]}
    assert notify.GATE_FAILED in expr["PipelineGateFailed"]
    assert notify.RUN_FAILED in expr["PipelineRunFailed"] and notify.RUN_FAILED in expr["ArgoWorkflowFailed"]
    assert f"argo_workflows_{RUN_FAILED_METRIC}" in expr["ArgoWorkflowFailed"]


def _run_promtool(
    tmp_path: Path, groups: list[dict[str, Any]], tests: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    return subprocess.run([_promtool(), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)


def _only(tests: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**tests, "tests": [test for test in tests["tests"] if test["name"] in names]}


@pytest.mark.integration
def test_pushed_series_neither_fake_nor_mask_the_platforms_alerts(tmp_path: Path) -> None:
    """issue 29: pushed `job` and `namespace` labels could fake or mask platform alerts. The
    platform's rules select every exporter's series with job!=<the Pushgateway scrape's job>
    (pipelines/tenant_monitoring.py: SCRAPE_JOB), besides the scrape keeping only mlops_* families.
    Positive control: promtool passes the cases with forged series beside the real ones
    (test_promtool_passes_every_rule_test runs them; not run twice, the nightly's case costs 8 s);
    then the same rules with that selector removed (as before the fix): the forged series fake
    pricing's KServeHighErrorRate and FeastMaterializationStale, and mask fraud's
    CronWorkflowMissedSchedule."""
    from pipelines.tenant_monitoring import SCRAPE_JOB

    document = yaml.safe_load(RULES.read_text())
    tests = _only(yaml.safe_load(TESTS.read_text()), "serving and data", "pipelines", "a nightly that stops triggering")
    assert all(any("mlops-pushgateway" in s["series"] for s in test["input_series"]) for test in tests["tests"])
    selector = f'job!="{SCRAPE_JOB}"'
    exprs = {rule["alert"]: rule["expr"] for group in document["spec"]["groups"] for rule in group["rules"]}
    for alert in ("KServeHighErrorRate", "FeastMaterializationStale", "CronWorkflowMissedSchedule"):
        assert selector in exprs[alert], f"{alert} selects the platform exporter's series"
    stripped = RULES.read_text().replace(f", {selector}", "").replace(f"{{{selector}}}", "")
    unfiltered = yaml.safe_load(stripped)
    assert not [rule for group in unfiltered["spec"]["groups"] for rule in group["rules"] if selector in rule["expr"]]
    tested = _run_promtool(tmp_path, unfiltered["spec"]["groups"], tests)
    failed = tested.stdout + tested.stderr
    assert tested.returncode != 0
    for alert in ("KServeHighErrorRate", "FeastMaterializationStale", "CronWorkflowMissedSchedule"):
        assert f"alertname: {alert}," in failed, failed


@pytest.mark.integration
def test_drift_metrics_missing_fires_when_the_series_disappear(tmp_path: Path) -> None:
    """issue 29: a pricing pod could DELETE fraud's drift group after fraud's nightly, and
    DriftMetricsMissing (last push over 26 hours old) cannot fire for a series that is gone. The
    second rule of that name fires for a heartbeat seen within 14 days and absent now. Positive
    control: promtool passes the case where fraud's group disappears at 61m; the rules without
    that rule (as before the fix) fail it."""
    document = yaml.safe_load(RULES.read_text())
    tests = _only(yaml.safe_load(TESTS.read_text()), "drift figures that disappear")
    assert _run_promtool(tmp_path, document["spec"]["groups"], tests).returncode == 0
    groups = document["spec"]["groups"]
    for group in groups:
        group["rules"] = [rule for rule in group["rules"] if "max_over_time" not in rule["expr"]]
    tested = _run_promtool(tmp_path, groups, tests)
    assert tested.returncode != 0 and "alertname: DriftMetricsMissing," in tested.stdout + tested.stderr


def test_every_pushed_family_is_read_from_the_pushgateway_scrape_only() -> None:
    """issue 29: each rule reads a pushed family (pipelines/tenant_monitoring.py: pushed_families)
    only as the namespace's Pushgateway scrape stores it (job=SCRAPE_JOB, its namespace the
    Pushgateway's), never from another scrape that might keep a pushed `namespace`. The control:
    the check names a selector without the job."""
    import re

    from pipelines.tenant_monitoring import SCRAPE_JOB, pushed_families

    def unscoped(text: str) -> list[str]:
        found = []
        for family in pushed_families():
            for match in re.finditer(rf"\b{family}\b(\{{[^}}]*\}})?", text):
                if f'job="{SCRAPE_JOB}"' not in (match.group(1) or ""):
                    found.append(match.group(0))
        return found

    text = RULES.read_text()
    exprs = "\n".join(rule["expr"] for group in yaml.safe_load(text)["spec"]["groups"] for rule in group["rules"])
    assert unscoped(exprs) == []
    assert any(family in exprs for family in pushed_families())
    assert unscoped("max by (namespace) (mlops_drift_share)") == ["mlops_drift_share"]
