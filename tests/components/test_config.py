from __future__ import annotations

import pytest

from components.errors import ComponentError
from pipelines.fraud.pipeline import DECLARATION as pipeline


def test_reference_config_loads() -> None:
    cfg = pipeline.config()
    assert cfg.train.model_type == "xgboost" and cfg.register_.model_name == "fraud-detector"


def test_unknown_model_type_and_bad_threshold_name_their_fields() -> None:
    with pytest.raises(ComponentError) as caught:
        pipeline.config().with_overrides({"train.model_type": "lightgbm", "evaluate.threshold": 2})
    message = str(caught.value)
    assert "train.model_type" in message and "lightgbm" in message
    assert "evaluate" in message and "threshold for roc_auc must lie in [0, 1]" in message


def test_unknown_field_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = (pipeline.folder / "config.yaml").read_text().replace("  seed: 42", "  seed: 42\n  sed: 1")
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ComponentError, match=r"train\.sed: Extra inputs are not permitted"):
        pipeline.config(tmp_path / "config.yaml")
