"""The model formats the components produce, and how to load one for scoring.

Both formats are chosen for serving on Triton: XGBoost's JSON model (FIL backend) and
TorchScript (libtorch backend). A TorchScript module carries its own input scaling, so
serving sends raw feature values in the order the metadata lists them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from components.handoffs import TrainingMetadata

__all__ = ["FORMATS", "Predictor", "gpu_visible", "load_predictor", "resolve_device"]

FORMATS = {"xgboost": "xgboost_json", "pytorch_mlp": "torchscript"}

Predictor = Callable[[np.ndarray], np.ndarray]


def gpu_visible() -> bool:
    """Whether a CUDA device is visible to this process (torch is the probe both trainers share)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if gpu_visible() else "cpu"
    return requested


def load_predictor(model_path: str | os.PathLike[str], metadata: TrainingMetadata) -> Predictor:
    """A function from an (n, features) float32 array to the prediction: the positive-class
    probability for a binary objective, the predicted value for regression."""
    model_format = metadata["format"]
    if model_format == "xgboost_json":
        import xgboost as xgb

        booster = xgb.Booster()
        with open(model_path, "rb") as handle:
            booster.load_model(bytearray(handle.read()))
        booster.set_param({"device": "cpu", "nthread": os.cpu_count() or 1})

        def predict_xgb(features: np.ndarray) -> np.ndarray:
            # inplace_predict skips building a DMatrix: several times faster for a few rows;
            # the columns are in metadata["features"] order, as the caller promises
            return np.asarray(booster.inplace_predict(features), dtype=np.float64)

        return predict_xgb
    if model_format == "torchscript":
        import torch

        module = torch.jit.load(str(model_path), map_location="cpu")  # type: ignore[no-untyped-call]
        module.eval()

        def predict_torch(features: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                output = module(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
            return np.asarray(output.numpy().reshape(-1), dtype=np.float64)

        return predict_torch
    raise ValueError(f"unknown model format {model_format!r}")
