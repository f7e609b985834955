"""train: fit the model on the point-in-time training set.

`train.model_type` names a model kind (components/model_kinds.py): XGBoost (`hist`, the fast
tabular baseline) and a PyTorch MLP, which also train across workers, LightGBM, any scikit-learn
estimator (saved as ONNX), or a kind a team's package registers. The kind fits and saves; this step
checks the data, records the metadata serving and registration read, and launches workers. Models
use the GPU when one is visible (`device="auto"`) and the kind can, else the CPU, and are seeded so
the same data and seed give the same model bytes on the same device, which is what makes
registration by artifact hash idempotent.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from components import artifacts
from components.config import TrainSettings
from components.errors import ComponentError
from components.handoffs import TrainingMetadata
from components.model_kinds import ModelKind, model_kind, require_objective
from components.steps import distributed, train_batches, trainjob
from components.steps.distributed import World
from components.steps.model_formats import resolve_device
from components.steps.torchscript_export import export_torchscript, scaled_mlp
from components.steps.train_arguments import TrainArguments
from components.tabular import require_columns

__all__ = ["MLP_DEFAULTS", "STEP", "XGBOOST_DEFAULTS", "train", "train_mlp", "train_xgboost"]

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


def _matrix(
    frame: pd.DataFrame, features: list[str], label: str, objective: str, *, whole: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels as float32 arrays, after checking them; `whole=False` for one worker's
    shard, where one class alone is fine (both classes are then checked over all shards)."""
    _check_columns(frame, features, label)
    return frame[features].to_numpy(dtype=np.float32), _labels(frame[label], label, objective, whole)


def _check_columns(frame: pd.DataFrame, features: list[str], label: str) -> None:
    """Every feature and the label present, the features numeric (`frame` may be the set's
    schema alone, as an empty frame)."""
    require_columns(STEP, frame, [*features, label], "training set")
    non_numeric = [f for f in features if not pd.api.types.is_numeric_dtype(frame[f])]
    if non_numeric:
        raise train_batches.not_numeric({c: str(frame[c].dtype) for c in non_numeric})


def _labels(labels: pd.Series, label: str, objective: str, whole: bool) -> np.ndarray:
    """The label column checked for the objective, as float32."""
    if labels.isna().any():
        raise ComponentError(
            STEP,
            f"label column '{label}' has {int(labels.isna().sum())} nulls",
            "label every row upstream; validate should reject unlabelled data",
        )
    if objective == "multiclass":
        return _class_labels(labels, label, whole)
    if objective == "regression":
        if not pd.api.types.is_numeric_dtype(labels):
            raise ComponentError(
                STEP, f"label column '{label}' is {labels.dtype}, not numeric", "a regression target must be numeric"
            )
        return np.asarray(labels, dtype=np.float32)
    values = set(np.unique(labels.to_numpy()).tolist())  # Python numbers: the message shows [0, 1, 2]
    if not values <= {0, 1}:
        raise ComponentError(
            STEP,
            f"label column '{label}' holds {sorted(values)[:5]}, not 0/1",
            "binary classification needs 0/1 labels",
        )
    if whole and len(values) < 2:
        _single_class(label)
    return np.asarray(labels, dtype=np.float32)


def _class_labels(labels: pd.Series, label: str, whole: bool) -> np.ndarray:
    """Multiclass labels: integers 0..k-1 (k >= 2 over the whole set)."""
    values = labels.to_numpy()
    if not pd.api.types.is_numeric_dtype(labels) or not np.all(np.mod(values, 1) == 0) or values.min() < 0:
        raise ComponentError(
            STEP,
            f"label column '{label}' holds {sorted(set(labels.unique().tolist()))[:5]}, not class indexes 0..k-1",
            "encode the classes as integers 0..k-1 upstream",
        )
    if whole and len(np.unique(values)) < 2:
        _single_class(label)
    return np.asarray(values, dtype=np.float32)


def _single_class(label: str) -> None:
    raise ComponentError(STEP, f"label column '{label}' has a single class", "the training window needs both classes")


def _label_totals(y: np.ndarray, objective: str, label: str, world: World, reduce: Any) -> tuple[float, float, float]:
    """Rows, label sum and label square sum over every worker's shard (this shard's alone in
    one process): what the class weight, the positive rate and the target scaling come from."""
    rows, total, squares = (float(v) for v in reduce(np.array([len(y), y.sum(), np.square(y).sum()]), world))
    if objective == "binary" and (total == 0 or total == rows):
        _single_class(label)
    return rows, total, squares


