from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.config import TrainSettings, parse_settings
from components.errors import ComponentError
from components.steps.train import train
from tests.conftest import FEATURES, REPO


def _train(materialized: dict[str, Any], out: Path, **overrides: Any) -> dict[str, Any]:
    """Train as the op does: the settings arrive as the config's train section, parsed on arrival."""
    section = {"model_type": "xgboost", "params": {"num_boost_round": 30}, **overrides}
    return _train_on(materialized["train"], out, parse_settings(TrainSettings, section, "train"))


def _train_on(train_set: Path, out: Path, settings: TrainSettings, **extra: Any) -> dict[str, Any]:
    """The train step on `train_set`, its model and metadata under `out` (issue 30: its argument
    list was written five times in this file)."""
    return train(str(train_set), str(out / "model"), str(out / "metadata.json"), features=FEATURES,
                 label_column="is_fraud", settings=settings, **extra)  # fmt: skip


def test_xgboost_metadata_records_what_registration_and_serving_need(
    trained: dict[str, Path], materialized: dict[str, Any]
) -> None:
    metadata = json.loads(trained["metadata"].read_text())
    assert metadata["features"] == FEATURES
    assert metadata["format"] == "xgboost_json" and metadata["device"] == "cpu"
    assert metadata["params"]["tree_method"] == "hist"
    assert len(metadata["training_data_sha256"]) == 64
    # rows/s are rows (not rows x rounds) per second; the fit's throughput is named as such
    assert metadata["passes"] == 60
    assert metadata["row_passes_per_second"] == pytest.approx(metadata["rows_per_second"] * 60, rel=0.01)
    assert metadata["training_rows"] == materialized["summary"]["training_rows"]


def test_same_data_and_seed_give_the_same_model_bytes(materialized: dict[str, Any], tmp_path: Path) -> None:
    first = _train(materialized, tmp_path / "a")
    second = _train(materialized, tmp_path / "b")
    other_seed = _train(materialized, tmp_path / "c", seed=7, params={"num_boost_round": 30, "subsample": 0.8})
    assert first["model_sha256"] == second["model_sha256"]
    assert other_seed["model_sha256"] != first["model_sha256"]


def test_torchscript_model_bytes_are_identical_across_processes(materialized: dict[str, Any], tmp_path: Path) -> None:
    """TorchScript embeds a random id and hash-seed-ordered constants; each run here is a new interpreter."""
    code = (
        "import sys, json; from components.steps.train import train; from components.config import TrainSettings;"
        f"print(json.dumps(train({str(materialized['train'])!r}, sys.argv[1] + '/model', sys.argv[1] + '/meta.json',"
        f" features={FEATURES!r}, label_column='is_fraud',"
        " settings=TrainSettings(model_type='pytorch_mlp', params={'epochs': 2}))))"
    )
    hashes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / name)], capture_output=True, text=True, cwd=REPO, check=True
        )
        hashes.append(json.loads(done.stdout.strip().splitlines()[-1])["model_sha256"])
    assert hashes[0] == hashes[1]


def test_pytorch_mlp_scores_raw_features(materialized: dict[str, Any], tmp_path: Path) -> None:
    import numpy as np

    from components.steps.model_formats import load_predictor

    _train(materialized, tmp_path, model_type="pytorch_mlp", params={"epochs": 3})
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["format"] == "torchscript" and metadata["device"] == "cpu"
    holdout = pd.read_parquet(materialized["holdout"])
    scores = load_predictor(tmp_path / "model", metadata)(holdout[FEATURES].to_numpy(dtype=np.float32))
    assert scores.shape == (len(holdout),) and ((scores >= 0) & (scores <= 1)).all()


def test_unknown_model_type_names_the_choices_and_writes_nothing(materialized: dict[str, Any], tmp_path: Path) -> None:
    refusal = r"model_type 'catboost' is no installed model kind \(installed: lightgbm, pytorch_mlp, sklearn, xgboost"
    with pytest.raises(ComponentError, match=refusal):
        _train(materialized, tmp_path, model_type="catboost")
    assert list(tmp_path.iterdir()) == []


def test_non_numeric_feature_and_label_nulls_are_refused(materialized: dict[str, Any], tmp_path: Path) -> None:
    frame = pd.read_parquet(materialized["train"])
    frame["merchant_category"] = frame["merchant_category"].astype(str)
    frame.to_parquet(tmp_path / "text.parquet")
    with pytest.raises(ComponentError, match="not numeric"):
        _train_on(tmp_path / "text.parquet", tmp_path, TrainSettings())
    frame = pd.read_parquet(materialized["train"])
    frame["is_fraud"] = frame["is_fraud"].astype(float)
    frame.loc[frame.index[:2], "is_fraud"] = None
    frame.to_parquet(tmp_path / "nulls.parquet")
    with pytest.raises(ComponentError, match="has 2 nulls"):
        _train_on(tmp_path / "nulls.parquet", tmp_path, TrainSettings())
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.json").exists()


def test_cuda_device_rule_falls_back_to_cpu_without_a_gpu() -> None:
    from components.steps.model_formats import gpu_visible, resolve_device

    assert resolve_device("auto") == ("cuda" if gpu_visible() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_a_training_set_rewritten_after_materialize_is_refused(materialized: dict[str, Any], tmp_path: Path) -> None:
    """issue 29: the TrainJob's training set sits at a fixed key the tenant's own key can overwrite,
    and train never compared it with materialize's lineage record: now each worker does, exit 2."""
    import shutil

    from components import lineage

    train_set = tmp_path / "sets" / "train_set.parquet"
    train_set.parent.mkdir()
    shutil.copyfile(materialized["train"], train_set)
    record = {"datasets": [lineage.describe(str(train_set), None, "training")]}  # as materialize records it
    (tmp_path / "lineage.json").write_text(json.dumps(record))
    recorded = lineage.recorded_digest(tmp_path / "lineage.json", "training")
    settings = TrainSettings(model_type="xgboost", params={"num_boost_round": 5})

    def run(out: str) -> dict[str, Any]:
        return _train_on(train_set, tmp_path / out, settings, train_set_sha256=recorded)

    assert run("same")["model_sha256"]  # positive control: the recorded bytes train
    frame = pd.read_parquet(train_set)
    frame.iloc[1:].to_parquet(train_set, index=False)  # rewritten at the same key: one row fewer
    with pytest.raises(ComponentError, match="materialize's lineage record holds") as refused:
        run("rewritten")
    found = lineage.file_sha256(train_set)
    assert refused.value.exit_code == 2 and recorded in str(refused.value) and found in str(refused.value)
    assert "--no-cache" in str(refused.value) and not (tmp_path / "rewritten").exists()
    # the control broken on purpose: without the record the rewritten set trains
    assert _train_on(train_set, tmp_path / "x", settings)["model_sha256"]
