"""Each tenant's hourly canary analysis as make golden renders it (pipelines/canary_cron.py, issue 32 item 4):
in step with its renderer and in the tenant's kustomization, valid against Argo's CRD, a command the CLI
accepts (the cluster's admission, the platform's Prometheus), run as its own ServiceAccount whose Role
grants exactly the API coordinates promote applies, and retried on exit 75 only. Its journeys across
RBAC, network and admission are tests/cluster/test_canary_analysis_journeys.py's."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from components.steps.promote_identity import ANALYST_SERVICE_ACCOUNT
from components.steps.serving_api import API
from mlops.cli.canaries import namespace_of
from pipelines.canary_cron import ANALYSIS_FILE, ANALYSIS_NAME, analysis_objects
from pipelines.standard import IMAGE
from pipelines.tenancy import load
from pipelines.tenant_monitoring import PROMETHEUS_URL
from tests.conftest import REPO

MANIFESTS = REPO / "manifests"


def _kinds(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


def test_every_tenant_has_its_hourly_analysis_as_rendered() -> None:
    from mlops.cli import build_parser

    for tenant in sorted(load(MANIFESTS).names):
        folder = MANIFESTS / "tenants" / tenant
        assert ANALYSIS_FILE in yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
        rendered = [d for d in yaml.safe_load_all((folder / ANALYSIS_FILE).read_text()) if d]
        assert rendered == analysis_objects(tenant, IMAGE)  # generated, in step with the renderer
        found = _kinds(rendered)
        workflow = found["CronWorkflow"]["spec"]["workflowSpec"]
        assert found["CronWorkflow"]["metadata"]["name"] == ANALYSIS_NAME
        assert workflow["serviceAccountName"] == ANALYST_SERVICE_ACCOUNT != "pipeline-runner"
        [template] = workflow["templates"]
        command = template["container"]["command"]
        args = build_parser(command[1:]).parse_args(command[1:])
        assert (args.command, args.admission, args.prometheus, args.model) == (
            "canary-analysis", "cluster", PROMETHEUS_URL, None)  # fmt: skip
        # whose canaries, from what the pod has: its command and its literal variables (the ConfigMap's
        # keys are PlatformSettings' fields, none of them a namespace), no ServiceAccount file here
        literal = {e["name"]: e["value"] for e in template["container"]["env"] if "value" in e}
        assert namespace_of(args, environ=literal, namespace_file=MANIFESTS / "absent") == tenant
        assert template["retryStrategy"]["expression"] == "asInt(lastRetry.exitCode) == 75"
        granted = {(rule["apiGroups"][0], rule["resources"][0]): rule["verbs"] for rule in found["Role"]["rules"]}
        for group, _, plural in API.values():
            assert granted.pop((group, plural)) == ["get", "create", "update"]
        assert granted == {("argoproj.io", "workflowtaskresults"): ["create", "patch"]}  # nothing more
        binding = found["RoleBinding"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ANALYST_SERVICE_ACCOUNT, "namespace": tenant}]


def test_the_cron_workflow_validates_against_argos_crd(schemas_dir: Path) -> None:
    from mlops.lint import check

    cron = _kinds(analysis_objects("fraud", IMAGE))["CronWorkflow"]
    assert check(cron) is None, check(cron)
    broken = copy.deepcopy(cron)
    broken["spec"]["workflowSpec"]["templates"][0]["container"]["comand"] = ["mlops"]
    assert "comand" in str(check(broken))


def test_the_analysis_finds_its_namespace_or_says_how_to_name_it(tmp_path: Path) -> None:
    """--namespace, else $MLOPS_NAMESPACE, else the pod's ServiceAccount namespace; with none of them the
    sweep stops (exit 2) naming the flag. The CronWorkflow once passed none and its ConfigMap had none,
    so every hourly run stopped before judging a canary."""
    import argparse

    import pytest

    from components.errors import ComponentError

    account = tmp_path / "namespace"
    no_flag = argparse.Namespace(namespace=None)
    assert namespace_of(argparse.Namespace(namespace="fraud"), environ={}, namespace_file=account) == "fraud"
    assert namespace_of(no_flag, environ={"MLOPS_NAMESPACE": "pricing"}, namespace_file=account) == "pricing"
    with pytest.raises(ComponentError, match="--namespace NAME") as refused:
        namespace_of(no_flag, environ={}, namespace_file=account)
    assert refused.value.exit_code == 2
    account.write_text("forecast\n")
    assert namespace_of(no_flag, environ={}, namespace_file=account) == "forecast"
