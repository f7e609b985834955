"""What the scoring transformer answers per row, for every objective (issue 31 item 2).

The predictor's scores come through `TensorContract.scores`: one value per row for a binary model
(P(positive class)) or a regressor (the value), and a row of k class probabilities for a multiclass
model. The transformer answers the score as the model gives it and decides nothing for binary and
regression models: `evaluate.decision_threshold` is the holdout's confusion-matrix threshold, and
the caller applies its own cut-off to P(positive). A multiclass model's decision has no threshold:
it is the most probable class (the argmax, ties to the lower class index), answered beside the k
probabilities as `predicted_class`.

    V1  {"predictions": [p, ...]}                          binary, regression
        {"predictions": [[p0, ..., pk-1], ...], "predicted_class": [c, ...]}   multiclass
    V2  score FP32 [n] (binary, regression) or [n, k] (multiclass); predicted_class INT64 [n]

This module is numpy only, so it is tested without the transformer's environment (kserve).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PREDICTED_CLASS", "is_multiclass", "v1_answer", "v2_columns"]

PREDICTED_CLASS = "predicted_class"


def is_multiclass(score: np.ndarray) -> bool:
    """A multiclass model's scores are (n, k): k class probabilities per row."""
    return score.ndim == 2


def _predicted_class(score: np.ndarray) -> np.ndarray:
    chosen: np.ndarray = np.argmax(score, axis=1).astype(np.int64)
    return chosen


def v1_answer(score: np.ndarray, unknown: list[bool], version: str) -> dict[str, Any]:
    """The V1 body: the score per row (a list of k probabilities for multiclass, with the argmax
    class), whether each row's entity was unknown, and the model version that scored it."""
    answer: dict[str, Any] = {"predictions": score.tolist(), "unknown_entity": unknown, "model_version": version}
    if is_multiclass(score):
        answer[PREDICTED_CLASS] = _predicted_class(score).tolist()
    return answer


def v2_columns(score: np.ndarray, unknown: list[bool]) -> list[tuple[str, np.ndarray]]:
    """The V2 outputs, each with its own shape: `score` [n] or [n, k], `predicted_class` [n] for a
    multiclass model, `unknown_entity` [n]."""
    columns: list[tuple[str, np.ndarray]] = [("score", np.asarray(score, dtype=np.float32))]
    if is_multiclass(score):
        columns.append((PREDICTED_CLASS, _predicted_class(score)))
    columns.append(("unknown_entity", np.asarray(unknown, dtype=np.bool_)))
    return columns
