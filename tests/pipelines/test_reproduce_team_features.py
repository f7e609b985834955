"""`mlops reproduce` and a run whose data a team features step engineered (issue 31 item 3):
materialize's lineage then records the engineered file as the raw dataset, and reproduce (validate
-> materialize -> train) can rerun neither the features step nor the validation the extract passed,
so it refuses naming the step and what to do. Driven through reproduce() with the registry's
answers stood in (no MLflow): the refusal comes before any bytes are read."""

from __future__ import annotations

from typing import Any

import pytest

import pipelines.local
from components import lineage
from components.errors import ComponentError
from components.platform import model_registry
from pipelines import reproduce as reproducing
from tests.pipelines.test_team_steps import FEATURES, team_pipeline


def _registered(monkeypatch: pytest.MonkeyPatch, declared: Any, source: str) -> None:
    config = declared.config().model_dump(mode="json", by_alias=True)
    raw = {"name": "raw", "source": source, "digest": "0" * 64, "digest_kind": "sha256"}
    document = {"config": {"sha256": lineage.canonical_sha256(config)}, "datasets": [raw]}
    record = type("Version", (), {"tags": {}, "run_id": "1" * 32})()
    monkeypatch.setattr(model_registry, "resolve_version", lambda *a, **k: 3)
    monkeypatch.setattr(model_registry, "run_id_of", lambda version: "1" * 32)
    monkeypatch.setattr(reproducing, "_recorded_documents", lambda mlflow, run_id: (document, config))
    monkeypatch.setattr(pipelines.local, "declaration", lambda name: declared)
    client = type("Client", (), {"get_model_version": lambda self, name, number: record})()
    monkeypatch.setattr(model_registry, "client", lambda: client)


def test_a_run_with_a_features_step_is_refused_naming_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 31: before, reproduce verified and validated the engineered file as if it were the raw
    extract (here: missing, so 'missing bytes'); now a permanent error naming the step and the fix."""
    _registered(monkeypatch, team_pipeline(FEATURES), "/nowhere/engineered.parquet")
    with pytest.raises(ComponentError) as raised:
        reproducing.reproduce("fraud-model", version=3)
    error = raised.value
    assert error.exit_code == 2 and "team step engineer-features" in error.problem
    assert "/nowhere/engineered.parquet" in error.problem and "mlops run fraud --data" in error.fix


def test_a_run_without_a_features_step_goes_on_to_verify_the_raw_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 31: the control: the standard DAG's run is not refused for it; it reaches the raw
    dataset's digest check, which refuses the missing file."""
    _registered(monkeypatch, team_pipeline(), "/nowhere/extract.parquet")
    with pytest.raises(ComponentError) as raised:
        reproducing.reproduce("fraud-model", version=3)
    assert "team step" not in raised.value.problem and "/nowhere/extract.parquet" in raised.value.problem
