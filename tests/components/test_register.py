from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.errors import ComponentError
from tests.conftest import REPO, register_into


def _register(trained: dict[str, Path], evaluated: dict[str, Path], out: Path, home: Path) -> dict[str, object]:
    return register_into(
        out, home, trained["model"], trained["metadata"], evaluated["metrics"],
        model_name="fraud-test", git_commit="abc123", card={"purpose": "tests", "owner": "qa"},
    )  # fmt: skip


def _versions(home: Path) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db", registry_uri=f"sqlite:///{home}/mlflow.db")
    return [str(v.version) for v in client.search_model_versions("name='fraud-test'")]


def test_second_registration_of_the_same_artifact_reuses_the_version(
    trained: dict[str, Path], evaluated: dict[str, Path], tmp_path: Path
) -> None:
    first = _register(trained, evaluated, tmp_path / "one", tmp_path)
    second = _register(trained, evaluated, tmp_path / "two", tmp_path)
    assert (first["version"], first["reused"]) == (1, False)
    assert (second["version"], second["reused"]) == (1, True)
    assert _versions(tmp_path) == ["1"]
    registration = json.loads((tmp_path / "two" / "registration.json").read_text())
    assert registration["artifact_sha256"] == json.loads(trained["metadata"].read_text())["model_sha256"]
    card = (tmp_path / "two" / "card.md").read_text()
    for section in ("## Purpose", "## Data", "## Features", "## Holdout metrics", "## Known limits"):
        assert section in card
    logged_card = Path(registration["model_card_uri"].removeprefix("file://")).read_text()
    assert "fraud-test v1" in logged_card


def test_concurrent_registrations_give_one_version(
    trained: dict[str, Path], evaluated: dict[str, Path], tmp_path: Path
) -> None:
    code = (
        "import sys, json; from pathlib import Path; from tests.components.test_register import _register;"
        "t={'model': Path(sys.argv[1]), 'metadata': Path(sys.argv[2])}; e={'metrics': Path(sys.argv[3])};"
        "print(json.dumps(_register(t, e, Path(sys.argv[4]), Path(sys.argv[5]))))"
    )
    args = [str(trained["model"]), str(trained["metadata"]), str(evaluated["metrics"])]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args, str(tmp_path / f"w{i}"), str(tmp_path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert {r["version"] for r in results} == {1}
    assert sorted(r["reused"] for r in results) == [False, True, True]
    assert _versions(tmp_path) == ["1"]


def test_a_model_that_failed_its_gate_is_refused(
    trained: dict[str, Path], evaluated: dict[str, Path], tmp_path: Path
) -> None:
    metrics = json.loads(evaluated["metrics"].read_text())
    metrics["passed"] = False
    (tmp_path / "failed.json").write_text(json.dumps(metrics))
    with pytest.raises(ComponentError, match="failed its gate"):
        _register(trained, {"metrics": tmp_path / "failed.json"}, tmp_path / "out", tmp_path)
    assert not (tmp_path / "out").exists()


def test_metadata_from_another_model_is_refused(
    trained: dict[str, Path], evaluated: dict[str, Path], tmp_path: Path
) -> None:
    metadata = json.loads(trained["metadata"].read_text())
    metadata["model_sha256"] = "0" * 64
    (tmp_path / "meta.json").write_text(json.dumps(metadata))
    with pytest.raises(ComponentError, match="do not match the metadata"):
        _register({"model": trained["model"], "metadata": tmp_path / "meta.json"}, evaluated, tmp_path / "o", tmp_path)


def test_a_retried_create_never_deletes_the_run_the_surviving_version_uses(
    trained: dict[str, Path], evaluated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection on the real store: the first create commits, its answer is lost, the retry creates again.

    Before, the writer saw two versions with its hash, took itself for the loser and deleted its
    run, which the surviving version 1 still pointed at (`mlflow gc` would purge its artifacts).
    """
    from mlflow import MlflowClient

    real = MlflowClient.create_model_version

    def created_twice(self: MlflowClient, *args: object, **kwargs: object) -> object:
        real(self, *args, **kwargs)  # committed on the server; the response never arrived
        return real(self, *args, **kwargs)  # MLflow's client retries the POST

    monkeypatch.setattr(MlflowClient, "create_model_version", created_twice)
    outcome = _register(trained, evaluated, tmp_path / "one", tmp_path)
    monkeypatch.undo()
    assert (outcome["version"], outcome["reused"]) == (1, False)
    assert _versions(tmp_path) == ["1"]
    client = MlflowClient(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", registry_uri=f"sqlite:///{tmp_path}/mlflow.db"
    )
    version = client.get_model_version("fraud-test", "1")
    assert client.get_run(version.run_id).info.lifecycle_stage == "active"
    assert str(client.get_model_version_by_alias("fraud-test", "challenger").version) == "1"
    assert "model_card.md" in {a.path for a in client.list_artifacts(version.run_id)}


def test_a_model_other_than_the_one_evaluate_scored_is_refused(
    trained: dict[str, Path], evaluated: dict[str, Path], materialized: dict[str, Any], tmp_path: Path
) -> None:
    """issue 29: register compared the model with train's metadata only, never with the
    `model_sha256` evaluate scored, so a model swapped (with its own metadata) between evaluate and
    register, or a rerun's model beside a cached evaluate, was registered on another model's gate."""
    from components.config import TrainSettings
    from components.errors import PERMANENT_EXIT_CODE
    from components.steps.train import train
    from tests.conftest import FEATURES

    # positive control: the bytes evaluate scored register
    assert _register(trained, evaluated, tmp_path / "same", tmp_path)["version"] == 1
    # the forbidden path: another train run's model and metadata, consistent with each other
    other = {"model": tmp_path / "other" / "model", "metadata": tmp_path / "other" / "metadata.json"}
    train(
        str(materialized["train"]),
        str(other["model"]),
        str(other["metadata"]),
        features=FEATURES,
        label_column="is_fraud",
        settings=TrainSettings(model_type="xgboost", params={"num_boost_round": 5}),
    )
    scored = json.loads(evaluated["metrics"].read_text())["model_sha256"]
    swapped = json.loads(other["metadata"].read_text())["model_sha256"]
    assert scored != swapped
    with pytest.raises(ComponentError, match="is not the model evaluate scored") as refused:
        _register(other, evaluated, tmp_path / "swapped", tmp_path)
    assert refused.value.exit_code == PERMANENT_EXIT_CODE
    assert scored in str(refused.value) and swapped in str(refused.value) and "rerun evaluate" in str(refused.value)
    assert not (tmp_path / "swapped").exists() and _versions(tmp_path) == ["1"]
    # the control broken on purpose: metrics that claim the swapped bytes let them through
    claimed = json.loads(evaluated["metrics"].read_text()) | {"model_sha256": swapped}
    (tmp_path / "claimed.json").write_text(json.dumps(claimed))
    assert _register(other, {"metrics": tmp_path / "claimed.json"}, tmp_path / "claimed", tmp_path)["version"] == 2
