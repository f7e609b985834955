"""issue 31: the multiclass objective reached train and evaluate, but the parts that report on a
gate metric kept their own two-objective tables: a sweep minimized accuracy and macro F1 (tune's
GREATER_IS_BETTER), `mlops run` printed `<=` for them and hid them from its summary, the model card
left them out and called the class mix a "mean target", and `--model-type` offered two kinds."""

from __future__ import annotations

from typing import Any, cast

import pytest

from components.handoffs import HoldoutMetrics, TrainingMetadata
from components.model_kinds import installed_kinds
from components.steps.model_card import render_model_card
from components.train_settings import HIGHER_IS_BETTER, LOWER_IS_BETTER, METRICS_BY_OBJECTIVE
from mlops.cli import main
from pipelines.tune import direction


@pytest.mark.parametrize("objective", sorted(METRICS_BY_OBJECTIVE))
def test_a_sweep_maximizes_exactly_the_metrics_where_higher_is_better(objective: str) -> None:
    for metric in METRICS_BY_OBJECTIVE[objective]:
        assert metric in HIGHER_IS_BETTER | LOWER_IS_BETTER, metric
        assert direction(metric) == ("maximize" if metric in HIGHER_IS_BETTER else "minimize"), metric


def test_the_model_card_of_a_multiclass_model_lists_its_metrics_and_class_count() -> None:
    metadata = cast(TrainingMetadata, {
        "model_type": "lightgbm", "format": "lightgbm_text", "model_sha256": "0" * 64, "device": "cpu", "seed": 1,
        "objective": "multiclass", "training_rows": 300, "training_data_sha256": "1" * 64, "features": ["a", "b"],
        "params": {"num_classes": 3}, "label_mean": 1.0,
    })  # fmt: skip
    metrics = cast(HoldoutMetrics, {
        "accuracy": 0.81, "macro_f1": 0.79, "roc_auc_ovr": 0.93, "log_loss": 0.52, "holdout_rows": 75,
        "holdout_data_sha256": "2" * 64,
        "gate": {"metric": "macro_f1", "direction": ">=", "threshold": 0.7, "value": 0.79, "passed": True},
    })  # fmt: skip
    card = render_model_card(model_name="churn", version="1", card={}, metadata=metadata, metrics=metrics,
                             run_id="r", pipeline="churn", git_commit=None)  # fmt: skip
    for row in ("| accuracy | 0.8100 |", "| macro_f1 | 0.7900 |", "| roc_auc_ovr | 0.9300 |"):
        assert row in card
    assert "300 (3 classes)" in card and "mean target" not in card


def test_run_offers_every_installed_model_kind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    kinds: dict[str, Any] = installed_kinds()
    assert {"xgboost", "pytorch_mlp", "lightgbm", "sklearn"} <= set(kinds)
    assert all(kind in shown for kind in kinds)
