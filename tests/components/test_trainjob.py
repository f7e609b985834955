"""The train step as Kubeflow Pipelines runs it distributed: it launches a TrainJob and waits.

No Kubernetes runs here: a stand-in for the API server's custom-objects calls plays Kubeflow
Trainer (tests/kubernetes_api_stand_in.py: bodies held to the Trainer CRD, status moving from none
to active to Complete or Failed as Trainer reports it), and runs the TrainJob's nodes as the
runtime would, on this machine (the runtime's variables, each node the TrainJob's own command).
Everything else is real: the staging in an object store path, the command the rendering wrote,
the training, the fetch and its check.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.artifacts import sha256_uri
from components.config import DistributedSettings, TrainSettings
from components.errors import ComponentError, TransientError
from components.steps import distributed, trainjob
from pipelines.fraud import pipeline as fraud
from pipelines.trainer import LAUNCHER, launcher_template
from tests.conftest import FEATURES
from tests.kubernetes_api_stand_in import TrainerStandIn


def _nodes(*, fail: bool = False, tamper: bool = False) -> Callable[[dict[str, Any]], bool]:
    """What the runtime's nodes do, run here: the TrainJob's own command on each node, with the
    runtime's variables (components.steps.distributed); `fail` plays a node that exits non-zero."""

    def run(job: dict[str, Any]) -> bool:
        trainer, runtime = job["spec"]["trainer"], job["spec"]["runtimeRef"]["name"]
        command = trainer["command"][len(LAUNCHER[runtime]) :]
        assert command[:3] == ["mlops", "step", "train"]
        if fail:
            return False
        settings = DistributedSettings(workers=trainer["numNodes"], runtime=runtime)
        distributed.launch(settings, [sys.executable, "-m", "mlops.cli", *command[1:]])
        if tamper:
            model = command[command.index("--model-out") + 1]
            Path(model).write_bytes(Path(model).read_bytes() + b" ")
        return True

    return run


def _template(model_type: str, runtime: str) -> dict[str, Any]:
    params = {"num_boost_round": 30} if model_type == "xgboost" else {"epochs": 2}
    cfg = fraud.DECLARATION.config().with_overrides(
        {"train.model_type": model_type, "train.params": params, "train.device": "cpu",
         "train.distributed": {"workers": 2, "runtime": runtime}}
    )  # fmt: skip
    spec = fraud.DECLARATION.spec
    job = launcher_template(spec, spec.step("train"), cfg)
    job["metadata"]["namespace"] = "fraud"  # in a pod: the service account's namespace file
    return job


@pytest.mark.parametrize(
    ("model_type", "runtime"), [("xgboost", "xgboost-distributed"), ("pytorch_mlp", "torch-distributed")]
)
def test_the_train_step_launches_its_train_job_with_a_stand_in_for_the_kubernetes_api(
    materialized: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_type: str, runtime: str
) -> None:
    from components.steps.train import train

    template = _template(model_type, runtime)
    monkeypatch.setenv(trainjob.TEMPLATE_VARIABLE, json.dumps(template))
    api = TrainerStandIn(_nodes())
    monkeypatch.setattr(trainjob, "_api", lambda: api)
    command = template["spec"]["trainer"]["command"]
    settings = TrainSettings.model_validate(json.loads(command[command.index("--settings") + 1]))
    original = trainjob.launch
    monkeypatch.setattr(
        trainjob, "launch", lambda *a, **k: original(*a, **k, staging_root=str(tmp_path / "staging"), poll_seconds=0)
    )
    summary = train(str(materialized["train"]), str(tmp_path / "model"), str(tmp_path / "metadata.json"),
                    features=FEATURES, label_column="is_fraud", settings=settings)  # fmt: skip
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert (
        metadata["distributed"] == {"runtime": runtime, "workers": 2}
        and summary["distributed"] == metadata["distributed"]
    )
    assert metadata["training_rows"] == len(pd.read_parquet(materialized["train"]))
    assert sha256_uri(str(tmp_path / "model")) == metadata["model_sha256"] == summary["model_sha256"]
    (job,) = api.jobs.values()
    # issue 28: the stand-in reported success as soon as the job was created, so the polling never ran
    assert api.seen[job["metadata"]["name"]] == ["none", "active", "Complete"]
    command = job["spec"]["trainer"]["command"]
    assert command[command.index("--features") + 1] == ",".join(FEATURES)
    assert command[command.index("--train-set") + 1].startswith(str(tmp_path / "staging"))
    # issue 29: each node checks the staged set against the digest the step checked its input with
    assert command[command.index("--train-set-sha256") + 1] == sha256_uri(str(materialized["train"]))


def test_a_failed_train_job_is_reported_with_where_to_look(materialized: dict[str, Any], tmp_path: Path) -> None:
    """issue 28: the failure comes as Trainer reports it, after the job was seen running."""
    api = TrainerStandIn(_nodes(fail=True))
    with pytest.raises(TransientError, match="failed") as failed:
        trainjob.launch(_template("xgboost", "xgboost-distributed"), str(materialized["train"]), str(tmp_path / "m"),
                        str(tmp_path / "d"), FEATURES, api=api, staging_root=str(tmp_path),
                        poll_seconds=0)  # fmt: skip
    assert "trainer.kubeflow.org/trainjob-name=fraud-train-x7k2p" in failed.value.fix
    assert "FailedJobs" in failed.value.problem and api.seen["fraud-train-x7k2p"] == ["none", "active", "Failed"]
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("edit", "refusal"),
    [
        (
            lambda job: job["spec"]["trainer"].update(numNode=4),
            'strict decoding error: unknown field "spec.trainer.numNode"',
        ),
        (lambda job: job["spec"]["trainer"].update(numNodes="two"), "422 Invalid"),
        (lambda job: job["spec"]["runtimeRef"].update(name="mpi-distributed"), "must be created before the TrainJob"),
    ],
    ids=["unknown-field", "wrong-type", "unknown-runtime"],
)
def test_a_train_job_the_api_server_refuses_fails_the_step_before_anything_runs(
    materialized: dict[str, Any], tmp_path: Path, edit: Callable[[dict[str, Any]], None], refusal: str
) -> None:
    """issue 28: the TrainJob stand-in stored any body; now it is held to the Trainer CRD (strict,
    as the launcher asks) and to the runtimes the platform renders. The test above is the control."""
    template = _template("xgboost", "xgboost-distributed")
    edit(template)
    api = TrainerStandIn(_nodes())
    with pytest.raises(ComponentError, match="refused the TrainJob") as refused:
        trainjob.launch(template, str(materialized["train"]), str(tmp_path / "m"), str(tmp_path / "d"), FEATURES,
                        api=api, staging_root=str(tmp_path), poll_seconds=0)  # fmt: skip
    assert refusal in str(refused.value) and not isinstance(refused.value, TransientError)
    assert api.jobs == {} and not (tmp_path / "m").exists()


def test_a_model_that_does_not_match_its_metadata_is_refused(materialized: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="does not match the sha256"):
        trainjob.launch(_template("xgboost", "xgboost-distributed"), str(materialized["train"]), str(tmp_path / "m"),
                        str(tmp_path / "d"), FEATURES, api=TrainerStandIn(_nodes(tamper=True)),
                        staging_root=str(tmp_path), poll_seconds=0)  # fmt: skip
    assert not (tmp_path / "m").exists()
