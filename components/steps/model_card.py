"""The model card: what a reviewer reads before signing off a promotion."""

from __future__ import annotations

from typing import Any, cast

from components.handoffs import HoldoutMetrics, TrainingMetadata

__all__ = ["METRIC_ORDER", "render_model_card"]

METRIC_ORDER = (
    "roc_auc", "pr_auc", "accuracy", "macro_f1", "roc_auc_ovr", "log_loss", "precision", "recall",
    "rmse", "mae", "mape", "r2",
)  # fmt: skip


def _label_summary(metadata: TrainingMetadata) -> str:
    if metadata.get("objective", "binary") == "binary":
        return f"positive rate {metadata['positive_rate']:.4f}"
    if metadata.get("objective") == "multiclass":
        return f"{metadata['params'].get('num_classes', '?')} classes"
    return f"mean target {metadata['label_mean']:.4f}"


def render_model_card(
    *,
    model_name: str,
    version: str,
    card: dict[str, Any],
    metadata: TrainingMetadata,
    metrics: HoldoutMetrics,
    run_id: str,
    pipeline: str,
    git_commit: str | None,
) -> str:
    """Markdown: purpose, data window and hash, features, metrics, threshold, known limits."""
    window = metadata.get("data_window") or ["unknown", "unknown"]
    by_name = cast(dict[str, Any], metrics)
    matrix = metrics.get("confusion_matrix", {})
    gate = metrics["gate"]
    limits = card.get("known_limits") or ["None recorded: the owner must list them before production."]
    lines = [
        f"# Model card: {model_name} v{version}",
        "",
        "## Purpose",
        card.get("purpose", "Not stated: the owner must describe the decision this model supports."),
        "",
        f"- Owner: {card.get('owner', 'unassigned')}",
        f"- Pipeline: {pipeline}; MLflow run `{run_id}`; git commit `{git_commit or 'unknown'}`",
        f"- Model: {metadata['model_type']} ({metadata['format']}), artifact sha256 `{metadata['model_sha256']}`",
        f"- Trained on {metadata['device']}, seed {metadata['seed']}",
        "",
        "## Data",
        f"- Training window: {window[0]} to {window[1]}",
        f"- Training rows: {metadata['training_rows']} ({_label_summary(metadata)})",
        f"- Training data sha256: `{metadata['training_data_sha256']}`",
        f"- Holdout: {metrics.get('holdout_rows')} most recent rows, sha256 `{metrics.get('holdout_data_sha256')}`",
        "",
        "## Features (in model input order)",
        *[f"{index}. `{name}`" for index, name in enumerate(metadata["features"])],
        "",
        "## Holdout metrics",
        "| metric | value |",
        "|---|---|",
        *[f"| {name} | {by_name[name]:.4f} |" for name in METRIC_ORDER if name in by_name],
        "",
        *(
            [
                f"Confusion matrix at threshold {metrics['decision_threshold']}: "
                f"TN {matrix.get('tn')}, FP {matrix.get('fp')}, FN {matrix.get('fn')}, TP {matrix.get('tp')}.",
                "",
            ]
            if matrix
            else []
        ),
        "## Release gate",
        f"Promotion requires holdout {gate['metric']} {gate['direction']} {gate['threshold']}: this version scored "
        f"{gate['value']:.4f} ({'passed' if gate['passed'] else 'failed'}).",
        "",
        "## Known limits",
        *[f"- {limit}" for limit in limits],
        "",
    ]
    return "\n".join(lines)
