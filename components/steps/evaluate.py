"""evaluate: score the model on the time-ordered holdout and decide whether it may ship.

The gate is deliberately simple and explicit: one metric against one threshold, e.g.
`passed = roc_auc >= 0.85` for a classifier or `passed = mape <= 0.25` for a forecaster (the
direction follows from the metric). It is emitted as an output the DAG branches on; every
number behind it goes to the metrics JSON and two plots go to PNGs a reviewer can open: ROC
and precision-recall curves for a classifier, predicted-vs-actual and residuals for a regressor,
the confusion matrix and the actual-class probabilities for a multiclass model.

Bounded memory (issue 33): the holdout is read BATCH_ROWS rows at a time (a pyarrow dataset: one
Parquet file, a folder, a hive dataset; local or s3://), each batch scored as it comes, and only
the labels and the predictions are kept (8 bytes each per row, k x 8 for k classes), so the peak
is Python's share plus one batch plus those arrays, not a multiple of the whole frame. The metrics
are computed from those arrays by the same functions as before, so they are exactly what one
whole-frame pass gives (tests/components/test_evaluate_batches.py checks them against scikit-learn
on the whole frame). The curves are drawn from the same arrays, thinned to at most PLOTTED_POINTS
points along each curve; the regression scatter plots a seeded uniform sample of PLOTTED_POINTS rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from components import artifacts
from components.arrow_batches import bounded_batches
from components.config import EvaluateSettings
from components.errors import ComponentError
from components.handoffs import Gate, HoldoutMetrics, read_training_metadata
from components.steps.model_formats import load_predictor
from components.tabular import read_parquet, require_columns
from components.train_settings import HIGHER_IS_BETTER, LOWER_IS_BETTER, METRICS_BY_OBJECTIVE

__all__ = [
    "BATCH_ROWS",
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "METRICS_BY_OBJECTIVE",
    "PLOTTED_POINTS",
    "STEP",
    "SUMMARY_KEYS",
    "evaluate",
    "scored_holdout",
]

STEP = "evaluate"
BATCH_ROWS = 500_000
"""Holdout rows read and scored at a time."""
PLOTTED_POINTS = 20_000
"""At most this many points per curve, and rows in the regression scatter."""
SUMMARY_KEYS = {
    "binary": ("roc_auc", "pr_auc", "log_loss"),
    "regression": ("rmse", "mae", "mape", "r2"),
    "multiclass": ("accuracy", "macro_f1", "log_loss", "roc_auc_ovr"),
}


def _save(figure: Any, target: str) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with artifacts.atomic_path(target, suffix=".png") as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)


def _thinned(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most PLOTTED_POINTS points of a curve, evenly spaced along it, both ends kept."""
    if len(xs) <= PLOTTED_POINTS:
        return xs, ys
    index = np.unique(np.linspace(0, len(xs) - 1, PLOTTED_POINTS).round().astype(np.int64))
    return xs[index], ys[index]


def _plots_binary(labels: np.ndarray, scores: np.ndarray, quality_png: str, error_png: str, title: str) -> None:
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr = _thinned(*roc_curve(labels, scores)[:2])
    precision, recall = _thinned(*precision_recall_curve(labels, scores)[:2])
    for target, xs, ys, xlabel, ylabel, name, baseline in (
        (quality_png, fpr, tpr, "false positive rate", "true positive rate", "ROC", ([0, 1], [0, 1])),
        (error_png, recall, precision, "recall", "precision", "Precision-recall", ([0, 1], [labels.mean()] * 2)),
    ):
        figure, axis = plt.subplots(figsize=(5, 4), dpi=100)
        axis.plot(xs, ys, linewidth=1.5)
        axis.plot(*baseline, linestyle="--", color="grey", linewidth=0.8)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.set_title(f"{name}: {title}")
        _save(figure, target)


