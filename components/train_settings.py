"""Train's and evaluate's settings: which model kind fits which objective, and the metric that gates it.

Split from components/config.py (which imports them back, so `from components.config import
TrainSettings` still works). `train.model_type` names any installed model kind
(components/model_kinds.py: the built-ins and the entry-point group `private_mlops.models`),
checked when the config loads, so an unknown kind or an objective it cannot fit stops the run
before any step starts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components.errors import ComponentError
from components.model_kinds import OBJECTIVES, model_kind, require_objective

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "METRICS_BY_OBJECTIVE",
    "RUNTIME_OF_MODEL",
    "DistributedSettings",
    "EvaluateSettings",
    "TrainSettings",
    "check_gate_metric",
]

RUNTIME_OF_MODEL = {"xgboost": "xgboost-distributed", "pytorch_mlp": "torch-distributed"}
"""The Kubeflow Trainer ClusterTrainingRuntime each model type trains on when distributed; the
other kinds train in one process."""

METRICS_BY_OBJECTIVE: dict[str, frozenset[str]] = {
    "binary": frozenset({"roc_auc", "pr_auc", "log_loss"}),
    "regression": frozenset({"rmse", "mae", "mape", "r2"}),
    "multiclass": frozenset({"accuracy", "macro_f1", "log_loss", "roc_auc_ovr"}),
}
"""The holdout metrics evaluate computes per objective: what `evaluate.gate_metric` may name."""
HIGHER_IS_BETTER = frozenset({"roc_auc", "pr_auc", "r2", "accuracy", "macro_f1", "roc_auc_ovr"})
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape"})
_UNIT_INTERVAL = frozenset({"roc_auc", "pr_auc", "accuracy", "macro_f1", "roc_auc_ovr"})


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DistributedSettings(_Settings):
    """Training across N processes (N pods on the cluster), on an existing engine's runtime."""

    workers: int = Field(ge=2, le=64, description="Processes (on the cluster: nodes of the TrainJob), each on a shard.")
    runtime: Literal["torch-distributed", "xgboost-distributed"] = Field(
        description="The Kubeflow Trainer runtime: torch-distributed (DDP) for pytorch_mlp, xgboost-distributed "
        "(the collective) for xgboost."
    )


class TrainSettings(_Settings):
    model_type: str = Field(
        "xgboost",
        description="An installed model kind: xgboost, pytorch_mlp, lightgbm, sklearn, or one a package registers "
        "in the entry-point group private_mlops.models.",
    )
    objective: Literal["binary", "regression", "multiclass"] = "binary"
    num_classes: int | None = Field(
        None, ge=2, description="multiclass: the number of classes k (labels 0..k-1); unset: from the labels."
    )
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    params: dict[str, Any] = Field(default_factory=dict)
    distributed: DistributedSettings | None = Field(
        None, description="Unset: one process. Set: N workers, each on its shard of the training set."
    )
    batch_rows: int = Field(
        1_000_000,
        ge=1,
        description="xgboost reads the Parquet training set (a worker: its shard) this many rows at a time, so "
        "memory holds one batch, not the set (components/steps/train_batches.py); the other kinds read it whole.",
    )

    @field_validator("model_type")
    @classmethod
    def _installed(cls, value: str) -> str:
        try:
            model_kind(value)
        except ComponentError as error:
            raise ValueError(f"{error.problem}; {error.fix}") from None
        return value

    @model_validator(mode="after")
    def _kind_fits(self) -> TrainSettings:
        try:
            require_objective(model_kind(self.model_type), self.objective)
        except ComponentError as error:
            raise ValueError(f"{error.problem}; {error.fix}") from None
        if self.num_classes is not None and self.objective != "multiclass":
            raise ValueError(f"num_classes applies to the multiclass objective, not {self.objective}")
        if self.distributed is not None:
            wanted = RUNTIME_OF_MODEL.get(self.model_type)
            if wanted is None:
                raise ValueError(
                    f"model_type {self.model_type} has no distributed runtime (those that do: "
                    f"{', '.join(sorted(RUNTIME_OF_MODEL))}); remove train.distributed to train it in one process"
                )
            if self.distributed.runtime != wanted:
                raise ValueError(
                    f"distributed.runtime {self.distributed.runtime} cannot train {self.model_type}: use {wanted}"
                )
        return self


class EvaluateSettings(_Settings):
    gate_metric: Literal[
        "roc_auc", "pr_auc", "rmse", "mae", "mape", "r2", "log_loss", "accuracy", "macro_f1", "roc_auc_ovr"
    ] = Field(
        "roc_auc",
        description="The holdout metric the gate compares; AUCs, accuracy, macro F1 and r2 must reach the "
        "threshold, errors and log loss stay under it.",
    )
    threshold: float = Field(0.85, description="The gate's threshold for gate_metric.")
    decision_threshold: float = Field(0.5, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _threshold_in_range(self) -> EvaluateSettings:
        if self.gate_metric in _UNIT_INTERVAL and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold for {self.gate_metric} must lie in [0, 1], got {self.threshold}")
        if self.gate_metric in LOWER_IS_BETTER and self.threshold <= 0:
            raise ValueError(f"threshold for {self.gate_metric} must be positive, got {self.threshold}")
        return self


def check_gate_metric(train: TrainSettings, evaluate: EvaluateSettings) -> None:
    """Refuse a gate metric the objective's evaluation does not compute (a ValueError: config loading
    reports it under the field's path)."""
    metrics = METRICS_BY_OBJECTIVE[train.objective]
    if evaluate.gate_metric not in metrics:
        raise ValueError(
            f"evaluate.gate_metric {evaluate.gate_metric} does not apply to the {train.objective} objective: "
            f"use one of {sorted(metrics)}"
        )


assert set(METRICS_BY_OBJECTIVE) == set(OBJECTIVES)
