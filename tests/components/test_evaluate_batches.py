"""issue 33: evaluate reads and scores the holdout in bounded batches, and its metrics are exactly
what scikit-learn computes on the whole frame, for every objective and every model format.

The expected figures are computed here, independently of components/steps/evaluate.py: the
holdout read whole with pandas, the model's predictions on the whole feature matrix, scikit-learn's
metrics, rounded as the metrics JSON rounds them. The step runs with a batch far smaller than the
holdout (and not a multiple of its row groups), on data with nulls in a float feature and in an
integer feature whose nulls lie in the last batch only (a whole frame reads it as float64, the
earlier batches as int64), from one Parquet file and from a hive-partitioned folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.config import EvaluateSettings
from components.steps import evaluate as evaluate_step
from components.steps.model_formats import load_predictor
from components.steps.train import train
from tests.conftest import evaluate_into

FEATURES = ["x0", "x1", "count", "x3"]
ROWS = 2_600
HGB = "sklearn.ensemble.HistGradientBoosting"
CASES = [  # (model_type, objective, params, nulls in the features)
    ("xgboost", "binary", {"num_boost_round": 20}, True),
    ("xgboost", "regression", {"num_boost_round": 20}, True),
    ("lightgbm", "binary", {"num_boost_round": 20}, True),
    ("lightgbm", "regression", {"num_boost_round": 20}, True),
    ("lightgbm", "multiclass", {"num_boost_round": 20}, True),
    ("pytorch_mlp", "binary", {"epochs": 3, "hidden": [8], "batch_size": 64}, False),
    ("pytorch_mlp", "regression", {"epochs": 3, "hidden": [8], "batch_size": 64}, False),
    ("sklearn", "binary", {"estimator": f"{HGB}Classifier", "estimator_params": {"max_iter": 10}}, False),
    ("sklearn", "regression", {"estimator": f"{HGB}Regressor", "estimator_params": {"max_iter": 10}}, False),
    ("sklearn", "multiclass", {"estimator": f"{HGB}Classifier", "estimator_params": {"max_iter": 10}}, False),
]
GATES = {"binary": ("roc_auc", 0.5), "regression": ("rmse", 1e9), "multiclass": ("accuracy", 0.1)}


def _frame(objective: str, nulls: bool, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, 4))
    signal = x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 3]
    label: np.ndarray
    if objective == "binary":
        label = (signal + rng.normal(scale=0.7, size=ROWS) > 0.3).astype(np.int64)
    elif objective == "multiclass":
        label = np.digitize(signal + rng.normal(scale=0.5, size=ROWS), [-0.5, 0.5]).astype(np.int64)
    else:
        label = 40.0 + 12.0 * signal + rng.normal(scale=2.0, size=ROWS)
    frame = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "count": rng.integers(0, 50, ROWS), "x3": x[:, 3]})
    frame["label"] = label
    frame["day"] = np.repeat(["2026-11-01", "2026-11-02", "2026-11-03"], [900, 900, ROWS - 1800])
    if nulls:
        frame.loc[rng.random(ROWS) < 0.05, "x1"] = np.nan
        frame["count"] = frame["count"].astype("Int64")
        frame.loc[frame.index[-150:][rng.random(150) < 0.5], "count"] = pd.NA  # in the last batch only
    return frame


def _expected(objective: str, actual: np.ndarray, scores: np.ndarray, decision: float) -> dict[str, Any]:
    """scikit-learn on the whole arrays, rounded as the metrics JSON rounds."""
    from sklearn import metrics as m

    def r(value: float) -> float:
        return round(float(value), 6)

    if objective == "binary":
        labels = actual.astype(np.int64)
        tn, fp, fn, tp = m.confusion_matrix(labels, (scores >= decision).astype(np.int64), labels=[0, 1]).ravel()
        return {
            "roc_auc": r(m.roc_auc_score(labels, scores)),
            "pr_auc": r(m.average_precision_score(labels, scores)),
            "log_loss": r(m.log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7))),
            "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
            "holdout_positive_rate": r(labels.mean()),
        }
    if objective == "multiclass":
        labels = actual.astype(np.int64)
        classes = list(range(scores.shape[1]))
        clipped = np.clip(scores, 1e-7, 1.0)
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        return {
            "accuracy": r(m.accuracy_score(labels, scores.argmax(axis=1))),
            "macro_f1": r(m.f1_score(labels, scores.argmax(axis=1), labels=classes, average="macro", zero_division=0)),
            "log_loss": r(m.log_loss(labels, clipped, labels=classes)),
            "roc_auc_ovr": r(np.mean([m.roc_auc_score(labels == c, scores[:, c]) for c in np.unique(labels)])),
            "class_counts": [int(np.sum(labels == c)) for c in classes],
        }
    nonzero = np.abs(actual) >= 1.0
    return {
        "rmse": r(math.sqrt(m.mean_squared_error(actual, scores))),
        "mae": r(m.mean_absolute_error(actual, scores)),
        "mape": r(np.mean(np.abs((scores[nonzero] - actual[nonzero]) / actual[nonzero]))),
        "r2": r(m.r2_score(actual, scores)),
        "label_mean": r(actual.mean()),
    }


@pytest.mark.parametrize(("model_type", "objective", "params", "nulls"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_batched_metrics_equal_the_whole_frames(
    model_type: str,
    objective: str,
    params: dict[str, Any],
    nulls: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from components.train_settings import TrainSettings

    _frame(objective, nulls, seed=1).to_parquet(tmp_path / "train.parquet")
    settings = TrainSettings(model_type=model_type, objective=objective, params=params, device="cpu")
    train(str(tmp_path / "train.parquet"), str(tmp_path / "model"), str(tmp_path / "metadata.json"),
          features=FEATURES, label_column="label", settings=settings)  # fmt: skip
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    # as materialize's DuckDB writes it: Arrow types, no pandas metadata (an integer column with nulls
    # reads back as float64 from a whole file, as int64 from a batch without them)
    holdout = pa.Table.from_pandas(_frame(objective, nulls, seed=2), preserve_index=False).replace_schema_metadata()
    single = tmp_path / "holdout.parquet"
    pq.write_table(holdout, single, row_group_size=500)
    hive = tmp_path / "holdout-hive"
    pq.write_to_dataset(holdout, hive, partition_cols=["day"])
    gate, threshold = GATES[objective]
    monkeypatch.setattr(evaluate_step, "BATCH_ROWS", 700)  # four batches, across row groups
    predict = load_predictor(tmp_path / "model", metadata)
    for source in (single, hive):
        whole = pd.read_parquet(source)  # today's read: the whole frame, as pandas types it
        assert (source is hive) or whole["count"].dtype == (np.float64 if nulls else np.int64)
        actual = whole["label"].to_numpy(dtype=np.float64)
        scores = predict(whole[FEATURES].to_numpy(dtype=np.float32))
        expected = _expected(objective, actual, scores, EvaluateSettings().decision_threshold)
        out = tmp_path / f"out-{source.name}"
        out.mkdir()
        summary = evaluate_into(out, tmp_path / "model", tmp_path / "metadata.json", source,
                                EvaluateSettings(gate_metric=gate, threshold=threshold))  # fmt: skip
        metrics = json.loads((out / "metrics.json").read_text())
        assert {key: metrics[key] for key in expected} == expected, (model_type, objective, source.name)
        assert metrics["holdout_rows"] == ROWS and summary["passed"] is True
        assert metrics["gate"]["value"] == expected[gate]
        for png in ("roc.png", "pr.png"):
            assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_holdout_digest_is_the_files_and_a_folders_is_its_listing(tmp_path: Path) -> None:
    """The metrics record the sha256 of the holdout file read (what artifacts.sha256_uri gave), and
    of a folder raw_data's digest of its sorted (path, sha256) list."""
    from components import artifacts
    from components.raw_data import raw_digest

    holdout = _frame("binary", False, seed=2)
    single = tmp_path / "holdout.parquet"
    holdout.to_parquet(single)
    hive = tmp_path / "hive"
    pq.write_to_dataset(pa.Table.from_pandas(holdout, preserve_index=False), hive, partition_cols=["day"])
    for source, digest in ((single, artifacts.sha256_file(single)), (hive, raw_digest(str(hive)))):
        found, actual, scores = evaluate_step.scored_holdout(str(source), FEATURES, "label", lambda x: x[:, 0] * 2)
        assert found == digest and len(actual) == len(scores) == ROWS


def test_a_holdout_without_rows_or_columns_is_refused(tmp_path: Path) -> None:
    from components.errors import ComponentError

    empty = tmp_path / "empty.parquet"
    _frame("binary", False, seed=2).iloc[:0].to_parquet(empty)
    with pytest.raises(ComponentError, match="has no rows") as refused:
        evaluate_step.scored_holdout(str(empty), FEATURES, "label", lambda x: x[:, 0])
    assert refused.value.exit_code == 2
    with pytest.raises(ComponentError, match=r"holdout set lacks column\(s\) \['nope'\]"):
        evaluate_step.scored_holdout(str(empty), [*FEATURES, "nope"], "label", lambda x: x[:, 0])
    with pytest.raises(ComponentError, match="holdout set not found"):
        evaluate_step.scored_holdout(str(tmp_path / "missing.parquet"), FEATURES, "label", lambda x: x[:, 0])
