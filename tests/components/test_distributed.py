"""Training across processes, started as Kubeflow Trainer's runtimes start it, on this machine's CPU.

Two workers each, on the shared 8,000-row fraud training set: DDP through torchrun with gloo
(the `PET_*` variables), and XGBoost's collective with a RabitTracker (the `DMLC_*` variables).
Each trains once per session; the assertions share the runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.config import EvaluateSettings, TrainSettings
from components.errors import ComponentError
from components.steps import distributed
from components.steps.distributed import World
from tests.conftest import FEATURES, evaluate_into, register_into

RUNTIMES = {"xgboost": "xgboost-distributed", "pytorch_mlp": "torch-distributed"}
SMALL = {"xgboost": {"num_boost_round": 60}, "pytorch_mlp": {"epochs": 4}}


def _train_and_score(materialized: dict[str, Any], out: Path, model_type: str, workers: int) -> dict[str, Any]:
    from components.steps.train import train

    out.mkdir(parents=True, exist_ok=True)
    settings = TrainSettings(
        model_type=model_type,
        device="cpu",
        params=SMALL[model_type],
        distributed={"workers": workers, "runtime": RUNTIMES[model_type]} if workers > 1 else None,
    )
    summary = train(str(materialized["train"]), str(out / "model"), str(out / "metadata.json"),
                    features=FEATURES, label_column="is_fraud", settings=settings)  # fmt: skip
    metrics = evaluate_into(
        out, out / "model", out / "metadata.json", materialized["holdout"], EvaluateSettings(threshold=0.5)
    )
    return {
        "out": out,
        "summary": summary,
        "metrics": metrics,
        "metadata": json.loads((out / "metadata.json").read_text()),
    }


def _register(run: dict[str, Any], out: Path, home: Path, *, model_name: str) -> dict[str, Any]:
    """One of `trainings`' runs (its model, metadata and metrics) through the register step: its registration."""
    out.mkdir()
    trained = run["out"]
    register_into(out, home, trained / "model", trained / "metadata.json", trained / "metrics.json",
                  model_name=model_name)  # fmt: skip
    registration: dict[str, Any] = json.loads((out / "registration.json").read_text())
    return registration


