"""Each tenant's nightly `mlops verify --push` CronWorkflow (pipelines/registry_verify.py, issue 34 item 4), as
make golden renders it: in step with its renderer, valid against Argo's CRD, a command the CLI accepts, the
tenant's own Secrets and ConfigMap (with the Pushgateway its result goes to), retried on exit 75 only, and
admitted by the installed Gatekeeper policies, which refuse it once broken; and rendered in exactly the
namespaces that may register models (those with an MLflow user), so not in the shared mlops-pipelines."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.registry_verify import VERIFY_FILE, VERIFY_NAME, verify_cron_workflow
from pipelines.standard import IMAGE
from pipelines.tenancy import load
from tests.conftest import REPO

MANIFESTS = REPO / "manifests"
TENANTS = sorted(load(MANIFESTS).names)


def _container(cron: dict[str, Any]) -> dict[str, Any]:
    [template] = cron["spec"]["workflowSpec"]["templates"]
    container: dict[str, Any] = template["container"]
    return container


def test_every_tenant_runs_its_own_registry_check_nightly() -> None:
    from mlops.cli import build_parser

    assert {"fraud", "pricing"} <= set(TENANTS)
    for tenant in TENANTS:
        folder = MANIFESTS / "tenants" / tenant
        assert VERIFY_FILE in yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
        cron = yaml.safe_load((folder / VERIFY_FILE).read_text())
        assert cron == verify_cron_workflow(tenant, IMAGE)  # generated, in step with the renderer
        assert cron["metadata"]["name"] == VERIFY_NAME and cron["metadata"]["namespace"] == tenant
        assert len(cron["spec"]["schedules"]) == 1 and cron["spec"]["concurrencyPolicy"] == "Forbid"
        container = _container(cron)
        args = build_parser(container["command"][1:]).parse_args(container["command"][1:])
        assert args.command == "verify" and args.push and args.model is None  # every model the tenant sees
        assert container["envFrom"] == [{"configMapRef": {"name": "mlops-platform"}}]
        secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
        assert secrets["AWS_ACCESS_KEY_ID"] == {"name": "tenant-s3-credentials", "key": "access-key"}
        assert secrets["MLFLOW_TRACKING_PASSWORD"] == {"name": "tenant-mlflow-credentials", "key": "password"}
        platform = yaml.safe_load((folder / "mlops-platform.yaml").read_text())["data"]
        assert platform["MLOPS_PUSHGATEWAY_URL"].startswith(f"http://pushgateway.{tenant}.svc")  # its own gateway
        assert platform["MLOPS_SERVING_ROOT"] == f"s3://models/{tenant}"  # where its promote publishes
        [template] = cron["spec"]["workflowSpec"]["templates"]
        assert template["retryStrategy"]["expression"] == "asInt(lastRetry.exitCode) == 75"  # not 1, not 2


def test_the_cron_workflow_validates_against_argos_crd(schemas_dir: Path) -> None:
    from mlops.lint import check

    cron = verify_cron_workflow("fraud", IMAGE)
    assert check(cron) is None, check(cron)
    broken = copy.deepcopy(cron)
    broken["spec"]["workflowSpec"]["templates"][0]["retryStrategy"]["limits"] = 3
    assert "limits" in str(check(broken))


@pytest.fixture(scope="module")
def policies(schemas_dir: Path) -> Any:
    from mlops import admission
    from tests.policies.platform_objects import overlay_objects

    return admission.PolicySet(policies=admission.policies_of(overlay_objects()["prod"], "overlay prod"))


def test_the_installed_policies_admit_it_and_refuse_it_broken(policies: Any) -> None:
    user = "system:serviceaccount:argo:argo-server"
    cron = yaml.safe_load((MANIFESTS / "tenants" / "fraud" / VERIFY_FILE).read_text())
    assert list(policies.violations(cron, user=user)) == []  # positive control
    foreign = copy.deepcopy(cron)
    _container(foreign)["image"] = "docker.io/library/python:3.11"
    assert any("registry" in message for message in policies.violations(foreign, user=user))
    privileged = copy.deepcopy(cron)
    _container(privileged)["securityContext"]["privileged"] = True
    assert list(policies.violations(privileged, user=user))


def _verified_namespaces() -> set[str]:
    """The namespaces of every registry-verify CronWorkflow rendered anywhere under manifests/."""
    found: set[str] = set()
    for path in MANIFESTS.rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if not isinstance(document, dict) or document.get("kind") != "CronWorkflow":
                continue
            if document["metadata"]["name"] == VERIFY_NAME:
                found.add(document["metadata"]["namespace"])
    return found


def _mlflow_user() -> str:
    """The Secret a pipeline pod's MLflow user comes from (pipelines/cluster.py secret_environment)."""
    from components.config import ClusterSettings

    return str(ClusterSettings.model_fields["mlflow_credentials_secret"].default)


def _registering_namespaces(rows: list[dict[str, Any]]) -> set[str]:
    """The namespaces whose pipeline pods carry an MLflow user, the identity a register step writes the
    registry as: where that Secret exists (the out-of-band table, expanded as tests/manifests/test_secrets.py
    expands it)."""
    from tests.manifests.test_secrets import expand

    return {namespace for namespace, name in expand(rows) if name == _mlflow_user()}


def test_the_namespaces_checked_are_the_namespaces_that_register_models() -> None:
    from pipelines.cluster import SHARED_PIPELINES_NAMESPACE
    from pipelines.local import available_pipelines, declaration

    rows: list[dict[str, Any]] = yaml.safe_load((MANIFESTS / "out-of-band-secrets.yaml").read_text())["secrets"]
    registering = _registering_namespaces(rows)
    installed = {declaration(name).config().cluster.namespace for name in available_pipelines()}
    assert installed and installed <= registering  # every installed pipeline registers where it has a user
    assert _verified_namespaces() == registering == set(TENANTS)
    assert SHARED_PIPELINES_NAMESPACE not in registering  # the shared namespace registers nothing
    # the control: were the shared namespace given an MLflow user, it would register, and lack its check
    shared_user = {"namespace": SHARED_PIPELINES_NAMESPACE, "name": _mlflow_user(), "keys": ["username"]}
    assert _verified_namespaces() != _registering_namespaces([*rows, shared_user])
