"""The TrainJob of a distributed train step and the runtimes it references, against Kubeflow
Trainer's CRD schemas (MLOPS_SCHEMAS_DIR), strictly: a field the schema does not declare fails,
as the API server would otherwise drop it without a word."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest
import yaml

from components.settings import configmap_keys
from mlops.lint import _check, _crd_schema
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


def _schema(kind: str) -> dict[str, Any]:
    schema = _crd_schema("trainer.kubeflow.org", kind, "v1alpha1")
    assert schema is not None, f"no {kind} schema in MLOPS_SCHEMAS_DIR"
    return schema


def _job(model_type: str) -> dict[str, Any]:
    cfg = fraud.DECLARATION.config().with_overrides(CONFIGS[model_type])
    spec = fraud.DECLARATION.spec
    return train_job(spec, spec.step("train"), cfg, name="fraud-train", namespace="team-a", features="a,b", **URIS)


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_the_train_job_is_valid_and_runs_the_train_steps_own_command(model_type: str) -> None:
    job = _job(model_type)
    assert _check(job, _schema("TrainJob")) is None
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
    from components.train import train

    flags = {f"--{name.replace('_', '-')}" for name in inspect.signature(train).parameters}
    assert {part for part in command[start + 3 :: 2]} == flags  # every argument of the step, nothing else
    assert trainer["resourcesPerNode"]["limits"] == {"cpu": step.resources.cpu, "memory": step.resources.memory,
                                                     "nvidia.com/gpu": str(step.resources.gpu)}  # fmt: skip
    names = {variable["name"] for variable in trainer["env"]}
    assert configmap_keys() <= names and {"AWS_ACCESS_KEY_ID", "MLFLOW_TRACKING_PASSWORD", "MLOPS_IMAGE"} <= names


def test_a_misspelt_field_is_caught_not_pruned() -> None:
    job = copy.deepcopy(_job("pytorch_mlp"))
    assert _check(job, _schema("TrainJob")) is None  # positive control
    job["spec"]["trainer"]["numProcsPerNode"] = 1
    assert _check(job, _schema("TrainJob")) == "/spec/trainer/numProcsPerNode: field not in the schema"
    job = copy.deepcopy(_job("xgboost"))
    job["spec"]["trainer"]["numNodes"] = "four"
    assert "numNodes" in (_check(job, _schema("TrainJob")) or "")


def test_the_runtimes_in_manifests_are_valid_and_serve_both_model_types() -> None:
    runtimes = list(yaml.safe_load_all((MANIFESTS / "base" / "trainer" / TRAINING_RUNTIMES_FILE).read_text()))
    assert {r["metadata"]["name"] for r in runtimes} == {"torch-distributed", "xgboost-distributed"}
    for runtime in runtimes:
        assert _check(runtime, _schema("ClusterTrainingRuntime")) is None, runtime["metadata"]["name"]
        pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
        assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    for model_type in CONFIGS:
        assert _job(model_type)["spec"]["runtimeRef"]["name"] in {r["metadata"]["name"] for r in runtimes}


def test_a_single_process_config_renders_no_train_job() -> None:
    spec = fraud.DECLARATION.spec
    with pytest.raises(ValueError, match=r"train\.distributed is not set"):
        train_job(spec, spec.step("train"), fraud.DECLARATION.config(), name="x", namespace="y", features="a", **URIS)
