"""Every alert rule, unit-tested by Prometheus's own `promtool test rules` (not by reading YAML)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
