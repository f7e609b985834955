"""The train step as Kubeflow Pipelines runs it distributed: it launches a TrainJob and waits.

No Kubernetes runs here: a stand-in for the API server's custom-objects calls plays Kubeflow
Trainer, and runs the TrainJob's nodes as the runtime would, on this machine (the runtime's
variables, each node the TrainJob's own command). Everything else is real: the staging in an
object store path, the command the rendering wrote, the training, the fetch and its check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components import distributed, trainjob
from components.artifacts import sha256_uri
from components.config import DistributedSettings, TrainSettings
from components.errors import ComponentError, TransientError
from pipelines.fraud import pipeline as fraud
from pipelines.trainer import LAUNCHER, launcher_template
from tests.conftest import FEATURES


class StandInTrainer:
    """create/get of trainjobs, as the API server answers them once Trainer has run the nodes."""

    def __init__(self, *, fail: bool = False, tamper: bool = False) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.fail, self.tamper = fail, tamper

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict
    ) -> dict:
        assert (group, version, plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
        job = json.loads(json.dumps(body))
        job["metadata"]["name"] = job["metadata"].pop("generateName") + "x7k2p"
        trainer = job["spec"]["trainer"]
        runtime = job["spec"]["runtimeRef"]["name"]
        command = trainer["command"][len(LAUNCHER[runtime]) :]
        assert command[:3] == ["mlops", "step", "train"]
        status = {"name": "node", "succeeded": 1, "failed": 0}
        if self.fail:
            status = {"name": "node", "succeeded": 0, "failed": 1}
        else:
            settings = DistributedSettings(workers=trainer["numNodes"], runtime=runtime)
            distributed.launch(settings, [sys.executable, "-m", "mlops.cli", *command[1:]])
            if self.tamper:
                model = command[command.index("--model-out") + 1]
                Path(model).write_bytes(Path(model).read_bytes() + b" ")
        job["status"] = {"jobsStatus": [status]}
        self.jobs[job["metadata"]["name"]] = job
        return job

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> dict:
        return self.jobs[name]


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
    from components.train import train

    template = _template(model_type, runtime)
    monkeypatch.setenv(trainjob.TEMPLATE_VARIABLE, json.dumps(template))
    api = StandInTrainer()
    monkeypatch.setattr(trainjob, "_api", lambda: api)
    settings = TrainSettings.model_validate(json.loads(template["spec"]["trainer"]["command"][-1]))
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
    command = job["spec"]["trainer"]["command"]
    assert command[command.index("--features") + 1] == ",".join(FEATURES)
    assert command[command.index("--train-set") + 1].startswith(str(tmp_path / "staging"))


def test_a_failed_train_job_is_reported_with_where_to_look(materialized: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(TransientError, match="failed") as failed:
        trainjob.launch(_template("xgboost", "xgboost-distributed"), str(materialized["train"]), str(tmp_path / "m"),
                        str(tmp_path / "d"), FEATURES, api=StandInTrainer(fail=True), staging_root=str(tmp_path),
                        poll_seconds=0)  # fmt: skip
    assert "trainer.kubeflow.org/trainjob-name=fraud-train-x7k2p" in failed.value.fix
    assert not (tmp_path / "m").exists()


def test_a_model_that_does_not_match_its_metadata_is_refused(materialized: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="does not match the sha256"):
        trainjob.launch(_template("xgboost", "xgboost-distributed"), str(materialized["train"]), str(tmp_path / "m"),
                        str(tmp_path / "d"), FEATURES, api=StandInTrainer(tamper=True), staging_root=str(tmp_path),
                        poll_seconds=0)  # fmt: skip
    assert not (tmp_path / "m").exists()