def train_xgboost(
    x: np.ndarray | train_batches.ParquetShard,
    y: np.ndarray,
    features: list[str],
    params: dict[str, Any],
    seed: int,
    device: str,
    model_path: str,
    objective: str,
    world: World = distributed.SINGLE,
    label: str = "label",
    batch_rows: int = train_batches.BATCH_ROWS,
) -> tuple[dict[str, Any], int, tuple[float, float, float]]:
    """Train with `hist`; across workers through XGBoost's collective, each on its shard (the
    histograms are summed over the workers, so every worker ends with the same trees). `x` is
    the features in memory, or this worker's rows of the Parquet set, read `batch_rows` at a time
    (components/steps/train_batches.py)."""
    import xgboost as xgb

    settings = {**XGBOOST_DEFAULTS, **params}
    rounds = int(settings.pop("num_boost_round"))
    with distributed.xgboost_collective(world):
        totals = _label_totals(y, objective, label, world, distributed.xgboost_sum)
        rows, positives = totals[0], totals[1]
        task: dict[str, Any] = (
            {"objective": "reg:squarederror", "eval_metric": "rmse"}
            if objective == "regression"
            else {
                "objective": "binary:logistic",
                "eval_metric": "aucpr",
                "scale_pos_weight": (rows - positives) / max(positives, 1.0),
            }
        )
        booster_params = {
            **task,
            "tree_method": "hist",
            "device": device,
            "seed": seed,
            **{key: value for key, value in settings.items()},
        }
        matrix = (
            xgb.QuantileDMatrix(x, label=y, feature_names=features)
            if isinstance(x, np.ndarray)
            else train_batches.quantile_matrix(x, y, features, batch_rows)
        )
        booster = xgb.train(booster_params, matrix, num_boost_round=rounds)
        if world.leader:
            with artifacts.atomic_path(model_path, suffix=".json") as tmp:
                booster.save_model(str(tmp))
    return {**booster_params, "num_boost_round": rounds}, rounds, totals


