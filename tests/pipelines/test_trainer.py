"""The TrainJob of a distributed train step and the runtimes it references, against Kubeflow
Trainer's CRD schemas (MLOPS_SCHEMAS_DIR), strictly: a field the schema does not declare fails,
as the API server would otherwise drop it without a word."""

from __future__ import annotations

import copy
import inspect
import re
from typing import Any

import pytest
import yaml

from components.platform.settings import configmap_keys
from mlops import lint
from pipelines.fraud import pipeline as fraud
from pipelines.golden import MANIFESTS, TRAINING_RUNTIMES_FILE
from pipelines.trainer import train_job

URIS = {"train_set": "s3://staging/run/train.parquet", "model_out": "s3://staging/run/model",
        "metadata_out": "s3://staging/run/metadata.json"}  # fmt: skip
CONFIGS = {
    "xgboost": {"train.distributed": {"workers": 4, "runtime": "xgboost-distributed"}},
    "pytorch_mlp": {
        "train.model_type": "pytorch_mlp",
        "train.distributed": {"workers": 2, "runtime": "torch-distributed"},
    },
}


def _job(model_type: str) -> dict[str, Any]:
    cfg = fraud.DECLARATION.config().with_overrides(CONFIGS[model_type])
    spec = fraud.DECLARATION.spec
    return train_job(
        spec,
        spec.step("train"),
        cfg,
        name="fraud-train",
        namespace="team-a",
        features="a,b",
        train_set_sha256="ab" * 32,
        **URIS,
    )


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_the_train_job_is_valid_and_runs_the_train_steps_own_command(model_type: str) -> None:
    job = _job(model_type)
    assert lint.check(job) is None
    trainer = job["spec"]["trainer"]
    step = fraud.DECLARATION.spec.step("train")
    command = trainer["command"]
    if model_type == "pytorch_mlp":
        assert command[:2] == ["torchrun", "--no-python"] and trainer["numProcPerNode"] == 1
        assert trainer["numNodes"] == 2 and job["spec"]["runtimeRef"]["name"] == "torch-distributed"
    else:
        assert trainer["numNodes"] == 4 and job["spec"]["runtimeRef"]["name"] == "xgboost-distributed"
    start = command.index("mlops")
    assert command[start : start + 3] == ["mlops", "step", "train"]
    from components.steps.train import train

    flags = {f"--{name.replace('_', '-')}" for name in inspect.signature(train).parameters}
    assert {part for part in command[start + 3 :: 2]} == flags  # every argument of the step, nothing else
    assert trainer["resourcesPerNode"]["limits"] == {"cpu": step.resources.cpu, "memory": step.resources.memory,
                                                     "nvidia.com/gpu": str(step.resources.gpu)}  # fmt: skip
    names = {variable["name"] for variable in trainer["env"]}
    assert configmap_keys() <= names and {"AWS_ACCESS_KEY_ID", "MLFLOW_TRACKING_PASSWORD", "MLOPS_IMAGE"} <= names


def test_a_misspelt_field_is_caught_not_pruned() -> None:
    job = copy.deepcopy(_job("pytorch_mlp"))
    assert lint.check(job) is None  # positive control
    job["spec"]["trainer"]["numProcsPerNode"] = 1
    assert lint.check(job) == "/spec/trainer/numProcsPerNode: field not in the schema"
    job = copy.deepcopy(_job("xgboost"))
    job["spec"]["trainer"]["numNodes"] = "four"
    assert "numNodes" in (lint.check(job) or "")


def test_the_runtimes_in_manifests_are_valid_and_serve_both_model_types() -> None:
    runtimes = list(yaml.safe_load_all((MANIFESTS / "base" / "trainer" / TRAINING_RUNTIMES_FILE).read_text()))
    assert {r["metadata"]["name"] for r in runtimes} == {"torch-distributed", "xgboost-distributed"}
    for runtime in runtimes:
        assert lint.check(runtime) is None, runtime["metadata"]["name"]
        pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
        assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    for model_type in CONFIGS:
        assert _job(model_type)["spec"]["runtimeRef"]["name"] in {r["metadata"]["name"] for r in runtimes}


def test_a_single_process_config_renders_no_train_job() -> None:
    spec = fraud.DECLARATION.spec
    with pytest.raises(ValueError, match=r"train\.distributed is not set"):
        train_job(spec, spec.step("train"), fraud.DECLARATION.config(), name="x", namespace="y", features="a", **URIS)


# --- the Argo WorkflowTemplate of a distributed pipeline ---------------------------------------


@pytest.fixture(scope="module")
def distributed_template() -> dict[str, Any]:
    from pipelines.argo import render

    cfg = fraud.DECLARATION.config().with_overrides(CONFIGS["pytorch_mlp"])
    template: dict[str, Any] = render(fraud.DECLARATION, cfg)["WorkflowTemplate"]
    return template


def _templates(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in template["spec"]["templates"]}


def _tasks(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in _templates(template)["pipeline"]["dag"]["tasks"]}


def test_the_distributed_workflow_template_is_valid_argo(distributed_template: dict[str, Any]) -> None:
    assert lint.check(distributed_template) is None


