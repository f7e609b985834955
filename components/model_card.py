"""The model card: what a reviewer reads before signing off a promotion."""

from __future__ import annotations

from typing import Any


def render_model_card(
    *,
    model_name: str,
    version: str,
    card: dict[str, Any],
    metadata: dict[str, Any],
    metrics: dict[str, Any],
    run_id: str,
    pipeline: str,
    git_commit: str | None,
) -> str:
    """Markdown: purpose, data window and hash, features, metrics, threshold, known limits."""
    window = metadata.get("data_window") or ["unknown", "unknown"]
    matrix = metrics.get("confusion_matrix", {})
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
        f"- Training rows: {metadata['training_rows']} (positive rate {metadata['positive_rate']:.4f})",
        f"- Training data sha256: `{metadata['training_data_sha256']}`",
        f"- Holdout: {metrics.get('holdout_rows')} most recent rows, sha256 `{metrics.get('holdout_data_sha256')}`",
        "",
        "## Features (in model input order)",
        *[f"{index}. `{name}`" for index, name in enumerate(metadata["features"])],
        "",
        "## Holdout metrics",
        "| metric | value |",
        "|---|---|",
        f"| ROC AUC | {metrics['roc_auc']:.4f} |",
        f"| PR AUC | {metrics['pr_auc']:.4f} |",
        f"| log loss | {metrics['log_loss']:.4f} |",
        f"| precision @ {metrics['decision_threshold']} | {metrics['precision']:.4f} |",
        f"| recall @ {metrics['decision_threshold']} | {metrics['recall']:.4f} |",
        "",
        f"Confusion matrix at threshold {metrics['decision_threshold']}: "
        f"TN {matrix.get('tn')}, FP {matrix.get('fp')}, FN {matrix.get('fn')}, TP {matrix.get('tp')}.",
        "",
        "## Release gate",
        f"Promotion requires holdout ROC AUC >= {metrics['min_auc']}: this version scored {metrics['roc_auc']:.4f} "
        f"({'passed' if metrics['passed'] else 'failed'}).",
        "",
        "## Known limits",
        *[f"- {limit}" for limit in limits],
        "",
    ]
    return "\n".join(lines)
