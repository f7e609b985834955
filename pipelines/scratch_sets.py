"""Training and holdout sets made beside a pipeline run, not in one: validate, then materialize
into a scratch folder with an embedded feature store, so the platform's online store never moves.

What `mlops reproduce` retrains from (the recorded data, checked) and what every trial of
`mlops tune` reads (the sets made once, shared by the trials).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from components.config import PipelineConfig
from pipelines.declaration import PipelineDeclaration

__all__ = ["Sets", "make_sets"]


@dataclass(frozen=True)
class Sets:
    train_set: str
    holdout_set: str
    features: list[str]
    lineage: str
    """materialize's record of what the sets were made from (components/lineage.py)."""


def make_sets(declaration: PipelineDeclaration, cfg: PipelineConfig, data: str, scratch: Path) -> Sets:
    """The pipeline's validate and materialize steps on `data`, their outputs under `scratch`."""
    from components.steps.materialize import embedded_store_config, materialize
    from components.steps.validate import validate

    folder = declaration.folder
    validated = validate(data, str(folder / cfg.validate_.suite), str(scratch / "validation.json"))
    store = scratch / "feast"
    summary = materialize(
        data,
        str(folder / cfg.materialize.feature_repo),
        str(scratch / "train.parquet"),
        str(scratch / "holdout.parquet"),
        settings=cfg.materialize,
        data_digest=validated["data_digest"],
        store_dir=str(store),
        store_config=embedded_store_config(store, cfg.materialize.project),
        offline_uri=str(scratch / "offline" / "events.parquet"),
        lineage_out=str(scratch / "lineage.json"),
    )
    return Sets(
        train_set=str(scratch / "train.parquet"),
        holdout_set=str(scratch / "holdout.parquet"),
        features=list(summary["features"]),
        lineage=str(scratch / "lineage.json"),
    )
