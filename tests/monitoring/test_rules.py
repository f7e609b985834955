"""Every alert rule, unit-tested by Prometheus's own `promtool test rules` (not by reading YAML)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
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


def _model_owner_alerts_without_routing(rules: dict[str, Any], tests: dict[str, Any]) -> list[str]:
    """Each rule labelled `owner: model-owner` that is never shown firing, or is shown raising a
    model-owner alert without every label the owner's route matches on (pipelines/alerting.py)."""
    from pipelines.alerting import OwnerRoute

    routed_by = set(OwnerRoute(pipeline="p", owner="o", namespace="n").matchers) - {"owner"}
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
            problems += [
                f"{rule['alert']}: {labels} has no {key}"
                for labels in raised
                for key in routed_by
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
    unshown = {**tests, "tests": [test for test in tests["tests"] if test["name"] != "pipelines"]}
    assert "PipelineRunFailed: no promtool case shows it firing" in _model_owner_alerts_without_routing(rules, unshown)


def test_the_rules_read_what_the_notices_and_the_workflow_metric_push() -> None:
    """The metric names have one source each: the notices' gauges (components/notify.py) and the
    WorkflowTemplate's run counter (pipelines/argo.py), which Argo exports as argo_workflows_<name>."""
    from components import notify
    from pipelines.argo_metrics import RUN_FAILED_METRIC

    rules = yaml.safe_load(RULES.read_text())
    expr = {rule["alert"]: rule["expr"] for group in rules["spec"]["groups"] for rule in group["rules"]}
    assert notify.GATE_FAILED in expr["PipelineGateFailed"]
    assert notify.RUN_FAILED in expr["PipelineRunFailed"] and notify.RUN_FAILED in expr["ArgoWorkflowFailed"]
    assert f"argo_workflows_{RUN_FAILED_METRIC}" in expr["ArgoWorkflowFailed"]