@pytest.fixture(scope="module", params=["xgboost", "pytorch_mlp"])
def trainings(
    request: pytest.FixtureRequest, materialized: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One model type trained by one process, and by two workers twice (determinism)."""
    root = tmp_path_factory.mktemp(f"distributed-{request.param}")
    return {
        "model_type": request.param,
        "single": _train_and_score(materialized, root / "single", request.param, 1),
        "two": _train_and_score(materialized, root / "two", request.param, 2),
        "again": _train_and_score(materialized, root / "again", request.param, 2),
    }


def test_two_workers_score_within_a_hundredth_of_one_process(trainings: dict[str, Any]) -> None:
    single, two = trainings["single"], trainings["two"]
    assert two["metadata"]["distributed"] == {"runtime": RUNTIMES[trainings["model_type"]], "workers": 2}
    assert "distributed" not in single["metadata"]
    assert two["metadata"]["training_rows"] == single["metadata"]["training_rows"]  # every row, once
    assert two["metadata"]["data_window"] == single["metadata"]["data_window"]
    assert two["metadata"]["positive_rate"] == pytest.approx(single["metadata"]["positive_rate"])
    assert abs(two["metrics"]["roc_auc"] - single["metrics"]["roc_auc"]) <= 0.01, (two["metrics"], single["metrics"])


def test_two_workers_give_the_same_model_bytes_each_time(trainings: dict[str, Any]) -> None:
    """Registration is by artifact sha256: a rerun must reuse the version, distributed or not."""
    two, again, single = trainings["two"], trainings["again"], trainings["single"]
    assert two["summary"]["model_sha256"] == again["summary"]["model_sha256"] == two["metadata"]["model_sha256"]
    assert two["summary"]["model_sha256"] != single["summary"]["model_sha256"]  # the shards did train apart


@pytest.mark.parametrize("trainings", ["xgboost"], indirect=True)
def test_a_distributed_model_registers_by_its_sha256(trainings: dict[str, Any], tmp_path: Path) -> None:
    """The two distributed trainings of the module's xgboost runs (`trainings`: each trained and
    evaluated by the real steps, two workers), registered one after the other."""
    first, again = (
        _register(trainings[run], tmp_path / run, tmp_path, model_name="fraud-distributed") for run in ("two", "again")
    )
    assert trainings["two"]["metadata"]["distributed"] == {"runtime": "xgboost-distributed", "workers": 2}
    assert first["artifact_sha256"] == trainings["two"]["metadata"]["model_sha256"]
    assert again["version"] == first["version"]  # the same bytes: reused
    assert first["reused"] is False and again["reused"] is True


def test_a_permanent_failure_in_the_workers_stays_permanent(materialized: dict[str, Any], tmp_path: Path) -> None:
    from components.steps.train import train

    settings = TrainSettings(model_type="xgboost", distributed={"workers": 2, "runtime": "xgboost-distributed"})
    with pytest.raises(ComponentError, match="lacks column") as refused:
        train(str(materialized["train"]), str(tmp_path / "model"), str(tmp_path / "metadata.json"),
              features=[*FEATURES, "no_such_feature"], label_column="is_fraud", settings=settings)  # fmt: skip
    assert "exited [2, 2]" in refused.value.problem
    assert not (tmp_path / "model").exists() and not (tmp_path / "metadata.json").exists()


def test_the_runtime_must_fit_the_model_type() -> None:
    with pytest.raises(ValueError, match="torch-distributed cannot train xgboost: use xgboost-distributed"):
        TrainSettings(model_type="xgboost", distributed={"workers": 2, "runtime": "torch-distributed"})
    with pytest.raises(ValueError, match="greater than or equal to 2"):
        TrainSettings(model_type="xgboost", distributed={"workers": 1, "runtime": "xgboost-distributed"})


def test_the_world_is_read_from_what_each_runtime_injects() -> None:
    assert distributed.current_world({}) == distributed.SINGLE
    torchrun = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    assert distributed.current_world(torchrun) == World("torch-distributed", 1, 4, 1)
    dmlc = {"DMLC_TRACKER_URI": "trainjob-node-0-0.trainjob", "DMLC_TRACKER_PORT": "9091", "DMLC_TASK_ID": "2",
            "DMLC_NUM_WORKER": "3"}  # fmt: skip
    assert distributed.current_world(dmlc) == World("xgboost-distributed", 2, 3)
    assert (
        distributed.tracker_host("127.0.0.1") == "127.0.0.1"
        and distributed.tracker_host(dmlc["DMLC_TRACKER_URI"]) == "0.0.0.0"
    )


def test_shards_cover_every_row_once_and_read_only_their_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"row": range(1003), "value": [float(i) for i in range(1003)]})
    frame.to_parquet(tmp_path / "set.parquet", index=False, row_group_size=100)
    for size in (1, 2, 3, 7):
        shards = [distributed.read_shard(str(tmp_path / "set.parquet"), World("x", rank, size), "set")
                  for rank in range(size)]  # fmt: skip
        assert pd.concat(shards)["row"].tolist() == list(range(1003)), size
        assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1
    with pytest.raises(ComponentError, match="got no rows"):
        distributed.read_shard(str(tmp_path / "set.parquet"), World("x", 1003, 1004), "set")


def test_a_worker_failure_names_the_workers_own_error_line_above_torchruns_summary() -> None:
    """On the lent GPU machine a DDP worker exited 2 and the message showed only torchrun's 25-line
    summary (SIGTERM to its peer, `error_file: <N/A>`): the worker's own `error: ...` line, with
    its fix, was further up and cut. The failure now names it first, and keeps its class."""
    from components.config import DistributedSettings
    from components.steps.distributed import _worker_failure

    own = "error: train (failure: permanent): worker 1 of 2 got no rows of the training set: use fewer workers"
    output = "\n".join(["[rank1]: starting", own, *(f"torchrun summary line {n}" for n in range(40))])
    failure = _worker_failure(DistributedSettings(workers=2, runtime="torch-distributed"), [1], output)
    assert isinstance(failure, ComponentError) and own in str(failure)
    assert "torchrun summary line 39" in str(failure) and "torchrun summary line 5\n" not in str(failure)
