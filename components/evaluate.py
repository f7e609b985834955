"""evaluate: score the model on the time-ordered holdout and decide whether it may ship.

The gate is deliberately simple and explicit, `passed = roc_auc >= min_auc`, and is emitted
as an output the DAG branches on; every number behind it is written to the metrics JSON and
the curves to PNGs a reviewer can open.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from components import artifacts
from components.errors import ComponentError
from components.models import load_predictor
from components.tabular import read_parquet, require_columns

STEP = "evaluate"


def _plot_curves(labels: np.ndarray, scores: np.ndarray, roc_png: str, pr_png: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    for target, xs, ys, xlabel, ylabel, name, baseline in (
        (roc_png, fpr, tpr, "false positive rate", "true positive rate", "ROC", ([0, 1], [0, 1])),
        (
            pr_png,
            recall,
            precision,
            "recall",
            "precision",
            "Precision-recall",
            ([0, 1], [labels.mean(), labels.mean()]),
        ),
    ):
        figure, axis = plt.subplots(figsize=(5, 4), dpi=100)
        axis.plot(xs, ys, linewidth=1.5)
        axis.plot(*baseline, linestyle="--", color="grey", linewidth=0.8)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.set_title(f"{name}: {title}")
        figure.tight_layout()
        with artifacts.atomic_path(target, suffix=".png") as tmp:
            figure.savefig(tmp, format="png")
        plt.close(figure)


def evaluate(
    model: str,
    model_metadata: str,
    holdout_set: str,
    metrics_out: str,
    roc_png: str,
    pr_png: str,
    *,
    min_auc: float,
    decision_threshold: float = 0.5,
) -> dict[str, Any]:
    """Compute holdout metrics and the gate; write metrics JSON and the two curve PNGs."""
    from sklearn.metrics import average_precision_score, confusion_matrix, log_loss, roc_auc_score

    if not 0.0 <= min_auc <= 1.0:
        raise ComponentError(STEP, f"min_auc must lie in [0, 1], got {min_auc}", "set evaluate.min_auc in the config")
    if not 0.0 < decision_threshold < 1.0:
        raise ComponentError(
            STEP,
            f"decision_threshold must lie in (0, 1), got {decision_threshold}",
            "set evaluate.decision_threshold in the config",
        )
    if not artifacts.exists(model):
        raise ComponentError(STEP, f"model artifact not found at {model}", "run train first, or fix the path")
    metadata = artifacts.read_json(model_metadata)
    features: list[str] = metadata["features"]
    label: str = metadata["label"]
    frame = read_parquet(STEP, holdout_set, "holdout set")
    require_columns(STEP, frame, [*features, label], "holdout set")
    labels = frame[label].to_numpy(dtype=np.int64)
    if len(np.unique(labels)) < 2:
        raise ComponentError(
            STEP,
            "the holdout set holds a single label class, so AUC is undefined",
            "widen the holdout window (materialize.holdout_fraction) or use more data",
        )
    with artifacts.fetched(model) as model_path:
        predict = load_predictor(model_path, metadata)
        scores = predict(frame[features].to_numpy(dtype=np.float32))
    if not np.all(np.isfinite(scores)):
        raise ComponentError(
            STEP,
            "the model produced non-finite scores on the holdout set",
            "check the training run for divergence (NaN loss) and retrain",
        )
    predicted = (scores >= decision_threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, predicted, labels=[0, 1]).ravel())
    roc_auc = float(roc_auc_score(labels, scores))
    metrics = {
        "roc_auc": round(roc_auc, 6),
        "pr_auc": round(float(average_precision_score(labels, scores)), 6),
        "log_loss": round(float(log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7))), 6),
        "decision_threshold": decision_threshold,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "precision": round(tp / (tp + fp), 6) if tp + fp else 0.0,
        "recall": round(tp / (tp + fn), 6) if tp + fn else 0.0,
        "holdout_rows": len(labels),
        "holdout_positive_rate": round(float(labels.mean()), 6),
        "min_auc": min_auc,
        "passed": bool(roc_auc >= min_auc and not math.isnan(roc_auc)),
        "model_sha256": metadata.get("model_sha256"),
        "holdout_data_sha256": artifacts.sha256_uri(holdout_set),
    }
    _plot_curves(labels, scores, roc_png, pr_png, f"{metadata['model_type']} on {len(labels)} holdout rows")
    artifacts.write_json(metrics_out, metrics)
    return {"step": STEP, **{k: metrics[k] for k in ("roc_auc", "pr_auc", "log_loss", "min_auc", "passed")}}