def test_argo_creates_the_train_job_and_waits_on_its_nodes(distributed_template: dict[str, Any]) -> None:
    resource = _templates(distributed_template)["train"]["resource"]
    assert resource["action"] == "create" and resource["setOwnerReference"] is True
    assert resource["successCondition"] == "status.jobsStatus.0.succeeded > 0"
    assert resource["failureCondition"] == "status.jobsStatus.0.failed > 0"
    job = yaml.safe_load(resource["manifest"])
    assert job["metadata"]["generateName"] == "{{workflow.name}}-train-"  # a retry creates a new one
    job["metadata"]["name"] = "fraud-abc12-train-x7k2p"  # what the API server makes of generateName
    del job["metadata"]["generateName"]
    assert lint.check(job) is None
    assert job["spec"]["trainer"]["command"][:5] == ["torchrun", "--no-python", "mlops", "step", "train"]
    # the one runtime job the conditions index: the platform's runtimes have only `node`
    runtimes = yaml.safe_load_all((MANIFESTS / "base" / "trainer" / TRAINING_RUNTIMES_FILE).read_text())
    assert all(len(r["spec"]["template"]["spec"]["replicatedJobs"]) == 1 for r in runtimes)


def _resolve(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{\{([^}]+)\}\}", lambda match: values.get(match.group(1), match.group(0)), text)


def test_the_train_job_reads_the_set_materialize_stores_and_writes_what_the_next_steps_fetch(
    distributed_template: dict[str, Any],
) -> None:
    """Both sides of each handover derive the same artifact repository key."""
    templates, tasks = _templates(distributed_template), _tasks(distributed_template)
    run = {"workflow.namespace": "fraud", "workflow.name": "fraud-abc12", "workflow.parameters.git-commit": "c0ffee",
           "tasks.validate.outputs.parameters.data_digest": "sha256-" + "a" * 64}  # fmt: skip
    cache_key = next(p["value"] for p in tasks["materialize"]["arguments"]["parameters"] if p["name"] == "cache-key")
    inside = run | {"inputs.parameters.cache-key": _resolve(cache_key, run)}
    stored = next(a for a in templates["materialize"]["outputs"]["artifacts"] if a["name"] == "train_set")
    assert stored["archive"] == {"none": {}}  # the Parquet file itself, not a tarball
    read = next(p["value"] for p in tasks["train"]["arguments"]["parameters"] if p["name"] == "train-set")
    assert _resolve(read, run) == "s3://pipeline-artifacts/" + _resolve(stored["s3"]["key"], inside)

    command = yaml.safe_load(templates["train"]["resource"]["manifest"])["spec"]["trainer"]["command"]
    written = {flag: _resolve(command[command.index(flag) + 1], run) for flag in ("--model-out", "--metadata-out")}
    for consumer in ("evaluate", "register", "promote"):
        fetched = {a["name"]: a for a in tasks[consumer]["arguments"]["artifacts"]}
        assert "s3://pipeline-artifacts/" + _resolve(fetched["model"]["s3"]["key"], run) == written["--model-out"]
        if "metadata" in fetched:
            assert (
                "s3://pipeline-artifacts/" + _resolve(fetched["metadata"]["s3"]["key"], run)
                == written["--metadata-out"]
            )
    assert "memoize" not in templates["train"]  # a TrainJob is not memoized; materialize still is
    assert "memoize" in templates["materialize"]


def test_the_kfp_train_task_carries_the_train_job_it_launches(tmp_path: Any) -> None:
    """KFP's IR has no resource template: the train task launches the TrainJob (components/steps/trainjob.py)
    from the manifest it carries, valid once the API server names it and the step fills the URIs."""
    import json

    from components.steps import trainjob
    from pipelines.kfp import compile_ir

    cfg = fraud.DECLARATION.config().with_overrides(CONFIGS["xgboost"])
    compile_ir(fraud.DECLARATION, cfg, str(tmp_path / "ir.yaml"))
    ir = next(yaml.safe_load_all((tmp_path / "ir.yaml").read_text()))
    executors = ir["deploymentSpec"]["executors"]
    carried = {
        label: {e["name"]: e["value"] for e in executor["container"].get("env", [])}.get(trainjob.TEMPLATE_VARIABLE)
        for label, executor in executors.items()
    }
    (label,) = [label for label, value in carried.items() if value]
    assert label == "exec-train"
    uris = {trainjob.TRAIN_SET: "s3://a/t", trainjob.MODEL_OUT: "s3://a/m", trainjob.METADATA_OUT: "s3://a/d",
            trainjob.FEATURES: "x,y", trainjob.TRAIN_SET_SHA256: "ab" * 32}  # fmt: skip
    job = trainjob.fill(json.loads(carried[label]), uris)
    assert job["metadata"].pop("generateName") == "fraud-train-"
    job["metadata"] |= {"name": "fraud-train-x7k2p", "namespace": "fraud"}
    assert lint.check(job) is None
    assert "@" not in json.dumps(job["spec"]["trainer"]["command"])  # every placeholder filled


def test_the_features_an_orchestrator_passes_as_json_parse_as_the_list() -> None:
    from mlops.cli import build_parser

    argv = ["step", "train", "--train-set", "t", "--model-out", "m", "--metadata-out", "d",
            "--features", '["amount", "txn_count_1h"]', "--label-column", "is_fraud", "--settings", "{}"]  # fmt: skip
    assert build_parser(argv).parse_args(argv).features == ["amount", "txn_count_1h"]
    argv[argv.index("--features") + 1] = "amount,txn_count_1h"
    assert build_parser(argv).parse_args(argv).features == ["amount", "txn_count_1h"]
