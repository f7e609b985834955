"""The model formats the components produce, and how to load one for scoring.

Each format is chosen for serving on Triton: XGBoost's JSON model and LightGBM's text model (FIL
backend), TorchScript (libtorch backend), ONNX (onnxruntime). A TorchScript module carries its own
input scaling, so serving sends raw feature values in the order the metadata lists them. Which
model kind writes and reads each format is components/model_kinds.py's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from components import artifacts
from components.handoffs import TrainingMetadata
from components.model_kinds import kind_of_format

__all__ = ["Predictor", "gpu_visible", "load_predictor", "resolve_device"]


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
    probability for a binary objective, the predicted value for regression, (n, k) class
    probabilities for multiclass. The model kind that reads metadata["format"] loads and predicts
    (components/model_kinds.py)."""
    kind = kind_of_format(metadata["format"])
    with artifacts.fetched(str(model_path)) as local:
        model = kind.load(Path(local))

    def predict(features: np.ndarray) -> np.ndarray:
        return kind.predict(model, features)

    return predict
