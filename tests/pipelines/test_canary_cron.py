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
