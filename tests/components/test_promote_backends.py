"""Promote and a model kind served by Triton's python backend (issue 31 item 2): the cluster has no
repository for it (the serving image lacks the kind's package), so promote refuses it before
publishing anything, naming the kind, its backend and the formats a cluster backend reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.errors import ComponentError
from components.handoffs import Registration
from components.model_kinds import kind_of_format
from components.steps.promote import CLUSTER_BACKENDS, publish_repository
from tests.components.test_model_kinds import install_kind_package


def test_a_python_backend_kind_is_refused_before_publishing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 31: a team kind whose triton_backend is "python" is refused by promote as a permanent
    error naming the kind, the backend and the fix (ONNX or a FIL-readable file); nothing is published.
    Before the fix it reached the repository template's 'bug in the repository template' error."""
    install_kind_package(tmp_path, monkeypatch, "team-kinds", "tiny_logistic = team_kinds:TinyLogistic")
    kind = kind_of_format("tiny_logistic_json")
    assert kind.triton_backend == "python" and "python" not in CLUSTER_BACKENDS
    reg: Registration = {
        "model_name": "churn-model", "version": 1, "run_id": "0" * 32, "source": "", "model_file": "model.json",
        "model_format": "tiny_logistic_json", "objective": "binary", "model_card_uri": "",
        "artifact_sha256": "0" * 64, "holdout_metrics": {}, "features": ["a", "b"],
        "gate": {"metric": "roc_auc", "value": 0.9, "threshold": 0.5, "direction": ">=", "passed": True},
    }  # fmt: skip
    serving_root = tmp_path / "serving"
    with pytest.raises(ComponentError) as raised:
        publish_repository(reg, b"[0.1, 0.2, 0.0]", str(serving_root), gpu=False, runtime="triton-fil")
    error = raised.value
    assert error.exit_code == 2 and not error.retryable
    assert "'tiny_logistic'" in error.problem and "python backend" in error.problem
    assert "ONNX" in error.fix and "FIL" in error.fix
    assert not serving_root.exists()


@pytest.mark.parametrize("model_format", ["xgboost_json", "lightgbm_text", "onnx", "torchscript"])
def test_each_built_in_kind_has_a_cluster_backend(model_format: str) -> None:
    """issue 31: the refusal leaves every built-in kind servable (the control of the test above)."""
    assert kind_of_format(model_format).triton_backend in CLUSTER_BACKENDS
