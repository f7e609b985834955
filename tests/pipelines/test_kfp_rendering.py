"""The KFP IR compiled from the declaration carries exactly the declared facts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.fraud import pipeline as fraud
from pipelines.kfp import compile_ir
from pipelines.spec import Condition
from tests.conftest import REPO


@pytest.fixture(scope="module")
def ir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("ir") / "fraud.yaml"
    compile_ir(fraud.DECLARATION, fraud.DECLARATION.config(), str(path))
    document: dict[str, Any] = next(yaml.safe_load_all(path.read_text()))
    return document


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("ir") / "fraud.yaml"
    compile_ir(fraud.DECLARATION, fraud.DECLARATION.config(), str(path))
    documents = list(yaml.safe_load_all(path.read_text()))
    assert len(documents) == 2, "kfp-kubernetes writes the platform spec as a second document"
    spec: dict[str, Any] = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return spec


def flatten(ir: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every executing task, with the condition groups it sits in and the tasks it waits on."""
    components = ir["components"]
    executors = ir["deploymentSpec"]["executors"]
    found: dict[str, dict[str, Any]] = {}

    def walk(dag: dict[str, Any], conditions: list[str], group_deps: list[str]) -> None:
        for name, task in dag["tasks"].items():
            reference = task["componentRef"]["name"]
            deps = list(task.get("dependentTasks", [])) + group_deps
            condition = task.get("triggerPolicy", {}).get("condition")
            if "dag" in components[reference]:
                walk(components[reference]["dag"], [*conditions, condition] if condition else conditions, deps)
                continue
            executor = components[reference]["executorLabel"]
            found[name] = {
                "deps": set(deps),
                "conditions": conditions,
                "retry": task.get("retryPolicy"),
                "env": {e["name"]: e["value"] for e in executors[executor]["container"].get("env", [])},
                "resources": executors[executor]["container"].get("resources", {}),
                "image": executors[executor]["container"]["image"],
                "caching": task.get("cachingOptions", {}).get("enableCache", False),
            }

    walk(ir["root"]["dag"], [], [])
    return found


