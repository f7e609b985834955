"""Model kinds (issue 31 item 2): every kind round-trips fit/save/load/predict, a package registers
its own through the entry-point group, unknown kinds and unsupported objectives are refused naming
the choices, scikit-learn saves as ONNX that predicts as the estimator does, and LightGBM trains
and evaluates binary and multiclass through the train and evaluate steps. Small synthetic data:
seconds, not minutes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from components.config import EvaluateSettings, TrainSettings
from components.errors import ComponentError
from components.model_kinds import ENTRY_POINT_GROUP, ModelKind, installed_kinds, kind_of_format, model_kind
from components.steps.evaluate import evaluate
from components.steps.train import train
from pipelines.fraud.pipeline import DECLARATION as fraud

FEATURES = [f"f{i}" for i in range(6)]


def _data(classes: int = 2, rows: int = 400) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(
        n_samples=rows, n_features=6, n_informative=4, n_redundant=0, n_classes=classes, random_state=7
    )
    return x.astype(np.float32), y.astype(np.float32)


def scaled_logistic(C: float = 1.0) -> Pipeline:
    """A factory a config names as "tests.components.test_model_kinds:scaled_logistic"."""
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(C=C, max_iter=500))])


class Unconvertible(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A real estimator skl2onnx has no converter for."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> Unconvertible:
        self.classes_ = np.unique(y)
        self.prior_ = float(np.mean(y))
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.tile([1 - self.prior_, self.prior_], (len(x), 1))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("xgboost", {"num_boost_round": 10}),
        ("pytorch_mlp", {"epochs": 5, "hidden": [8], "batch_size": 32}),
        ("lightgbm", {"num_boost_round": 10}),
        (
            "sklearn",
            {"estimator": "sklearn.ensemble.HistGradientBoostingClassifier", "estimator_params": {"max_iter": 10}},
        ),
    ],
)
def test_each_kind_round_trips_fit_save_load_predict(name: str, params: dict[str, Any], tmp_path: Path) -> None:
    """issue 31: every built-in kind goes through the one interface, and its file predicts as the model did."""
    x, y = _data()
    kind = model_kind(name)
    assert isinstance(kind, ModelKind) and kind.name == name and kind_of_format(kind.model_format).name == name
    model = kind.fit(x, y, objective="binary", params=params, seed=3, device="cpu", num_classes=None)
    path = tmp_path / kind.model_file
    kind.save(model, path)
    scores = kind.predict(kind.load(path), x)
    assert scores.shape == (len(x),) and np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores, kind.predict(model, x), rtol=1e-5, atol=1e-6)
    assert np.mean((scores >= 0.5) == (y == 1)) > 0.7  # it learned something


def test_lightgbm_same_data_and_seed_give_the_same_model_bytes(tmp_path: Path) -> None:
    """issue 31: registration by sha256 needs a deterministic LightGBM file."""
    x, y = _data(classes=3)
    kind = model_kind("lightgbm")
    for copy in ("a", "b"):
        model = kind.fit(
            x, y, objective="multiclass", params={"num_boost_round": 5}, seed=1, device="cpu", num_classes=3
        )
        kind.save(model, tmp_path / copy)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


TEAM_KIND = '''
"""A team's model kind: logistic regression by gradient descent, saved as JSON."""
import json
from pathlib import Path

import numpy as np


class TinyLogistic:
    name = "tiny_logistic"
    model_format = "tiny_logistic_json"
    model_file = "model.json"
    objectives = frozenset({"binary"})
    triton_backend = "python"

    def fit(self, features, labels, *, objective, params, seed, device, num_classes):
        x = np.hstack([features, np.ones((len(features), 1), dtype=np.float32)])
        w = np.zeros(x.shape[1])
        for _ in range(int(params.get("steps", 300))):
            w -= 0.5 * x.T @ (1 / (1 + np.exp(-x @ w)) - labels) / len(x)
        return w

    def save(self, model, path):
        Path(path).write_text(json.dumps([float(v) for v in model]))

    def load(self, path):
        return np.array(json.loads(Path(path).read_text()))

    def predict(self, model, features):
        return 1 / (1 + np.exp(-(features @ model[:-1] + model[-1])))