def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    params: dict[str, Any],
    seed: int,
    device: str,
    model_path: str,
    objective: str,
    world: World = distributed.SINGLE,
    label: str = "label",
) -> tuple[dict[str, Any], int, tuple[float, float, float]]:
    """Train the MLP; across workers with DistributedDataParallel, each on its shard with a
    1/N share of the batch, so a step sees the single process's batch size in all."""
    import torch
    from torch import nn

    settings = {**MLP_DEFAULTS, **params}
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    with distributed.torch_process_group(world, device) as device:
        totals = _label_totals(y, objective, label, world, distributed.torch_sum)
        rows, label_sum, label_squares = totals
        if world.size == 1:
            mean = x.mean(axis=0)
            std = x.std(axis=0) + 1e-6
        else:  # the scaling of the whole training set, from every shard's sums
            sums = distributed.torch_sum(
                np.concatenate([x.sum(axis=0, dtype=np.float64), np.square(x, dtype=np.float64).sum(axis=0)]), world
            )
            width = x.shape[1]
            mean64 = sums[:width] / rows
            mean = mean64.astype(np.float32)
            std = (np.sqrt(np.maximum(sums[width:] / rows - mean64**2, 0.0)) + 1e-6).astype(np.float32)

        regression = objective == "regression"
        target_mean = label_sum / rows if regression else 0.0
        target_std = float(np.sqrt(max(label_squares / rows - target_mean**2, 0.0)) + 1e-6) if regression else 1.0
        if world.size == 1 and regression:  # the single process's figures, bit for bit as before
            target_mean, target_std = float(y.mean()), float(y.std() + 1e-6)
        model = scaled_mlp(mean, std, list(settings["hidden"]), regression, target_mean, target_std).to(device)
        positives = label_sum if world.size > 1 else float(y.sum())
        loss_fn: nn.Module = (
            nn.MSELoss()
            if regression
            else nn.BCEWithLogitsLoss(
                pos_weight=torch.tensor([(rows - positives) / max(positives, 1.0)], device=device)
            )
        )
        y = (y - target_mean) / target_std
        step_module, joined = _data_parallel(model, world, device)
        optimizer = torch.optim.Adam(model.parameters(), lr=float(settings["learning_rate"]))
        features = torch.from_numpy(x).to(device)
        labels = torch.from_numpy(y).reshape(-1, 1).to(device)
        generator = torch.Generator(device="cpu").manual_seed(seed + world.rank)
        batch = max(1, int(settings["batch_size"]) // world.size)
        epochs = int(settings["epochs"])
        model.train()
        with joined:
            for _ in range(epochs):
                order = torch.randperm(len(y), generator=generator).to(device)
                for start in range(0, len(y), batch):
                    index = order[start : start + batch]
                    optimizer.zero_grad()
                    loss = loss_fn(step_module(features[index]), labels[index])
                    loss.backward()
                    optimizer.step()
        model.eval()
        if world.leader:
            export_torchscript(
                {"state": model.to("cpu").state_dict(), "hidden": list(settings["hidden"]), "regression": regression},
                model_path,
            )
    return {**settings, "device": device, "seed": seed}, epochs, totals


def _fit_kind(
    kind: ModelKind,
    x: np.ndarray,
    y: np.ndarray,
    params: dict[str, Any],
    settings: TrainSettings,
    device: str,
    model_path: str,
    label: str,
) -> tuple[dict[str, Any], int, tuple[float, float, float]]:
    """Fit and save through the kind's interface (one process: only xgboost and pytorch_mlp have a
    distributed runtime). Multiclass: k from train.num_classes, else from the labels."""
    totals = _label_totals(y, settings.objective, label, distributed.SINGLE, lambda values, _world: values)
    num_classes = None
    if settings.objective == "multiclass":
        seen = int(y.max()) + 1
        num_classes = settings.num_classes or seen
        if seen > num_classes:
            raise ComponentError(
                STEP,
                f"label column '{label}' holds class {seen - 1}, beyond train.num_classes {num_classes}",
                "raise train.num_classes or fix the labels",
            )
    model = kind.fit(
        x, y, objective=settings.objective, params=params, seed=settings.seed, device=device, num_classes=num_classes
    )
    kind.save(model, Path(model_path))
    passes = int(params.get("num_boost_round", params.get("epochs", 1)) or 1)
    used = {**params, "seed": settings.seed, **({"num_classes": num_classes} if num_classes else {})}
    return used, passes, totals


def _data_parallel(model: Any, world: World, device: str) -> tuple[Any, Any]:
    """What a training step calls (the model's logits; wrapped in DDP across workers, which
    averages the gradients) and the context that lets shards of unequal size finish together."""
    import contextlib

    if world.size == 1:
        return model.logits, contextlib.nullcontext()
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    class Logits(nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, features: Any) -> Any:
            return self.inner.logits(features)

    import torch

    index = torch.device(device).index
    wrapped = DistributedDataParallel(Logits(model), device_ids=[index] if index is not None else None)
    return wrapped, wrapped.join()


def train(
    train_set: str,
    model_out: str,
    metadata_out: str,
    *,
    features: list[str],
    label_column: str,
    settings: TrainSettings,
    train_set_sha256: str = "",
) -> dict[str, Any]:
    """Fit `settings.model_type` on `train_set`; write the model file and its metadata JSON.

    `features` and `label_column` come from the materialize step; the rest is the config's train
    section. The objective is binary (a probability of the positive class), regression (a number) or
    multiclass (labels 0..k-1, k class probabilities; k is train.num_classes or the labels').
    `train_set_sha256` is the digest materialize's lineage record holds for the set: every worker
    refuses a set with other bytes (components/lineage.py: require_recorded). XGBoost reads the
    Parquet set `settings.batch_rows` rows at a time (components/steps/train_batches.py); the
    other kinds read it whole.
    """
    model_type, objective, seed, device = settings.model_type, settings.objective, settings.seed, settings.device
    kind = model_kind(model_type)
    require_objective(kind, objective)
    world = distributed.current_world()
    if train_set_sha256:
        from components.lineage import require_recorded

        require_recorded(STEP, train_set, "training set", train_set_sha256)
    if settings.distributed is not None and world.size == 1:
        template = os.environ.get(trainjob.TEMPLATE_VARIABLE)
        if template:  # a Kubeflow Pipelines task: this step launches the TrainJob and waits on it
            launched = trainjob.launch(
                json.loads(template), train_set, model_out, metadata_out, features, train_set_sha256=train_set_sha256
            )
            return _summary(cast(TrainingMetadata, launched))
        arguments = (train_set, model_out, metadata_out, tuple(features), label_column, settings, train_set_sha256)
        return _launch(TrainArguments(*arguments))
    chosen = resolve_device(device)
    params = _restore_integers(dict(settings.params)) or {}
    read = _from_csv if str(train_set).endswith(".csv") else _from_parquet
    fitted = read(kind, train_set, features, label_column, settings, params, chosen, model_out, world)
    used, passes, totals, seconds = fitted.used, fitted.passes, fitted.totals, fitted.seconds
    rows, label_sum = int(totals[0]), totals[1]
    if not world.leader:  # the leader writes the model and the metadata
        return {"step": STEP, "worker": world.rank, "workers": world.size, "shard_rows": fitted.shard_rows}
    metadata: TrainingMetadata = {
        "model_type": model_type,
        "objective": objective,
        "format": kind.model_format,
        "features": features,
        "label": label_column,
        "params": used,
        "seed": seed,
        "device": chosen,
        "training_rows": rows,
        "positive_rate": label_sum / rows if objective == "binary" else None,
        "label_mean": label_sum / rows,
        "training_data_sha256": artifacts.sha256_uri(train_set),
        "data_window": fitted.window,
        "model_sha256": artifacts.sha256_uri(model_out),
        "train_seconds": round(seconds, 3),
        "rows_per_second": round(rows / max(seconds, 1e-9), 1),
        "row_passes_per_second": round(rows * passes / max(seconds, 1e-9), 1),
        "passes": passes,
        "python": platform.python_version(),
    }
    if objective == "multiclass":
        metadata["num_classes"] = int(used["num_classes"])
    if world.size > 1:
        metadata["distributed"] = {"runtime": world.runtime, "workers": world.size}
    artifacts.write_json(metadata_out, metadata)
    return _summary(metadata)


@dataclass(frozen=True)
class _Fitted:
    """What fitting leaves for the metadata: the parameters used, the passes over the data, the
    label totals over every shard, the training seconds, this shard's rows, the set's window."""

    used: dict[str, Any]
    passes: int
    totals: tuple[float, float, float]
    seconds: float
    shard_rows: int
    window: list[str] | None


def _from_parquet(
    kind: ModelKind,
    train_set: str,
    features: list[str],
    label: str,
    settings: TrainSettings,
    params: dict[str, Any],
    device: str,
    model_out: str,
    world: World,
) -> _Fitted:
    """The Parquet set (a worker: its shard) read in `settings.batch_rows`-row batches: the schema
    and the label column are checked as the in-memory path checks them; XGBoost builds its
    quantized matrix from the batches (the seconds count that reading: it is how the matrix is
    built), the other kinds get one float32 matrix filled batch by batch, never a pandas frame."""
    if not artifacts.exists(train_set):
        raise ComponentError(
            STEP, f"training set not found at {train_set}", "check the path or URI; run the upstream step first"
        )
    with artifacts.fetched(train_set) as path:
        shard = train_batches.open_shard(path, train_set, world, "training set")
        _check_columns(shard.empty_frame(), features, label)
        y = _labels(shard.column(label), label, settings.objective, world.size == 1)
        x = shard if kind.name == "xgboost" else train_batches.read_matrix(shard, features, settings.batch_rows)
        started = time.perf_counter()
        used, passes, totals = _fit(kind, x, y, features, label, settings, params, device, model_out, world)
        seconds = time.perf_counter() - started
        window = train_batches.data_window(None, str(path)) if world.leader else None
    return _Fitted(used, passes, totals, seconds, len(y), window)


def _from_csv(
    kind: ModelKind,
    train_set: str,
    features: list[str],
    label: str,
    settings: TrainSettings,
    params: dict[str, Any],
    device: str,
    model_out: str,
    world: World,
) -> _Fitted:
    """A CSV set (a worker: its shard), read whole into pandas."""
    frame = distributed.read_shard(train_set, world, "training set")
    x, y = _matrix(frame, features, label, settings.objective, whole=world.size == 1)
    started = time.perf_counter()
    used, passes, totals = _fit(kind, x, y, features, label, settings, params, device, model_out, world)
    seconds = time.perf_counter() - started
    window = train_batches.data_window(frame if world.size == 1 else None, train_set) if world.leader else None
    return _Fitted(used, passes, totals, seconds, len(y), window)


def _fit(
    kind: ModelKind,
    x: np.ndarray | train_batches.ParquetShard,
    y: np.ndarray,
    features: list[str],
    label: str,
    settings: TrainSettings,
    params: dict[str, Any],
    device: str,
    model_out: str,
    world: World,
) -> tuple[dict[str, Any], int, tuple[float, float, float]]:
    objective, seed = settings.objective, settings.seed
    if kind.name == "xgboost":
        return train_xgboost(
            x, y, features, params, seed, device, model_out, objective, world, label, settings.batch_rows
        )
    assert isinstance(x, np.ndarray)  # only XGBoost reads the batches itself
    if kind.name == "pytorch_mlp":
        return train_mlp(x, y, params, seed, device, model_out, objective, world, label)
    return _fit_kind(kind, x, y, params, settings, device, model_out, label)


def _summary(metadata: TrainingMetadata) -> dict[str, Any]:
    keys = ("model_type", "device", "training_rows", "train_seconds", "rows_per_second", "passes")
    return {
        "step": STEP,
        **{k: metadata[k] for k in (*keys, "row_passes_per_second", "model_sha256")},  # type: ignore[literal-required]
        **({"distributed": metadata["distributed"]} if "distributed" in metadata else {}),
    }


def _launch(arguments: TrainArguments) -> dict[str, Any]:
    """Train as `settings.distributed` workers on this machine, started as the cluster's runtime
    starts them (components/steps/distributed.py), each running this same step's command."""
    assert arguments.settings.distributed is not None
    distributed.launch(arguments.settings.distributed, arguments.command(sys.executable, "-m", "mlops.cli"))
    metadata: TrainingMetadata = artifacts.read_json(arguments.metadata_out)
    return _summary(metadata)
