"""`mlops tune`: a 6-trial Optuna sweep of the real train and evaluate steps, with MLflow child runs
and a config patch; and the same search as a Katib Experiment, checked against Katib's swagger."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops import lint
from pipelines.fraud import pipeline as fraud
from pipelines.katib import experiment
from pipelines.tune import Tuning, tune
from tests.cli_runner import mlops

SMALL = {"tune.space": {"max_depth": {"type": "int", "low": 2, "high": 6},
                        "learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
                        "num_boost_round": {"type": "int", "low": 20, "high": 60}},
         "tune.trials": 6, "tune.parallel": 2}  # fmt: skip


@pytest.fixture(scope="module")
def sweep(raw_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Tuning, str]:
    home = tmp_path_factory.mktemp("tune")
    tracking = f"sqlite:///{home}/mlflow.db"
    cfg = fraud.DECLARATION.config().with_overrides(SMALL)
    return tune(fraud.DECLARATION, cfg, str(raw_dataset), home / "out", tracking_uri=tracking), tracking


def test_six_trials_are_child_runs_of_one_search(sweep: tuple[Tuning, str]) -> None:
    from mlflow import MlflowClient

    result, tracking = sweep
    assert len(result.trials) == 6 and result.failed == []
    client = MlflowClient(tracking_uri=tracking)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["mlops.tune"] == "search"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert len(children) == 6 and {run.info.status for run in children} == {"FINISHED"}
    values = [run.data.metrics["roc_auc"] for run in children]
    assert parent.data.metrics["best_roc_auc"] == pytest.approx(max(values)) == pytest.approx(result.best_value)
    for run in children:
        assert 2 <= int(run.data.params["max_depth"]) <= 6 and 20 <= int(run.data.params["num_boost_round"]) <= 60
        assert 0.05 <= float(run.data.params["learning_rate"]) <= 0.3
        assert len(run.data.tags["mlops.model_sha256"]) == 64  # the trial's model, as register would key it


def test_the_patch_applies_to_the_config(sweep: tuple[Tuning, str]) -> None:
    from components.config import parse_config

    result, _ = sweep
    patch = yaml.safe_load(Path(result.patch_path).read_text())
    assert patch == {"train": {"params": {**fraud.DECLARATION.config().train.params, **result.best_params}}}
    patched = parse_config(yaml.safe_load(Path(result.config_path).read_text()), source=result.config_path)
    assert patched.train.params == patch["train"]["params"]
    assert patched.model_dump(exclude={"train", "tune"}) == fraud.DECLARATION.config().model_dump(
        exclude={"train", "tune"}
    )


def test_a_trial_runs_as_a_katib_trial_does_and_prints_its_metrics(materialized: dict[str, Any]) -> None:
    done = mlops("tune-trial", "fraud", "--train-set", str(materialized["train"]),
                 "--holdout-set", str(materialized["holdout"]),
                 "--param", "max_depth=3", "--param", "num_boost_round=20", timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line and " " not in line)
    assert 0.5 < float(lines["roc_auc"]) <= 1.0 and "pr_auc" in lines


def _experiment() -> dict[str, Any]:
    cfg = fraud.DECLARATION.config()
    return experiment(fraud.DECLARATION.spec, cfg, name="fraud-tune", train_set="s3://sets/train.parquet",
                      holdout_set="s3://sets/holdout.parquet")  # fmt: skip


def test_the_katib_experiment_is_valid_against_katibs_swagger() -> None:
    document = _experiment()
    assert lint.check(document) is None
    cfg = fraud.DECLARATION.config()
    spec = document["spec"]
    assert spec["objective"] == {"type": "maximize", "objectiveMetricName": "roc_auc"}
    assert (
        spec["algorithm"] == {"algorithmName": "tpe"} and spec["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"
    )
    assert spec["parallelTrialCount"] == cfg.tune.parallel and spec["maxTrialCount"] == cfg.tune.trials
    by_name = {p["name"]: p for p in spec["parameters"]}
    space = {"min": "0.02", "max": "0.3", "distribution": "logUniform"}
    assert by_name["learning_rate"] == {"name": "learning_rate", "parameterType": "double", "feasibleSpace": space}
    assert by_name["max_depth"]["feasibleSpace"] == {"min": "3", "max": "10"}


def test_the_trial_command_is_mlops_tune_trial_with_each_parameter() -> None:
    from mlops.cli import build_parser

    container = _experiment()["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    command = [part.replace("${trialParameters.", "").replace("}", "") for part in container["command"]]
    assert command[:2] == ["mlops", "tune-trial"]
    args = build_parser(command[1:]).parse_args(command[1:])
    assert args.pipeline == "fraud" and args.train_set == "s3://sets/train.parquet"
    assert sorted(args.param) == [
        "learning_rate=learning_rate",
        "max_depth=max_depth",
        "num_boost_round=num_boost_round",
    ]


def test_a_misspelt_field_in_the_experiment_or_its_trial_job_is_caught() -> None:
    document = copy.deepcopy(_experiment())
    document["spec"]["parallelTrialCounts"] = 2
    assert lint.check(document) == "/spec/parallelTrialCounts: field not in the schema"
    document = copy.deepcopy(_experiment())
    document["spec"]["maxTrialCount"] = "many"
    assert "maxTrialCount" in (lint.check(document) or "")
    document = copy.deepcopy(_experiment())
    pod = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod["containers"][0]["imagePullPolicy2"] = "Always"
    assert (lint.check(document) or "").startswith("/spec/trialTemplate/trialSpec: ")


def test_mlops_lint_checks_a_rendered_experiment(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(_experiment()))
    done = mlops("lint", str(path), timeout=120)
    assert done.returncode == 0 and "1 objects checked, 0 findings" in done.stdout, done.stdout + done.stderr
    broken = _experiment()
    broken["spec"]["objective"]["objectiveMetricNames"] = ["roc_auc"]
    path.write_text(json.dumps(broken))
    done = mlops("lint", str(path), timeout=120)
    assert done.returncode != 0 and "objectiveMetricNames: field not in the schema" in done.stdout + done.stderr