'''


def install_kind_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str, entries: str) -> None:
    """`package` installed as a test-made dist-info on sys.path, registering `entries` (lines of
    `name = module:attribute`) in the model-kind entry-point group; TEAM_KIND as team_kinds.py."""
    (tmp_path / "team_kinds.py").write_text(TEAM_KIND)
    info = tmp_path / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entries}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "team_kinds", raising=False)


def test_a_package_registers_a_kind_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 31: a team's installed package (a dist-info with an entry point) adds a kind that trains
    and evaluates through the steps; before it is installed the name is refused."""
    with pytest.raises(ComponentError, match="'tiny_logistic' is no installed model kind"):
        model_kind("tiny_logistic")
    install_kind_package(tmp_path, monkeypatch, "team-kinds", "tiny_logistic = team_kinds:TinyLogistic")
    assert installed_kinds()["tiny_logistic"] == "team_kinds:TinyLogistic"
    summary, metrics = _train_and_evaluate(tmp_path, TrainSettings(model_type="tiny_logistic"), "binary")
    assert summary["model_type"] == "tiny_logistic" and metrics["roc_auc"] > 0.8
    assert json.loads((tmp_path / "metadata.json").read_text())["format"] == "tiny_logistic_json"


def test_a_package_cannot_take_over_a_built_in_kind_and_two_cannot_share_a_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 31 (test audit, attacker's read): a dependency registering `xgboost` must not replace the
    library's trainer, and two packages registering one name must not be resolved by install order."""
    install_kind_package(tmp_path, monkeypatch, "shadow", "xgboost = team_kinds:TinyLogistic")
    install_kind_package(tmp_path, monkeypatch, "one", "tiny = team_kinds:TinyLogistic")
    assert model_kind("xgboost").model_format == "xgboost_json"  # the built-in, not the package's
    assert installed_kinds()["tiny"] == "team_kinds:TinyLogistic"  # control: one registration resolves
    install_kind_package(tmp_path, monkeypatch, "two", "tiny = team_kinds:Other")
    with pytest.raises(ComponentError, match="two installed packages register the model kind 'tiny'"):
        model_kind("tiny")


def test_an_unknown_kind_lists_the_installed_ones_and_how_to_register() -> None:
    """issue 31: an unknown model_type is refused at config load, naming the kinds and the entry point."""
    with pytest.raises(ComponentError) as caught:
        fraud.config().with_overrides({"train.model_type": "catboost"})
    message = str(caught.value)
    assert "lightgbm, pytorch_mlp, sklearn, xgboost" in message and ENTRY_POINT_GROUP in message


def test_an_objective_a_kind_cannot_fit_names_the_kinds_that_can() -> None:
    """issue 31: xgboost has no multiclass here; the refusal names lightgbm and sklearn."""
    with pytest.raises(ComponentError, match=r"'xgboost' does not support objective 'multiclass'.*lightgbm, sklearn"):
        fraud.config().with_overrides({"train.objective": "multiclass", "evaluate.gate_metric": "accuracy"})


def test_gate_metric_must_be_the_objectives_and_distributed_needs_a_runtime() -> None:
    """issue 31: a multiclass config gating on roc_auc is refused; lightgbm has no distributed runtime."""
    overrides = {"train.model_type": "lightgbm", "train.objective": "multiclass"}
    with pytest.raises(ComponentError, match="gate_metric roc_auc does not apply to the multiclass objective"):
        fraud.config().with_overrides(overrides)
    assert (
        fraud.config().with_overrides({**overrides, "evaluate.gate_metric": "macro_f1"}).train.objective == "multiclass"
    )
    with pytest.raises(ComponentError, match="lightgbm has no distributed runtime"):
        fraud.config().with_overrides(
            {"train.model_type": "lightgbm", "train.distributed": {"workers": 2, "runtime": "xgboost-distributed"}}
        )


def test_a_sklearn_pipeline_saves_as_onnx_that_predicts_as_the_estimator(tmp_path: Path) -> None:
    """issue 31: StandardScaler + LogisticRegression named by factory path: the ONNX file (no pickle)
    predicts the estimator's probabilities on the training rows."""
    x, y = _data(classes=3)
    kind = model_kind("sklearn")
    params = {"estimator": "tests.components.test_model_kinds:scaled_logistic", "estimator_params": {"C": 0.5}}
    model = kind.fit(x, y, objective="multiclass", params=params, seed=0, device="cpu", num_classes=3)
    kind.save(model, tmp_path / "model.onnx")
    import pickle

    import onnx

    data = (tmp_path / "model.onnx").read_bytes()
    onnx.checker.check_model(onnx.load_model_from_string(data))  # a valid ONNX graph...
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)  # ...and no pickle of any protocol
    expected = scaled_logistic(C=0.5).fit(x, y.astype(int)).predict_proba(x)
    np.testing.assert_allclose(kind.predict(kind.load(tmp_path / "model.onnx"), x), expected, atol=1e-5)


def test_an_estimator_skl2onnx_cannot_convert_is_refused_naming_it() -> None:
    """issue 31: no silent pickle fallback: the refusal names the estimator and the fix."""
    x, y = _data()
    params = {"estimator": "tests.components.test_model_kinds:Unconvertible"}
    with pytest.raises(
        ComponentError, match=r"skl2onnx cannot convert tests.components.test_model_kinds:Unconvertible"
    ) as caught:
        model_kind("sklearn").fit(x, y, objective="binary", params=params, seed=0, device="cpu", num_classes=None)
    assert "register your own model kind" in caught.value.fix and caught.value.retryable is False


def test_a_classifier_without_probabilities_is_refused_naming_the_fix() -> None:
    """issue 31: LinearSVC has no predict_proba; a binary objective needs probabilities, so it is refused
    as a permanent error naming CalibratedClassifierCV (it used to fail with an AttributeError)."""
    x, y = _data()
    with pytest.raises(ComponentError, match="LinearSVC has no predict_proba") as caught:
        model_kind("sklearn").fit(
            x,
            y,
            objective="binary",
            params={"estimator": "sklearn.svm.LinearSVC"},
            seed=0,
            device="cpu",
            num_classes=None,
        )
    assert "CalibratedClassifierCV" in caught.value.fix


def _train_and_evaluate(
    folder: Path, settings: TrainSettings, objective: str, gate: EvaluateSettings | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """train() then evaluate() on a materialized-shaped pair of parquet files (features, label, time)."""
    x, y = _data(classes=3 if objective == "multiclass" else 2, rows=600)
    frame = pd.DataFrame(x, columns=FEATURES).assign(
        label=y.astype(np.int64), event_timestamp=pd.date_range("2026-01-01", periods=len(x), freq="h", tz="UTC")
    )
    frame.iloc[:450].to_parquet(folder / "train.parquet")
    frame.iloc[450:].to_parquet(folder / "holdout.parquet")
    model, metadata = folder / "model", folder / "metadata.json"
    summary = train(str(folder / "train.parquet"), str(model), str(metadata), features=FEATURES, label_column="label",
                    settings=settings)  # fmt: skip
    gate = gate or EvaluateSettings(threshold=0.5)
    evaluate(str(model), str(metadata), str(folder / "holdout.parquet"), str(folder / "metrics.json"),
             str(folder / "q.png"), str(folder / "e.png"), settings=gate)  # fmt: skip
    return summary, json.loads((folder / "metrics.json").read_text())


def test_lightgbm_binary_trains_and_evaluates_through_the_steps(tmp_path: Path) -> None:
    """issue 31: train.model_type lightgbm through train() and evaluate(): a text model FIL reads."""
    settings = TrainSettings(model_type="lightgbm", params={"num_boost_round": 30})
    summary, metrics = _train_and_evaluate(tmp_path, settings, "binary")
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["format"] == "lightgbm_text" and metadata["model_sha256"] == summary["model_sha256"]
    assert (tmp_path / "model").read_text().startswith("tree")
    assert metrics["roc_auc"] > 0.8 and metrics["passed"] is True


def test_lightgbm_multiclass_records_the_multiclass_metrics(tmp_path: Path) -> None:
    """issue 31: multiclass (labels 0..k-1) trains k-class LightGBM; evaluate records accuracy, macro F1,
    log loss and one-vs-rest AUC, and gates on one of them."""
    settings = TrainSettings(model_type="lightgbm", objective="multiclass", params={"num_boost_round": 30})
    gate = EvaluateSettings(gate_metric="macro_f1", threshold=0.99)
    _, metrics = _train_and_evaluate(tmp_path, settings, "multiclass", gate)
    assert json.loads((tmp_path / "metadata.json").read_text())["num_classes"] == 3
    assert metrics["num_classes"] == 3 and sum(metrics["class_counts"]) == metrics["holdout_rows"] == 150
    assert 0.6 < metrics["accuracy"] <= 1 and 0.6 < metrics["macro_f1"] <= 1 and metrics["roc_auc_ovr"] > 0.8
    assert 0 < metrics["log_loss"] < 1.1  # below a uniform guess's ln 3
    assert metrics["gate"] == {"metric": "macro_f1", "value": metrics["macro_f1"], "threshold": 0.99,
                               "direction": ">=", "passed": False}  # fmt: skip


def test_multiclass_labels_must_be_class_indexes(tmp_path: Path) -> None:
    """issue 31: labels beyond train.num_classes are refused, naming the setting."""
    settings = TrainSettings(model_type="lightgbm", objective="multiclass", num_classes=2)
    with pytest.raises(ComponentError, match=r"beyond train\.num_classes 2"):
        _train_and_evaluate(tmp_path, settings, "multiclass")


def test_a_sklearn_pipeline_trains_and_evaluates_through_the_steps(tmp_path: Path) -> None:
    """issue 31: model_type sklearn with a Pipeline factory through train() and evaluate(): an ONNX file
    whose sha256 the metadata records, scored by evaluate through onnxruntime."""
    params = {"estimator": "tests.components.test_model_kinds:scaled_logistic", "estimator_params": {"C": 1}}
    settings = TrainSettings(model_type="sklearn", objective="multiclass", params=params)
    summary, metrics = _train_and_evaluate(
        tmp_path, settings, "multiclass", EvaluateSettings(gate_metric="accuracy", threshold=0.5)
    )
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["format"] == "onnx" and metadata["num_classes"] == 3 and summary["model_sha256"]
    assert metrics["accuracy"] > 0.6 and metrics["passed"] is True
