"""The Argo objects rendered from the declaration: schema-valid, equal to the KFP DAG, and runnable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pipelines.argo import render
from pipelines.fraud import pipeline as fraud
from pipelines.golden import drift
from pipelines.spec import RetryPolicy
from tests.pipelines.test_kfp_rendering import closure, flatten, kfp_condition
from tests.pod_security import restricted_violations

KINDS = ("WorkflowTemplate", "Workflow", "CronWorkflow")


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    return render(fraud.DECLARATION, fraud.DECLARATION.config())


def dag_tasks(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    templates = {t["name"]: t for t in template["spec"]["templates"]}
    return {
        task["name"]: {**task, "template_body": templates[task["template"]]}
        for task in templates["pipeline"]["dag"]["tasks"]
    }


@pytest.mark.parametrize("kind", KINDS)
def test_valid_against_argos_json_schema(rendered: dict[str, dict[str, Any]], schemas_dir: Path, kind: str) -> None:
    full = json.loads((schemas_dir / "argo-workflows-v4.1.2.intorstring.schema.json").read_text())
    schema = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}", "definitions": full["definitions"]}
    jsonschema.validate(rendered[kind], schema)


@pytest.mark.parametrize("kind", KINDS)
def test_valid_against_the_argo_crds(rendered: dict[str, dict[str, Any]], kind: str) -> None:
    from mlops.lint import CRD_FILES, crd_schema

    assert CRD_FILES[("argoproj.io", kind)].startswith("argo_argoproj.io_")  # the upstream CRD, loaded once
    jsonschema.validate(rendered[kind], crd_schema("argoproj.io/v1alpha1", kind))


@pytest.mark.parametrize("kind", KINDS)
def test_round_trips_through_heras_generated_models(rendered: dict[str, dict[str, Any]], kind: str) -> None:
    from hera.workflows import models as m

    model = getattr(m, kind).model_validate(rendered[kind])
    assert model.model_dump(by_alias=True, exclude_none=True) == rendered[kind]


def test_argo_and_kfp_dags_agree(rendered: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    from pipelines.kfp import compile_ir

    compile_ir(fraud.DECLARATION, fraud.DECLARATION.config(), str(tmp_path / "ir.yaml"))
    import yaml

    kfp = flatten(next(yaml.safe_load_all((tmp_path / "ir.yaml").read_text())))
    argo = dag_tasks(rendered["WorkflowTemplate"])
    assert kfp.pop("notify-failure")["deps"] == {"exit-handler-1"}  # both notify the owner on exit
    assert rendered["WorkflowTemplate"]["spec"]["onExit"] == "exit-handler"
    assert set(argo) == set(kfp)
    argo_edges = {
        (clause.removesuffix(".Succeeded"), name)
        for name, task in argo.items()
        for clause in (task["depends"].split(" && ") if task.get("depends") else [])
    }
    assert all(
        c.endswith(".Succeeded") for t in argo.values() for c in (t.get("depends") or "x.Succeeded").split(" && ")
    )
    kfp_edges = {(dep, name) for name, task in kfp.items() for dep in task["deps"]}
    assert closure(argo_edges) == closure(kfp_edges)
    for name, task in argo.items():
        body = task["template_body"]
        strategy, policy = body["retryStrategy"], RetryPolicy.from_json(kfp[name]["env"]["MLOPS_STEP_RETRY"])
        assert int(strategy["limit"]) == policy.limit
        assert strategy["backoff"]["duration"] == f"{policy.backoff_seconds}s"
        assert float(strategy["backoff"]["factor"]) == policy.factor
        assert strategy["backoff"]["cap"] == f"{policy.max_backoff_seconds}s"
        limits, resources = body["container"]["resources"]["limits"], kfp[name]["resources"]
        assert limits["memory"] == resources["resourceMemoryLimit"] and limits["cpu"] == resources["resourceCpuLimit"]
        assert limits.get("nvidia.com/gpu") == resources.get("accelerator", {}).get("resourceCount")
        when = task.get("when")
        conditions = fraud.DECLARATION.spec.step(name).when
        assert kfp[name]["conditions"] == [kfp_condition(c) for c in conditions]
        expected = [
            f"{{{{tasks.{c.step}.outputs.parameters.{c.output}}}}} == {str(c.equals).lower()}" for c in conditions
        ]
        assert when == (" && ".join(expected) or None)


def test_retry_window_and_permanent_failures(rendered: dict[str, dict[str, Any]]) -> None:
    for name, task in dag_tasks(rendered["WorkflowTemplate"]).items():
        step = fraud.DECLARATION.spec.step(name)
        strategy = task["template_body"]["retryStrategy"]
        assert strategy["retryPolicy"] == step.retry.retry_on
        # neither a permanent error (exit 2) nor a pod killed for memory (same limit, same end) is retried
        assert strategy["expression"] == "asInt(lastRetry.exitCode) != 2 && not (lastRetry.message matches 'OOMKilled')"
        # maxDuration spans the whole retry window (pod start-up included): never shorter than the backoffs
        waits = sum(
            min(step.retry.backoff_seconds * step.retry.factor**i, step.retry.max_backoff_seconds)
            for i in range(step.retry.limit)
        )
        assert int(strategy["backoff"]["maxDuration"].rstrip("s")) > waits


def test_workflow_template_platform_settings(rendered: dict[str, dict[str, Any]]) -> None:
    spec = rendered["WorkflowTemplate"]["spec"]
    cfg = fraud.DECLARATION.config()
    assert spec["artifactRepositoryRef"] == {
        "configMap": "artifact-repositories",
        "key": cfg.cluster.artifact_repository_key,
    }
    assert spec["serviceAccountName"] == cfg.cluster.service_account
    assert spec["podGC"]["strategy"] == "OnPodSuccess" and spec["activeDeadlineSeconds"] > 0
    assert spec["onExit"] == "exit-handler"
    exit_task = next(t for t in spec["templates"] if t["name"] == "exit-handler")["dag"]["tasks"][0]
    assert exit_task["when"] == "{{workflow.status}} != Succeeded"
    train = dag_tasks(rendered["WorkflowTemplate"])["train"]
    assert train["template_body"]["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # the declared size (pipelines/standard.py, from docs/performance.md), config.yaml's when it sets one
    assert (
        train["template_body"]["container"]["resources"]["limits"]["memory"]
        == fraud.DECLARATION.spec.step("train").resources.memory
    )
    evaluate = dag_tasks(rendered["WorkflowTemplate"])["evaluate"]
    assert {"name": "model", "from": "{{tasks.train.outputs.artifacts.model}}"} in evaluate["arguments"]["artifacts"]


def test_cron_workflow_never_silently_skips(rendered: dict[str, dict[str, Any]]) -> None:
    spec = rendered["CronWorkflow"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] >= 60
    assert spec["schedules"] == ["0 2 * * *"] and spec["timezone"] == "Europe/Amsterdam"
    assert spec["workflowSpec"]["workflowTemplateRef"] == {"name": "fraud"}


def test_the_nightly_hands_each_run_its_scheduled_time_as_its_logical_date(
    rendered: dict[str, dict[str, Any]],
) -> None:
    """A dated cluster.raw_data ({date}) reads the night's extract: the CronWorkflow passes Argo's
    scheduled time to the template's logical-date input, which every step reading the data takes."""
    arguments = rendered["CronWorkflow"]["spec"]["workflowSpec"]["arguments"]["parameters"]
    assert arguments == [{"name": "logical-date", "value": "{{workflow.scheduledTime}}"}]
    declared = {p["name"] for p in rendered["WorkflowTemplate"]["spec"]["arguments"]["parameters"]}
    assert "logical-date" in declared  # else Argo refuses the CronWorkflow's argument
    tasks = dag_tasks(rendered["WorkflowTemplate"])
    for step in ("validate", "materialize", "drift"):
        given = {p["name"]: p["value"] for p in tasks[step]["arguments"]["parameters"]}
        assert given["logical-date"] == "{{workflow.parameters.logical-date}}", step
    assert "logical-date" not in json.dumps(tasks["train"]["arguments"])  # train reads the sets, not the URI


