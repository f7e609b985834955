from __future__ import annotations

import pytest

from components.errors import ComponentError
from pipelines.fraud.pipeline import DECLARATION as pipeline


def test_reference_config_loads() -> None:
    cfg = pipeline.config()
    assert cfg.train.model_type == "xgboost" and cfg.register_.model_name == "fraud-detector"


def test_unknown_model_type_and_bad_threshold_name_their_fields() -> None:
    with pytest.raises(ComponentError) as caught:
        pipeline.config().with_overrides({"train.model_type": "catboost", "evaluate.threshold": 2})
    message = str(caught.value)
    assert "train.model_type" in message and "'catboost' is no installed model kind" in message
    assert "evaluate" in message and "threshold for roc_auc must lie in [0, 1]" in message


def test_unknown_field_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = (pipeline.folder / "config.yaml").read_text().replace("  seed: 42", "  seed: 42\n  sed: 1")
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ComponentError, match=r"train\.sed: Extra inputs are not permitted"):
        pipeline.config(tmp_path / "config.yaml")


def test_every_callers_setting_is_declared_by_the_one_callers_field() -> None:
    """issue 30: promote's and explain's `callers` were two copies of one field declaration; both now
    come from components.config.callers_field (one format, none by default, the same validation)."""
    from pydantic import BaseModel, TypeAdapter, ValidationError

    from components import config

    holders: list[type[BaseModel]] = [config.PromoteSettings, config.ExplainSettings]
    shared = config.callers_field("x", "y")
    for holder in holders:
        field = holder.model_fields["callers"]
        assert field.default_factory is shared.default_factory and field.annotation == list[config.Caller]
        assert field.description and ", as `<namespace>/<serviceaccount>` (`<namespace>/*`: any account there); " in (
            field.description
        )
        assert field.get_default(call_default_factory=True) == []
        entries = TypeAdapter(field.annotation)
        assert entries.validate_python(["fraud/scorer", "fraud/*"]) == ["fraud/scorer", "fraud/*"]
        with pytest.raises(ValidationError):
            entries.validate_python(["fraud"])
