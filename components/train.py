"""train: fit the model on the point-in-time training set.

Two model types, picked in the pipeline config: XGBoost (`hist`, the fast tabular baseline)
and a PyTorch MLP. Both use the GPU when one is visible (`device="auto"`), else the CPU, and
both are seeded so the same data and seed give the same model bytes on the same device, which
is what makes registration by artifact hash idempotent.
"""

from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np
import pandas as pd

from components import artifacts
from components.config import TrainSettings
from components.errors import ComponentError
from components.handoffs import TrainingMetadata
from components.models import FORMATS, resolve_device
from components.tabular import read_parquet, require_columns
from components.torchscript_export import export_torchscript, scaled_mlp

STEP = "train"
XGBOOST_DEFAULTS: dict[str, Any] = {
    "num_boost_round": 200,
    "max_depth": 6,
    "learning_rate": 0.1,
    "min_child_weight": 1.0,
    "subsample": 1.0,
}
MLP_DEFAULTS: dict[str, Any] = {"hidden": [64, 32], "epochs": 8, "batch_size": 1024, "learning_rate": 0.003}


def _restore_integers(value: Any) -> Any:
    """Orchestrators pass parameter dicts through JSON or protobuf Struct, where 6 becomes 6.0;
    XGBoost rejects `max_depth=6.0`, so integral floats are turned back into integers."""
    if isinstance(value, dict):
        return {key: _restore_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore_integers(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _matrix(frame: pd.DataFrame, features: list[str], label: str, objective: str) -> tuple[np.ndarray, np.ndarray]:
    require_columns(STEP, frame, [*features, label], "training set")
    non_numeric = [f for f in features if not pd.api.types.is_numeric_dtype(frame[f])]
    if non_numeric:
        raise ComponentError(
            STEP,
            f"feature column(s) {non_numeric} are not numeric "
            f"({', '.join(f'{c}: {frame[c].dtype}' for c in non_numeric)})",
            "encode them as numbers upstream (e.g. category codes) or drop them from the features",
        )
    labels = frame[label]
    if labels.isna().any():
        raise ComponentError(
            STEP,
            f"label column '{label}' has {int(labels.isna().sum())} nulls",
            "label every row upstream; validate should reject unlabelled data",
        )
    if objective == "regression":
        if not pd.api.types.is_numeric_dtype(labels):
            raise ComponentError(
                STEP, f"label column '{label}' is {labels.dtype}, not numeric", "a regression target must be numeric"
            )
        return frame[features].to_numpy(dtype=np.float32), labels.to_numpy(dtype=np.float32)
    values = set(np.unique(labels.to_numpy()))
    if not values <= {0, 1}:
        raise ComponentError(
            STEP,
            f"label column '{label}' holds {sorted(values)[:5]}, not 0/1",
            "binary classification needs 0/1 labels",
        )
    if len(values) < 2:
        raise ComponentError(
            STEP, f"label column '{label}' has a single class", "the training window needs both classes"
        )
    return frame[features].to_numpy(dtype=np.float32), labels.to_numpy(dtype=np.float32)


def _train_xgboost(
    x: np.ndarray,
    y: np.ndarray,
    features: list[str],
    params: dict[str, Any],
    seed: int,
    device: str,
    model_path: str,
    objective: str,
) -> tuple[dict[str, Any], int]:
    import xgboost as xgb

    settings = {**XGBOOST_DEFAULTS, **params}
    rounds = int(settings.pop("num_boost_round"))
    positives = float(y.sum())
    task: dict[str, Any] = (
        {"objective": "reg:squarederror", "eval_metric": "rmse"}
        if objective == "regression"
        else {
            "objective": "binary:logistic",
            "eval_metric": "aucpr",
            "scale_pos_weight": (len(y) - positives) / max(positives, 1.0),
        }
    )
    booster_params = {
        **task,
        "tree_method": "hist",
        "device": device,
        "seed": seed,
        **{key: value for key, value in settings.items()},
    }
    matrix = xgb.QuantileDMatrix(x, label=y, feature_names=features)
    booster = xgb.train(booster_params, matrix, num_boost_round=rounds)
    with artifacts.atomic_path(model_path, suffix=".json") as tmp:
        booster.save_model(str(tmp))
    return {**booster_params, "num_boost_round": rounds}, rounds


def _train_mlp(
    x: np.ndarray, y: np.ndarray, params: dict[str, Any], seed: int, device: str, model_path: str, objective: str
) -> tuple[dict[str, Any], int]:
    import torch
    from torch import nn

    settings = {**MLP_DEFAULTS, **params}
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6

    regression = objective == "regression"
    target_mean = float(y.mean()) if regression else 0.0
    target_std = float(y.std() + 1e-6) if regression else 1.0
    model = scaled_mlp(mean, std, list(settings["hidden"]), regression, target_mean, target_std).to(device)
    positives = float(y.sum())
    loss_fn: nn.Module = (
        nn.MSELoss()
        if regression
        else nn.BCEWithLogitsLoss(pos_weight=torch.tensor([(len(y) - positives) / max(positives, 1.0)], device=device))
    )
    y = (y - target_mean) / target_std
    optimizer = torch.optim.Adam(model.parameters(), lr=float(settings["learning_rate"]))
    features = torch.from_numpy(x).to(device)
    labels = torch.from_numpy(y).reshape(-1, 1).to(device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    batch = int(settings["batch_size"])
    epochs = int(settings["epochs"])
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator).to(device)
        for start in range(0, len(y), batch):
            index = order[start : start + batch]
            optimizer.zero_grad()
            loss = loss_fn(model.logits(features[index]), labels[index])
            loss.backward()
            optimizer.step()
    model.eval()
    export_torchscript(
        {"state": model.to("cpu").state_dict(), "hidden": list(settings["hidden"]), "regression": regression},
        model_path,
    )
    return {**settings, "device": device, "seed": seed}, epochs


def train(
    train_set: str,
    model_out: str,
    metadata_out: str,
    *,
    features: list[str],
    label_column: str,
    settings: TrainSettings,
) -> dict[str, Any]:
    """Fit `settings.model_type` on `train_set`; write the model file and its metadata JSON.

    `features` and `label_column` come from the materialize step; the rest is the config's train
    section. The objective is binary (a probability of the positive class) or regression (a number).
    """
    model_type, objective, seed, device = settings.model_type, settings.objective, settings.seed, settings.device
    chosen = resolve_device(device)
    frame = read_parquet(STEP, train_set, "training set")
    x, y = _matrix(frame, features, label_column, objective)
    params = _restore_integers(dict(settings.params))
    started = time.perf_counter()
    if model_type == "xgboost":
        used, passes = _train_xgboost(x, y, features, params or {}, seed, chosen, model_out, objective)
    else:
        used, passes = _train_mlp(x, y, params or {}, seed, chosen, model_out, objective)
    seconds = time.perf_counter() - started
    timestamps = frame.select_dtypes(include=["datetimetz", "datetime"])
    window = (
        [timestamps.iloc[:, 0].min().isoformat(), timestamps.iloc[:, 0].max().isoformat()]
        if not timestamps.empty
        else None
    )
    metadata: TrainingMetadata = {
        "model_type": model_type,
        "objective": objective,
        "format": FORMATS[model_type],
        "features": features,
        "label": label_column,
        "params": used,
        "seed": seed,
        "device": chosen,
        "training_rows": len(y),
        "positive_rate": float(y.mean()) if objective == "binary" else None,
        "label_mean": float(y.mean()),
        "training_data_sha256": artifacts.sha256_uri(train_set),
        "data_window": window,
        "model_sha256": artifacts.sha256_uri(model_out),
        "train_seconds": round(seconds, 3),
        "rows_per_second": round(len(y) / max(seconds, 1e-9), 1),
        "row_passes_per_second": round(len(y) * passes / max(seconds, 1e-9), 1),
        "passes": passes,
        "python": platform.python_version(),
    }
    artifacts.write_json(metadata_out, metadata)
    return {
        "step": STEP,
        **{
            k: metadata[k]
            for k in (
                "model_type",
                "device",
                "training_rows",
                "train_seconds",
                "rows_per_second",
                "passes",
                "row_passes_per_second",
                "model_sha256",
            )
        },
    }
