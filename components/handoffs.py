"""The JSON documents steps hand to each other, typed once for their producers and consumers alike.

train writes TrainingMetadata, evaluate HoldoutMetrics, register a Registration (which
components.platform.model_registry also rebuilds from the registry for `mlops serve` and `mlops promote`), and
promote returns a PromoteResult. mypy checks every key a consumer reads against these.
"""

from __future__ import annotations

import os
from typing import Any, NotRequired, TypedDict, cast

from components import artifacts

__all__ = [
    "ConfusionMatrix",
    "Gate",
    "HoldoutMetrics",
    "PromoteResult",
    "Registration",
    "TrainingMetadata",
    "read_holdout_metrics",
    "read_registration",
    "read_training_metadata",
]


class Gate(TypedDict):
    metric: str
    value: float
    threshold: float
    direction: str
    """`>=` for AUCs and r2, `<=` for errors."""
    passed: bool


class TrainingMetadata(TypedDict):
    model_type: str
    objective: str
    format: str
    """The model kind's format (xgboost_json, torchscript, lightgbm_text, onnx, ...): how the file is read back."""
    features: list[str]
    """The model's input columns, in order: the tensor contract of serving."""
    label: str
    params: dict[str, Any]
    seed: int
    device: str
    training_rows: int
    positive_rate: float | None
    label_mean: float
    training_data_sha256: str
    data_window: list[str] | None
    model_sha256: str
    train_seconds: float
    rows_per_second: float
    """Training rows per second of training (rows / train_seconds)."""
    row_passes_per_second: float
    """Rows times passes (boosting rounds or epochs) per second: the throughput of the fit itself."""
    passes: int
    python: str
    num_classes: NotRequired[int]
    """multiclass: k, the model's output width (labels 0..k-1)."""
    distributed: NotRequired[dict[str, Any]]
    """Trained by several workers: {"runtime": torch-distributed | xgboost-distributed, "workers": N}."""


class ConfusionMatrix(TypedDict):
    tn: int
    fp: int
    fn: int
    tp: int


class HoldoutMetrics(TypedDict):
    objective: str
    holdout_rows: int
    gate: Gate
    passed: bool
    model_sha256: str | None
    holdout_data_sha256: str
    # binary models
    roc_auc: NotRequired[float]
    pr_auc: NotRequired[float]
    log_loss: NotRequired[float]
    decision_threshold: NotRequired[float]
    confusion_matrix: NotRequired[ConfusionMatrix]
    precision: NotRequired[float]
    recall: NotRequired[float]
    holdout_positive_rate: NotRequired[float]
    # regressors
    rmse: NotRequired[float]
    mae: NotRequired[float]
    mape: NotRequired[float]
    r2: NotRequired[float]
    label_mean: NotRequired[float]
    # multiclass models
    accuracy: NotRequired[float]
    macro_f1: NotRequired[float]
    roc_auc_ovr: NotRequired[float]
    num_classes: NotRequired[int]
    class_counts: NotRequired[list[int]]


class Registration(TypedDict):
    model_name: str
    version: int
    run_id: str
    source: str
    model_file: str
    model_format: str
    objective: str
    model_card_uri: str
    artifact_sha256: str
    gate: Gate
    holdout_metrics: dict[str, float]
    features: list[str]
    reused: NotRequired[bool]
    """register only: the version already existed for this artifact's sha256."""
    alias: NotRequired[str]
    tracking_uri: NotRequired[str]
    load_seconds: NotRequired[float | None]
    """From the registry: the model's load time `mlops serve` measured, if any."""
    pipeline: NotRequired[str]
    """From the registry: the pipeline that registered the version (its promote settings apply)."""


class PromoteResult(TypedDict):
    step: str
    inference_service: str
    namespace: str
    canary_percent: int
    storage_uri: str
    model_file: str


def read_training_metadata(uri: str | os.PathLike[str]) -> TrainingMetadata:
    return cast(TrainingMetadata, artifacts.read_json(uri))


def read_holdout_metrics(uri: str | os.PathLike[str]) -> HoldoutMetrics:
    return cast(HoldoutMetrics, artifacts.read_json(uri))


def read_registration(uri: str | os.PathLike[str]) -> Registration:
    return cast(Registration, artifacts.read_json(uri))