def test_settings_from_the_configmap_credentials_from_secrets(rendered: dict[str, dict[str, Any]]) -> None:
    """Every container: the whole mlops-platform ConfigMap, each credential from a Secret, no literal
    value at all (no endpoint, no embedded store, no local path), and no input that names a path."""
    from components.platform.settings import SECRET_VARIABLES

    containers = [t["container"] for t in rendered["WorkflowTemplate"]["spec"]["templates"] if "container" in t]
    assert len(containers) == len(fraud.DECLARATION.spec.steps) + 1  # the steps and the exit handler's notice
    image = {"name": "MLOPS_IMAGE", "value": fraud.DECLARATION.spec.image}  # the lineage records it
    for container in containers:
        assert container["envFrom"] == [{"configMapRef": {"name": "mlops-platform"}}]
        secrets = [env for env in container["env"] if env != image]
        assert {env["name"] for env in secrets} == set(SECRET_VARIABLES)
        for env in secrets:
            assert "value" not in env and "secretKeyRef" in env["valueFrom"], env["name"]
        assert "/work/.mlops" not in json.dumps(container) and "sqlite" not in json.dumps(container)
    parameters = rendered["WorkflowTemplate"]["spec"]["arguments"]["parameters"]
    assert [p["name"] for p in parameters] == [
        "raw-data",
        "git-commit",
        "gate-threshold",
        "force-retrain",
        "cache-salt",
        "logical-date",
    ]
    assert parameters[0]["value"].startswith("s3://")


