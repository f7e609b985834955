"""A pipeline as data, and the inputs of one run: what both renderers (Argo, KFP) and the local
runner take. Owns no rendering; must not import pipelines.argo, pipelines.kfp or mlops.

A reference pipeline's `pipeline.py` is a few lines that build a PipelineDeclaration: its
PipelineSpec (the DAG, usually pipelines.standard's), the package holding its config.yaml, GE
suite and Feast repo, and the function giving each step's plain arguments from the config.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from components.config import PipelineConfig, load_config
from pipelines.spec import PipelineSpec

__all__ = ["PipelineDeclaration", "RunInputs", "StepParameters"]

StepParameters = Callable[[PipelineConfig, Mapping[str, Any], str], dict[str, dict[str, Any]]]


@dataclass(frozen=True, kw_only=True)
class RunInputs:
    """The inputs a run takes (`mlops submit -p name=value`); none of them is a path on a pod's disk."""

    raw_data: str
    """The dataset: an s3:// URI on the cluster (default: the config's cluster.raw_data), a file locally."""
    git_commit: str = ""
    """The commit the run's code came from, recorded with the model."""
    gate_threshold: float
    """The evaluate gate's threshold (default: the config's evaluate.threshold)."""
    force_retrain: bool = False
    """Train even when the drift step finds no reason to (`mlops submit --force-retrain`)."""
    cache_salt: str = ""
    """Part of every memoized step's cache key: a new value runs every step again
    (`mlops submit --no-cache` sets a fresh one); empty, unchanged inputs reuse results."""
    logical_date: str = ""
    """The day the run is about (YYYY-MM-DD or an RFC 3339 time), which fills a dated raw_data
    (`{date}`: components/dated_inputs.py): the nightly passes its scheduled time, `mlops submit
    --date` and `mlops backfill` a date; empty for an undated URI."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in fields(cls))

    @classmethod
    def types(cls) -> dict[str, type]:
        hints = typing.get_type_hints(cls)
        return {name: hints[name] for name in cls.names()}

    @classmethod
    def on_cluster(cls, cfg: PipelineConfig) -> RunInputs:
        """The defaults a submitted run starts from."""
        return cls(raw_data=cfg.cluster.raw_data, gate_threshold=cfg.evaluate.threshold)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class PipelineDeclaration:
    """One pipeline: the DAG, where its files are, and how the config becomes each step's arguments."""

    spec: PipelineSpec
    package: str
    """The Python package of the pipeline's folder (config.yaml, the suite, the Feast repo)."""
    parameters: StepParameters
    """(config, run inputs, package) -> each step's plain arguments; pipelines.standard.step_parameters."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def folder(self) -> Path:
        return Path(str(resources.files(self.package)))

    def config(self, path: Path | None = None) -> PipelineConfig:
        return load_config(path or self.folder / "config.yaml")

    def step_parameters(self, cfg: PipelineConfig, run: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        return self.parameters(cfg, run, self.package)
