"""The realized metrics of one group of labelled decisions (a version in a serving role), with scikit-learn.

Issue 32 item 3; split from components/platform/outcomes.py, which groups the joined outcomes and calls
`metrics_of`. Per objective: binary roc_auc, pr_auc (average precision), brier and positive_rate (the
labels' share of 1s) on the logged score P(positive); regression mae, rmse and mape on the logged value,
MAPE over labels with |y| >= 1 as evaluate computes it (components/steps/evaluate.py), so a realized
figure compares with the gate's holdout one; multiclass accuracy of the logged decision (argmax class).
A metric that cannot be computed is None and `reasons` says why: too few rows, one class only, a score
that is not a probability, no label large enough for a percentage error.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METRICS", "MIN_ROWS", "metrics_of"]

MIN_ROWS = 2
"""Fewer labelled, scored decisions than this: no metric is computed for the group."""
METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "brier", "positive_rate"),
    "regression": ("mae", "rmse", "mape"),
    "multiclass": ("accuracy",),
}
"""The realized metrics per objective, each pushed as `mlops_model_realized_<metric>`."""


def _binary(labels: Any, scores: Any) -> tuple[dict[str, float | None], dict[str, str]]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    values: dict[str, float | None] = {"positive_rate": float(labels.mean())}
    reasons: dict[str, str] = {}
    if len(set(labels.tolist())) < 2:
        why = f"the labels hold one class only (all {int(labels[0])}): undefined"
        values |= {"roc_auc": None, "pr_auc": None}
        reasons |= {"roc_auc": why, "pr_auc": why}
    else:
        values |= {
            "roc_auc": float(roc_auc_score(labels, scores)),
            "pr_auc": float(average_precision_score(labels, scores)),
        }
    if ((scores < 0) | (scores > 1)).any():
        values["brier"], reasons["brier"] = None, "a logged score lies outside [0, 1]: not a probability"
    else:
        values["brier"] = float(brier_score_loss(labels, scores))
    return values, reasons


def _regression(labels: Any, scores: Any) -> tuple[dict[str, float | None], dict[str, str]]:
    from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

    values: dict[str, float | None] = {
        "mae": float(mean_absolute_error(labels, scores)),
        "rmse": math.sqrt(float(mean_squared_error(labels, scores))),
    }
    reasons: dict[str, str] = {}
    meaningful = abs(labels) >= 1.0  # as evaluate's MAPE: rows with a meaningful denominator
    if meaningful.any():
        values["mape"] = float(mean_absolute_percentage_error(labels[meaningful], scores[meaningful]))
    else:
        values["mape"], reasons["mape"] = None, "no label with |value| >= 1: a percentage error is undefined"
    return values, reasons


def metrics_of(group: pd.DataFrame, objective: str) -> dict[str, Any]:
    """{"metrics": name -> value or None, "reasons": name -> why it is None} for `group`'s rows (columns
    label, score, decision), by `objective`."""
    import numpy as np

    names = METRICS.get(objective, ())
    scored = group[group["score"].notna()] if objective != "multiclass" else group[group["decision"].notna()]
    labels = scored["label"].to_numpy(dtype="float64")
    if len(scored) < MIN_ROWS:
        why = f"{len(scored)} labelled decisions with a score, fewer than {MIN_ROWS}"
        return {"metrics": dict.fromkeys(names), "reasons": dict.fromkeys(names, why)}
    if objective == "binary":
        values, reasons = _binary(labels, scored["score"].to_numpy(dtype="float64"))
    elif objective == "regression":
        values, reasons = _regression(labels, scored["score"].to_numpy(dtype="float64"))
    else:
        values, reasons = {"accuracy": float(np.mean(scored["decision"].to_numpy(dtype="float64") == labels))}, {}
    return {"metrics": values, "reasons": reasons}
