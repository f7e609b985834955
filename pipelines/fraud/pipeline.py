"""The fraud pipeline: card-transaction fraud scoring on the standard training DAG.

Configuration (thresholds, model type, canary percent, cluster settings) lives in config.yaml
beside this file; the steps' facts live in pipelines/standard.py and are rendered into KFP and
Argo, never repeated there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.config import PipelineConfig, load_config
from pipelines import standard

FOLDER = Path(__file__).parent
SPEC = standard.training_pipeline(
    name="fraud",
    description="Card-fraud model: validate, materialize, train, evaluate, then register and canary, or notify.",
)


def config(path: Path | None = None) -> PipelineConfig:
    return load_config(path or FOLDER / "config.yaml")


def step_parameters(cfg: PipelineConfig, run: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return standard.step_parameters(cfg, run, __package__ or "pipelines.fraud")