def closure(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    reach = set(edges)
    while True:
        extra = {(a, d) for a, b in reach for c, d in reach if b == c} - reach
        if not extra:
            return reach
        reach |= extra


def test_same_steps_and_edges_as_the_declaration(ir: dict[str, Any]) -> None:
    tasks = flatten(ir)
    exit_notice = tasks.pop("notify-failure")  # the exit handler: after the whole run, however it ended
    assert exit_notice["deps"] == {"exit-handler-1"}
    assert set(tasks) == {step.name for step in fraud.DECLARATION.spec.steps}
    rendered_edges = {(dep, name) for name, task in tasks.items() for dep in task["deps"]}
    # KFP makes an If/Else group wait on every task whose output is used anywhere inside it, so a
    # branch may carry an edge the declaration implies only transitively; the orderings must agree.
    assert fraud.DECLARATION.spec.edges() <= rendered_edges
    assert closure(rendered_edges) == closure(fraud.DECLARATION.spec.edges())


def kfp_condition(condition: Condition) -> str:
    """How KFP writes a declared condition: dsl.If's test, or its negation for dsl.Else."""
    test = f"inputs.parameter_values['pipelinechannel--{condition.step}-{condition.output}'] == true"
    return test if condition.equals else f"!({test})"


def test_conditions_nest_one_group_per_declared_condition(ir: dict[str, Any]) -> None:
    """The drift decision, then the gate: train and evaluate under retrain, register and promote
    under retrain and a passed gate, notify under retrain and a failed one, hold otherwise."""
    tasks = flatten(ir)
    for step in fraud.DECLARATION.spec.steps:
        assert tasks[step.name]["conditions"] == [kfp_condition(c) for c in step.when], step.name
    assert tasks["register"]["conditions"] == [
        "inputs.parameter_values['pipelinechannel--drift-retrain'] == true",
        "inputs.parameter_values['pipelinechannel--evaluate-passed'] == true",
    ]
    assert tasks["hold"]["conditions"] == ["!(inputs.parameter_values['pipelinechannel--drift-retrain'] == true)"]


def test_kfp_never_retries_a_permanent_failure(ir: dict[str, Any]) -> None:
    """KFP's retryPolicy cannot tell exit codes apart: no step carries one, and each step gets its
    declared policy for the in-step retries of transient failures only (pipelines/runtime.py)."""
    from pipelines.runtime import STEP_RETRY_VARIABLE
    from pipelines.spec import RetryPolicy

    tasks = flatten(ir)
    for step in fraud.DECLARATION.spec.steps:
        task = tasks[step.name]
        assert task["retry"] is None, f"{step.name}: a task-level retry would repeat permanent failures"
        assert RetryPolicy.from_json(task["env"][STEP_RETRY_VARIABLE]) == step.retry, step.name


def test_resources_image_and_caching_match(ir: dict[str, Any]) -> None:
    tasks = flatten(ir)
    for step in fraud.DECLARATION.spec.steps:
        task = tasks[step.name]
        resources = task["resources"]
        assert resources["resourceMemoryLimit"] == step.resources.memory
        assert resources["resourceCpuLimit"] == step.resources.cpu
        if step.resources.gpu:
            assert resources["accelerator"]["resourceCount"] == str(step.resources.gpu)
            assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
        else:
            assert "accelerator" not in resources
        assert task["image"] == fraud.DECLARATION.spec.image


def cached_tasks(ir: dict[str, Any]) -> set[str]:
    """Every task of the IR, at any depth (groups and the exit handler's notice included), whose
    cachingOptions enable KFP's cache."""
    found = set()
    for dag in [ir["root"]["dag"], *(c["dag"] for c in ir["components"].values() if "dag" in c)]:
        found |= {name for name, task in dag["tasks"].items() if task.get("cachingOptions", {}).get("enableCache")}
    return found


def test_no_kfp_task_on_a_cluster_is_cached(ir: dict[str, Any], tmp_path: Path) -> None:
    """issue 29 review finding 2: KFP's cache lives in ML Metadata, which has no authentication and
    no per-namespace separation and which every tenant's Workflow pods reach (KFP's driver and
    launcher run there). pricing could PutExecution over a cached execution of fraud's, and on a hit
    the driver hands fraud those outputs without running the step. So no task compiled for a cluster
    enables the cache; the Argo engine memoizes per namespace instead."""
    from kfp import compiler

    from pipelines.kfp import build_pipeline

    assert cached_tasks(ir) == set()
    for name in ("fraud", "forecast"):  # the committed goldens, as `make golden` writes them
        golden = REPO / "pipelines" / name / "golden" / "kfp-pipeline.yaml"
        assert cached_tasks(next(yaml.safe_load_all(golden.read_text()))) == set(), name
    # the control broken on purpose: a render that enables the cache (kfp.local's own keys) is seen
    keyed = build_pipeline(fraud.DECLARATION, fraud.DECLARATION.config(), cache_keys={"train": "k", "evaluate": "k"})
    compiler.Compiler().compile(keyed, package_path=str(tmp_path / "keyed.yaml"))
    assert cached_tasks(next(yaml.safe_load_all((tmp_path / "keyed.yaml").read_text()))) == {"train", "evaluate"}


def test_a_cluster_render_never_takes_cache_keys() -> None:
    """issue 29 review finding 2: cache keys are for kfp.local only; with `cluster=True` they
    enable nothing, so no caller can switch KFP's shared cache back on by passing them."""
    from pipelines.kfp import build_pipeline

    spec = build_pipeline(
        fraud.DECLARATION, fraud.DECLARATION.config(), cluster=True, cache_keys={"train": "k"}
    ).pipeline_spec
    dags = [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]
    tasks = {name: task for dag in dags for name, task in dag.tasks.items()}
    assert "train" in tasks and not [name for name, task in tasks.items() if task.caching_options.enable_cache]


def test_design_retry_classes() -> None:
    """The design module's policy: I/O steps retry hard, GPU steps once on failure."""
    by_name = {step.name: step for step in fraud.DECLARATION.spec.steps}
    assert by_name["validate"].retry.limit == by_name["materialize"].retry.limit == 5
    assert by_name["train"].retry.limit == by_name["evaluate"].retry.limit == 1
    assert by_name["train"].retry.retry_on == "OnFailure"
    assert by_name["promote"].retry.limit == 2
    assert by_name["train"].resources.gpu == 1 and by_name["train"].resources.memory


def test_components_never_import_orchestrators() -> None:
    root = REPO / "components"
    forbidden = re.compile(r"^\s*(from|import)\s+(kfp|hera|pipelines|mlops)\b", re.MULTILINE)
    for source in root.rglob("*.py"):
        assert not forbidden.search(source.read_text()), f"{source.name} imports an orchestrator or the CLI"


def test_settings_from_the_configmap_and_credentials_from_secrets(ir: dict[str, Any], platform: dict[str, Any]) -> None:
    from components.platform.settings import CONFIGMAP, SECRET_VARIABLES, configmap_keys

    cfg = fraud.DECLARATION.config()
    assert set(platform) == set(ir["deploymentSpec"]["executors"])
    # the exit handler's notice reads the settings (the Pushgateway) and no credential
    platform = dict(platform)
    exit_notice = platform.pop("exec-notify-failure")
    assert "secretAsEnv" not in exit_notice and exit_notice["configMapAsEnv"][0]["configMapName"] == CONFIGMAP
    for executor, settings in platform.items():
        secrets = {entry["secretName"]: {k["envVar"] for k in entry["keyToEnv"]} for entry in settings["secretAsEnv"]}
        assert secrets[cfg.cluster.s3_credentials_secret] == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert secrets[cfg.cluster.mlflow_credentials_secret] == {
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
        }
        assert set().union(*secrets.values()) == set(SECRET_VARIABLES)
        (configmap,) = settings["configMapAsEnv"]
        assert configmap["configMapName"] == CONFIGMAP
        assert {k["configMapKey"] for k in configmap["keyToEnv"]} == configmap_keys()
        env = {e["name"]: e["value"] for e in ir["deploymentSpec"]["executors"][executor]["container"].get("env", [])}
        assert set(env) == {"MLOPS_STEP_RETRY", "MLOPS_IMAGE"}, "no endpoint, path or credential is a literal in the IR"
        assert env["MLOPS_IMAGE"] == fraud.DECLARATION.spec.image  # what the lineage records
        # the pod's namespace from the downward API, for require_namespace (issue 29 review finding 11)
        assert settings["fieldPathAsEnv"] == [{"fieldPath": "metadata.namespace", "name": "MLOPS_POD_NAMESPACE"}]
    gpu = [name for name, settings in platform.items() if "nodeSelector" in settings]
    assert gpu == ["exec-train"]
