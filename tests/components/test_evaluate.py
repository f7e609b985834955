from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.config import EvaluateSettings, parse_settings
from components.errors import ComponentError
from components.evaluate import evaluate


def test_metrics_gate_and_curves(evaluated: dict[str, Path], materialized: dict[str, Any]) -> None:
    metrics = json.loads(evaluated["metrics"].read_text())
    assert 0.7 < metrics["roc_auc"] <= 1.0 and metrics["passed"] is True
    matrix = metrics["confusion_matrix"]
    assert sum(matrix.values()) == metrics["holdout_rows"] == materialized["summary"]["holdout_rows"]
    for png in (evaluated["roc"], evaluated["pr"]):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gate_fails_above_the_models_auc(
    trained: dict[str, Path], materialized: dict[str, Any], tmp_path: Path
) -> None:
    summary = evaluate(
        str(trained["model"]),
        str(trained["metadata"]),
        str(materialized["holdout"]),
        str(tmp_path / "m.json"),
        str(tmp_path / "r.png"),
        str(tmp_path / "p.png"),
        settings=EvaluateSettings(threshold=0.999),
    )
    assert summary["passed"] is False and summary["roc_auc"] < 0.999


def test_bad_threshold_is_refused_before_any_output(
    trained: dict[str, Path], materialized: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(ComponentError, match=r"threshold for roc_auc must lie in \[0, 1\], got 1.5"):
        evaluate(
            str(trained["model"]),
            str(trained["metadata"]),
            str(materialized["holdout"]),
            str(tmp_path / "m.json"),
            str(tmp_path / "r.png"),
            str(tmp_path / "p.png"),
            settings=parse_settings(EvaluateSettings, {"threshold": 1.5}, "evaluate"),
        )
    assert list(tmp_path.iterdir()) == []