def _plots_multiclass(
    labels: np.ndarray, probabilities: np.ndarray, quality_png: str, error_png: str, title: str
) -> None:
    """The confusion matrix (rows: actual class, columns: predicted) and each class's predicted
    probability histogram."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    k = probabilities.shape[1]
    matrix = confusion_matrix(labels, probabilities.argmax(axis=1), labels=list(range(k)))
    figure, axis = plt.subplots(figsize=(5, 4), dpi=100)
    axis.imshow(matrix, cmap="Blues")
    axis.set_xlabel("predicted class")
    axis.set_ylabel("actual class")
    axis.set_title(f"Confusion matrix: {title}")
    _save(figure, quality_png)
    figure, axis = plt.subplots(figsize=(5, 4), dpi=100)
    for c in range(k):
        axis.hist(probabilities[labels == c, c], bins=30, alpha=0.5, label=f"class {c}")
    axis.set_xlabel("probability of the actual class")
    axis.set_ylabel("rows")
    axis.legend()
    axis.set_title(f"Actual-class probability: {title}")
    _save(figure, error_png)


def _plots_regression(actual: np.ndarray, predicted: np.ndarray, quality_png: str, error_png: str, title: str) -> None:
    import matplotlib.pyplot as plt

    shown = np.arange(len(actual))
    if len(actual) > PLOTTED_POINTS:  # a seeded uniform sample: the same rows give the same picture
        shown = np.sort(np.random.default_rng(0).choice(len(actual), PLOTTED_POINTS, replace=False))
    figure, axis = plt.subplots(figsize=(5, 4), dpi=100)
    axis.scatter(actual[shown], predicted[shown], s=4, alpha=0.4)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    axis.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8)
    axis.set_xlabel("actual")
    axis.set_ylabel("predicted")
    sampled = f" ({len(shown):,} sampled)" if len(shown) < len(actual) else ""
    axis.set_title(f"Predicted vs actual{sampled}: {title}")
    _save(figure, quality_png)
    figure, axis = plt.subplots(figsize=(5, 4), dpi=100)
    axis.hist(predicted - actual, bins=50)
    axis.set_xlabel("residual (predicted - actual)")
    axis.set_ylabel("rows")
    axis.set_title(f"Residuals: {title}")
    _save(figure, error_png)


def _binary_metrics(labels: np.ndarray, scores: np.ndarray, decision_threshold: float) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, confusion_matrix, log_loss, roc_auc_score

    labels = labels.astype(np.int64)
    if len(np.unique(labels)) < 2:
        raise ComponentError(
            STEP,
            "the holdout set holds a single label class, so AUC is undefined",
            "widen the holdout window (materialize.holdout_fraction) or use more data",
        )
    predicted = (scores >= decision_threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, predicted, labels=[0, 1]).ravel())
    return {
        "roc_auc": round(float(roc_auc_score(labels, scores)), 6),
        "pr_auc": round(float(average_precision_score(labels, scores)), 6),
        "log_loss": round(float(log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7))), 6),
        "decision_threshold": decision_threshold,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "precision": round(tp / (tp + fp), 6) if tp + fp else 0.0,
        "recall": round(tp / (tp + fn), 6) if tp + fn else 0.0,
        "holdout_positive_rate": round(float(labels.mean()), 6),
    }


def _multiclass_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro F1, log loss and one-vs-rest macro ROC AUC of (n, k) class probabilities."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    labels = labels.astype(np.int64)
    classes = list(range(probabilities.shape[1]))
    predicted = probabilities.argmax(axis=1)
    present = np.unique(labels)
    if len(present) < 2:
        raise ComponentError(
            STEP,
            "the holdout set holds a single label class, so AUC is undefined",
            "widen the holdout window (materialize.holdout_fraction) or use more data",
        )
    clipped = np.clip(probabilities, 1e-7, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    # one-vs-rest over the classes the holdout holds (a class absent there has no AUC)
    auc = float(np.mean([roc_auc_score(labels == c, probabilities[:, c]) for c in present]))
    return {
        "accuracy": round(float(accuracy_score(labels, predicted)), 6),
        "macro_f1": round(float(f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)), 6),
        "log_loss": round(float(log_loss(labels, clipped, labels=classes)), 6),
        "roc_auc_ovr": round(auc, 6),
        "num_classes": len(classes),
        "class_counts": [int(np.sum(labels == c)) for c in classes],
    }


def _regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    nonzero = np.abs(actual) >= 1.0  # MAPE over rows with a meaningful denominator
    mape = (
        float(np.mean(np.abs((predicted[nonzero] - actual[nonzero]) / actual[nonzero]))) if nonzero.any() else math.inf
    )
    return {
        "rmse": round(float(math.sqrt(mean_squared_error(actual, predicted))), 6),
        "mae": round(float(mean_absolute_error(actual, predicted)), 6),
        "mape": round(mape, 6),
        "r2": round(float(r2_score(actual, predicted)), 6),
        "label_mean": round(float(actual.mean()), 6),
    }


def _scored_sha256(model_path: Path, recorded: str | None, expected: str) -> str:
    """The sha256 of the model file about to be scored, after checking it against what train
    recorded in the metadata and what the caller expects (train's `model_sha256` output)."""
    found = artifacts.sha256_file(model_path)
    for claim, source in ((recorded, "the metadata records"), (expected, "train reported (model_sha256)")):
        if claim and claim != found:
            raise ComponentError(
                STEP,
                f"the model file has sha256 {found}, but {source} {claim}",
                "pass the model and metadata of one train run; rerun train if the file was replaced",
            )
    return found


def scored_holdout(
    holdout_set: str, features: list[str], label: str, predict: Callable[[np.ndarray], np.ndarray]
) -> tuple[str, np.ndarray, np.ndarray]:
    """(the holdout's digest, its labels as float64, the model's predictions), read and scored
    BATCH_ROWS rows at a time; each batch converted as a whole frame would be (pandas, the features
    as float32). The digest is raw_data's: a file's sha256, or a folder's sorted (path, sha256) list."""
    from components.raw_data import raw_dataset

    with raw_dataset(STEP, holdout_set, "holdout set") as opened:
        if opened is None:  # a .csv holdout: read whole, as before
            frame = read_parquet(STEP, holdout_set, "holdout set")
            require_columns(STEP, frame, [*features, label], "holdout set")
            actual = frame[label].to_numpy(dtype=np.float64)
            return artifacts.sha256_uri(holdout_set), actual, predict(frame[features].to_numpy(dtype=np.float32))
        digest, dataset, _ = opened
        require_columns(STEP, dataset.schema.empty_table().to_pandas(), [*features, label], "holdout set")
        rows = dataset.count_rows()
        actual = np.empty(rows, dtype=np.float64)
        scores: np.ndarray | None = None
        start = 0
        for batch in bounded_batches(dataset, columns=[*features, label], batch_size=BATCH_ROWS):
            if not batch.num_rows:
                continue
            frame = batch.to_pandas()
            end = start + len(frame)
            actual[start:end] = frame[label].to_numpy(dtype=np.float64)
            predicted = predict(frame[features].to_numpy(dtype=np.float32))
            if scores is None:  # (rows,) or (rows, classes): the first batch says which
                scores = np.empty((rows, *predicted.shape[1:]), dtype=predicted.dtype)
            scores[start:end] = predicted
            start = end
    if scores is None or start != rows:
        raise ComponentError(
            STEP, f"holdout set at {holdout_set} has no rows", "the upstream extract selected nothing: check its window"
        )
    return digest, actual, scores


def evaluate(
    model: str,
    model_metadata: str,
    holdout_set: str,
    metrics_out: str,
    quality_plot_png: str,
    error_plot_png: str,
    *,
    settings: EvaluateSettings,
    model_sha256: str = "",
) -> dict[str, Any]:
    """Compute holdout metrics and the gate (`settings.gate_metric` vs `settings.threshold`); write
    metrics JSON and two PNGs. The settings model has already refused thresholds out of range.

    The metrics record the sha256 of the model bytes scored; bytes that are not the ones the
    metadata records, or not `model_sha256` (train's output, which this step's cache key holds on
    a cluster), are refused, so the result cached under a key always describes the model it names."""
    gate_metric, threshold, decision_threshold = settings.gate_metric, settings.threshold, settings.decision_threshold
    if not artifacts.exists(model):
        raise ComponentError(STEP, f"model artifact not found at {model}", "run train first, or fix the path")
    metadata = read_training_metadata(model_metadata)
    objective = metadata.get("objective", "binary")
    if gate_metric not in METRICS_BY_OBJECTIVE[objective]:
        raise ComponentError(
            STEP,
            f"gate metric {gate_metric!r} does not apply to a {objective} model",
            f"use one of {sorted(METRICS_BY_OBJECTIVE[objective])}",
        )
    features: list[str] = metadata["features"]
    label: str = metadata["label"]
    with artifacts.fetched(model) as model_path:
        scored = _scored_sha256(model_path, metadata.get("model_sha256"), model_sha256)
        predict = load_predictor(model_path, metadata)
        holdout_sha256, actual, scores = scored_holdout(holdout_set, features, label, predict)
    if not np.all(np.isfinite(scores)):
        raise ComponentError(
            STEP,
            "the model produced non-finite predictions on the holdout set",
            "check the training run for divergence (NaN loss) and retrain",
        )
    title = f"{metadata['model_type']} on {len(actual)} holdout rows"
    if objective == "binary":
        metrics = _binary_metrics(actual, scores, decision_threshold)
        _plots_binary(actual.astype(np.int64), scores, quality_plot_png, error_plot_png, title)
    elif objective == "multiclass":
        metrics = _multiclass_metrics(actual, scores)
        _plots_multiclass(actual.astype(np.int64), scores, quality_plot_png, error_plot_png, title)
    else:
        metrics = _regression_metrics(actual, scores)
        _plots_regression(actual, scores, quality_plot_png, error_plot_png, title)
    value = float(metrics[gate_metric])
    higher = gate_metric in HIGHER_IS_BETTER
    passed = bool(not math.isnan(value) and (value >= threshold if higher else value <= threshold))
    gate: Gate = {
        "metric": gate_metric,
        "value": value,
        "threshold": threshold,
        "direction": ">=" if higher else "<=",
        "passed": passed,
    }
    document: HoldoutMetrics = {
        "objective": objective,
        "holdout_rows": len(actual),
        "gate": gate,
        "passed": passed,
        "model_sha256": scored,  # of the bytes scored: register refuses any other model
        "holdout_data_sha256": holdout_sha256,
    }
    document.update(cast(HoldoutMetrics, metrics))  # the objective's metrics, computed above
    artifacts.write_json(metrics_out, document)
    return {
        "step": STEP,
        **{k: metrics[k] for k in SUMMARY_KEYS[objective]},
        "gate_metric": gate_metric,
        "threshold": threshold,
        "passed": passed,
    }
