"""The forecast pipeline: next-day store demand on the standard training DAG, regression on the GPU path.

Only configuration differs from fraud (config.yaml): a regression objective, a PyTorch model,
and a MAPE gate. The components are the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.config import PipelineConfig, load_config
from pipelines import standard

FOLDER = Path(__file__).parent
SPEC = standard.training_pipeline(
    name="forecast",
    description="Store-demand forecaster: validate, materialize, train, evaluate, then register and canary, or notify.",
)


def config(path: Path | None = None) -> PipelineConfig:
    return load_config(path or FOLDER / "config.yaml")


def step_parameters(cfg: PipelineConfig, run: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return standard.step_parameters(cfg, run, __package__ or "pipelines.forecast")
