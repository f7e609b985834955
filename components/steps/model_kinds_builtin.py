"""The library's model kinds, each behind components.model_kinds.ModelKind.

- xgboost: `hist` boosting, XGBoost's JSON model, served on Triton's FIL backend.
- pytorch_mlp: a scaled MLP exported to TorchScript, served on the pytorch backend.
- lightgbm: LightGBM's text model, which FIL reads (binary, regression, multiclass).
- sklearn: any scikit-learn estimator or Pipeline named by import path in
  `train.params.estimator` ("sklearn.ensemble.HistGradientBoostingClassifier", or
  "package.module:factory" returning one), with `train.params.estimator_params` as its keyword
  arguments; saved as ONNX through skl2onnx (no pickle reaches the registry), checked at save time
  to predict what the estimator predicts, and scored with onnxruntime.

xgboost and pytorch_mlp train in components/steps/train.py (they also train across workers); their
`fit` runs that same single-process code, so a model is the same bytes whichever path made it.

Nothing heavy (numpy, pandas, the libraries) is imported with the module: loading a config resolves
its kind, and compiling a pipeline runs on the base install (tests/test_packaging.py).
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["LIGHTGBM_DEFAULTS", "LightGBMKind", "MLPKind", "SklearnKind", "XGBoostKind"]

LIGHTGBM_DEFAULTS: dict[str, Any] = {"num_boost_round": 200, "learning_rate": 0.1, "num_leaves": 31}
PARITY_TOLERANCE = 1e-4
"""How far the ONNX file's prediction may lie from the estimator's on the training rows."""


def _labels_as_classes(labels: np.ndarray, objective: str) -> np.ndarray:
    import numpy as np

    return labels if objective == "regression" else labels.astype(np.int64)


class XGBoostKind:
    name = "xgboost"
    model_format = "xgboost_json"
    model_file = "xgboost.json"
    objectives = frozenset({"binary", "regression"})
    triton_backend = "fil"

    def fit(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        *,
        objective: str,
        params: Mapping[str, Any],
        seed: int,
        device: str,
        num_classes: int | None,
    ) -> Any:
        from components.steps import train

        names = [f"f{i}" for i in range(features.shape[1])]
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, self.model_file)
            train.train_xgboost(features, labels, names, dict(params), seed, device, path, objective)
            return self.load(Path(path))

    def save(self, model: Any, path: Path) -> None:
        from components import artifacts

        with artifacts.atomic_path(str(path), suffix=".json") as tmp:
            model.save_model(str(tmp))

    def load(self, path: Path) -> Any:
        import xgboost as xgb

        booster = xgb.Booster()
        with open(path, "rb") as handle:
            booster.load_model(bytearray(handle.read()))
        booster.set_param({"device": "cpu", "nthread": os.cpu_count() or 1})
        return booster

    def predict(self, model: Any, features: np.ndarray) -> np.ndarray:
        # inplace_predict skips building a DMatrix: several times faster for a few rows
        import numpy as np

        return np.asarray(model.inplace_predict(features), dtype=np.float64)


class MLPKind:
    name = "pytorch_mlp"
    model_format = "torchscript"
    model_file = "model.pt"
    objectives = frozenset({"binary", "regression"})
    triton_backend = "pytorch"

    def fit(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        *,
        objective: str,
        params: Mapping[str, Any],
        seed: int,
        device: str,
        num_classes: int | None,
    ) -> Any:
        from components.steps import train

        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, self.model_file)
            train.train_mlp(features, labels, dict(params), seed, device, path, objective)
            return self.load(Path(path))

    def save(self, model: Any, path: Path) -> None:
        import torch

        from components import artifacts

        with artifacts.atomic_path(str(path), suffix=".pt") as tmp:
            torch.jit.save(model, str(tmp))

    def load(self, path: Path) -> Any:
        import torch

        module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        module.eval()
        return module

    def predict(self, model: Any, features: np.ndarray) -> np.ndarray:
        import numpy as np
        import torch

        with torch.no_grad():
            output = model(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
        return np.asarray(output.numpy().reshape(-1), dtype=np.float64)


class LightGBMKind:
    name = "lightgbm"
    model_format = "lightgbm_text"
    model_file = "model.txt"
    objectives = frozenset({"binary", "regression", "multiclass"})
    triton_backend = "fil"

    def fit(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        *,
        objective: str,
        params: Mapping[str, Any],
        seed: int,
        device: str,
        num_classes: int | None,
    ) -> Any:
        import lightgbm as lgb

        settings = {**LIGHTGBM_DEFAULTS, **params}
        rounds = int(settings.pop("num_boost_round"))
        task: dict[str, Any] = {"objective": objective, "verbosity": -1}
        if objective == "multiclass":
            task["num_class"] = int(num_classes or int(labels.max()) + 1)
        # deterministic: one seed for every random draw, and the same histogram on every run
        booster_params = {
            **task,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            **settings,
        }
        dataset = lgb.Dataset(features, label=_labels_as_classes(labels, objective), free_raw_data=False)
        return lgb.train(booster_params, dataset, num_boost_round=rounds)

    def save(self, model: Any, path: Path) -> None:
        from components import artifacts

        with artifacts.atomic_path(str(path), suffix=".txt") as tmp:
            model.save_model(str(tmp))

    def load(self, path: Path) -> Any:
        import lightgbm as lgb

        return lgb.Booster(model_file=str(path))

    def predict(self, model: Any, features: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(model.predict(features), dtype=np.float64)


def _estimator(params: Mapping[str, Any]) -> Any:
    """The estimator `params["estimator"]` names: a class ("sklearn.linear_model.LogisticRegression")
    or a factory ("package.module:make_pipeline"), called with `params["estimator_params"]`."""
    path = params.get("estimator")
    if not isinstance(path, str) or not path:
        raise ComponentError(
            "train",
            "train.params.estimator is not set for model_type sklearn",
            'name the estimator by import path, e.g. estimator: "sklearn.ensemble.HistGradientBoostingClassifier"'
            ' or "package.module:factory" returning a Pipeline',
        )
    module_name, attribute = path.split(":", 1) if ":" in path else path.rsplit(".", 1)
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ComponentError(
            "train", f"train.params.estimator {path!r} does not import: {error}", "fix the import path"
        ) from error
    return factory(**dict(params.get("estimator_params") or {}))


class SklearnKind:
    name = "sklearn"
    model_format = "onnx"
    model_file = "model.onnx"
    objectives = frozenset({"binary", "regression", "multiclass"})
    triton_backend = "onnxruntime"

    def fit(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        *,
        objective: str,
        params: Mapping[str, Any],
        seed: int,
        device: str,
        num_classes: int | None,
    ) -> Any:
        """The fitted estimator, converted to ONNX at once (the ONNX bytes are the model): refused,
        naming the estimator, when skl2onnx cannot convert it or its ONNX predicts otherwise."""
        import numpy as np

        estimator = _estimator(params)
        if objective != "regression" and not hasattr(estimator, "predict_proba"):
            raise ComponentError(
                "train",
                f"{params['estimator']} has no predict_proba, so it cannot give the {objective} objective's "
                "class probabilities",
                "use a classifier with predict_proba (or wrap it in sklearn.calibration.CalibratedClassifierCV)",
            )
        if "random_state" in estimator.get_params():
            estimator.set_params(random_state=seed)
        estimator.fit(features, _labels_as_classes(labels, objective))
        onnx_bytes = _to_onnx(estimator, features, params)
        model = _Session(onnx_bytes, objective)
        expected = (
            estimator.predict(features)
            if objective == "regression"
            else estimator.predict_proba(features)[:, 1]
            if objective == "binary"
            else estimator.predict_proba(features)
        )
        worst = float(np.max(np.abs(self.predict(model, features) - np.asarray(expected, dtype=np.float64))))
        if not worst <= PARITY_TOLERANCE * max(1.0, float(np.max(np.abs(expected)))):
            raise ComponentError(
                "train",
                f"the ONNX conversion of {params['estimator']} predicts up to {worst:.3g} away from the estimator "
                "on the training rows",
                "use an estimator skl2onnx converts faithfully, or register your own model kind "
                "(docs/forking.md: Bring your own model)",
            )
        return model

    def save(self, model: Any, path: Path) -> None:
        _write(path, model.onnx_bytes)

    def load(self, path: Path) -> Any:
        data = Path(path).read_bytes()
        import onnx

        graph = onnx.load_from_string(data)
        outputs = [output.name for output in graph.graph.output]
        objective = "regression" if len(outputs) == 1 else "classification"
        return _Session(data, objective)

    def predict(self, model: Any, features: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(model.predict(np.ascontiguousarray(features, dtype=np.float32)), dtype=np.float64)


def _write(path: Path, data: bytes) -> None:
    from components import artifacts

    with artifacts.atomic_path(str(path), suffix=".onnx") as tmp:
        Path(tmp).write_bytes(data)


def _to_onnx(estimator: Any, features: np.ndarray, params: Mapping[str, Any]) -> bytes:
    import numpy as np
    from skl2onnx import to_onnx

    try:
        # zipmap off: class probabilities come back as one (n, k) tensor, the tensor contract
        options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
        graph = to_onnx(estimator, features[:1].astype(np.float32), options=options, target_opset=None)
    except Exception as error:
        raise ComponentError(
            "train",
            f"skl2onnx cannot convert {params['estimator']} ({type(error).__name__}: {error})",
            "use estimators skl2onnx supports (its list of supported scikit-learn models), register a converter "
            "for yours, or register your own model kind (docs/forking.md: Bring your own model)",
        ) from error
    return bytes(graph.SerializeToString())


class _Session:
    """An ONNX model and its onnxruntime session: scored as Triton's onnxruntime backend does."""

    def __init__(self, onnx_bytes: bytes, objective: str) -> None:
        import onnxruntime

        self.onnx_bytes = onnx_bytes
        self.objective = objective
        self.session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])

    def predict(self, features: np.ndarray) -> np.ndarray:
        import numpy as np

        name = self.session.get_inputs()[0].name
        outputs = self.session.run(None, {name: features})
        if self.objective == "regression":
            return np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        probabilities = np.asarray(outputs[-1], dtype=np.float64)
        if self.objective == "binary" or (self.objective == "classification" and probabilities.shape[1] == 2):
            return probabilities[:, 1]
        return probabilities