@pytest.mark.parametrize("name", ["fraud", "forecast"])
def test_goldens_are_in_step_with_the_declaration(name: str) -> None:
    assert drift(name) == [], "rendered YAML changed: run `make golden` and review the diff"


def test_every_step_pod_meets_pod_security_restricted(rendered: dict[str, dict[str, Any]]) -> None:
    """What the `restricted` profile checks (kubernetes.io/docs/concepts/security/pod-security-standards),
    on every container template and on Argo's own executor containers, so a namespace can enforce it."""
    import yaml

    from tests.conftest import REPO

    spec = rendered["WorkflowTemplate"]["spec"]
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    containers = [{**t["container"], "name": t["name"]} for t in spec["templates"] if "container" in t]
    assert len(containers) >= 7  # six steps and the failure notice
    assert restricted_violations(spec, containers) == []
    controller = yaml.safe_load((REPO / "manifests/base/argo/controller-config.yaml").read_text())
    assert controller["metadata"]["name"] == "workflow-controller-configmap"
    executor = yaml.safe_load(controller["data"]["executor"])["securityContext"]
    assert executor == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_cacheable_steps_are_memoized_by_the_datas_digest_not_its_uri(rendered: dict[str, dict[str, Any]]) -> None:
    """The same key as a local run's: the digest validate computed of the bytes it read, the
    commit, the run inputs the step reads, a hash of the arguments of it and its ancestors."""
    tasks = dag_tasks(rendered["WorkflowTemplate"])
    memoized = {name for name, task in tasks.items() if "memoize" in task["template_body"]}
    assert memoized == {"materialize", "train", "evaluate"}  # validate computes the digest; the rest touch the registry
    for name in memoized:
        memoize = tasks[name]["template_body"]["memoize"]
        assert memoize["key"] == "{{inputs.parameters.cache-key}}"
        assert memoize["cache"] == {"configMap": {"name": "mlops-step-cache"}}
        key = next(p["value"] for p in tasks[name]["arguments"]["parameters"] if p["name"] == "cache-key")
        assert "{{tasks.validate.outputs.parameters.data_digest}}" in key and "raw-data" not in key
        assert key.endswith("-{{workflow.parameters.cache-salt}}")  # `mlops submit --no-cache` sets a new one
    evaluate = next(p["value"] for p in tasks["evaluate"]["arguments"]["parameters"] if p["name"] == "cache-key")
    # a run input it reads, as a word Argo's cache accepts (issue 28: 0.85 made an invalid cache key)
    assert "-{{=sprig.trunc(16, sprig.sha256sum(workflow.parameters['gate-threshold']))}}-" in evaluate


def test_each_pipelines_namespace_has_the_memoization_cache() -> None:
    import yaml

    from tests.conftest import REPO

    for folder in ("manifests/base/platform", *(f"manifests/tenants/{t}" for t in ("fraud", "forecast", "pricing"))):
        cache = yaml.safe_load((REPO / folder / "step-cache.yaml").read_text())
        assert cache["metadata"]["name"] == "mlops-step-cache"
        assert cache["metadata"]["labels"]["workflows.argoproj.io/configmap-type"] == "Cache"
