from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.config import EvaluateSettings, parse_settings
from components.errors import ComponentError
from tests.conftest import evaluate_into


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
    summary = evaluate_into(
        tmp_path, trained["model"], trained["metadata"], materialized["holdout"], EvaluateSettings(threshold=0.999)
    )
    assert summary["passed"] is False and summary["roc_auc"] < 0.999


def test_bad_threshold_is_refused_before_any_output(
    trained: dict[str, Path], materialized: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(ComponentError, match=r"threshold for roc_auc must lie in \[0, 1\], got 1.5"):
        evaluate_into(
            tmp_path,
            trained["model"],
            trained["metadata"],
            materialized["holdout"],
            parse_settings(EvaluateSettings, {"threshold": 1.5}, "evaluate"),
        )
    assert list(tmp_path.iterdir()) == []


def test_metrics_name_the_bytes_scored_and_other_bytes_are_refused(
    trained: dict[str, Path], evaluated: dict[str, Path], materialized: dict[str, Any], tmp_path: Path
) -> None:
    """issue 29: evaluate's `model_sha256` was copied from the metadata, not taken from the bytes
    it scored, and nothing tied a cached evaluate result to the model train handed it."""
    import hashlib

    recorded = json.loads(trained["metadata"].read_text())["model_sha256"]
    # positive control: the metrics name the sha256 of the scored file, which is train's
    scored = json.loads(evaluated["metrics"].read_text())["model_sha256"]
    assert scored == hashlib.sha256(trained["model"].read_bytes()).hexdigest() == recorded

    def run(model: Path, expected: str = "") -> dict[str, Any]:
        return evaluate_into(
            tmp_path,
            model,
            trained["metadata"],
            materialized["holdout"],
            EvaluateSettings(threshold=0.7),
            model_sha256=expected,
        )

    assert run(trained["model"], expected=recorded)["passed"] is True
    # forbidden: a file that is not the model the metadata (or train's output) names
    swapped = tmp_path / "model.json"
    swapped.write_bytes(trained["model"].read_bytes().replace(b'"', b'"', 1) + b" ")
    for expected in ("", recorded):
        with pytest.raises(ComponentError, match="the model file has sha256") as refused:
            run(swapped, expected)
        assert refused.value.exit_code == 2 and recorded in str(refused.value)
    with pytest.raises(ComponentError, match=r"train reported \(model_sha256\) " + "0" * 64):
        run(trained["model"], expected="0" * 64)
