"""The `drift` section of a pipeline's config: when the data the champion scores has moved away
from the data it was trained on, and how many rows of each side the step compares.

Split from components/config.py (which composes it as `drift`) to keep that module's size.
`sample_rows` was the process environment's `MLOPS_DRIFT_SAMPLE_ROWS` until issue 33's review: a
knob that changes a step's verdict belongs in the config the run records, not in whatever
environment the pod happened to get.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SAMPLE_ROWS", "DriftSettings"]

_DURATION = r"^[1-9][0-9]*[hd]$"
SAMPLE_ROWS = 1_000_000
"""`drift.sample_rows`'s default (components/steps/drift_data.py gives its tolerance and memory)."""


class DriftSettings(BaseModel):
    """The nightly question: is the data the champion scores still the data it was trained on?"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categorical_features: list[str] = Field(
        default_factory=list,
        description="Features tested with chi-squared; every other feature of the model with Kolmogorov-Smirnov.",
    )
    p_value_threshold: float = Field(
        0.05, gt=0.0, lt=1.0, description="A feature drifts when its test's p-value falls below this."
    )
    drift_share: float = Field(
        0.3, gt=0.0, le=1.0, description="The data drifts when at least this share of the features drift."
    )
    max_model_age: str = Field(
        "30d", pattern=_DURATION, description="Retrain a champion older than this even without drift (30d, 36h)."
    )
    plotted_features: int = Field(4, ge=1, le=12, description="The most drifted features drawn in the PNG.")
    sample_rows: int = Field(
        SAMPLE_ROWS,
        ge=1,
        description="The most rows of each side (the champion's training set, the current data) the tests"
        " compare: a larger side is compared on a seeded uniform sample of this many rows (row counts, missing"
        " values and unseen categories still come from every row). The step's memory grows with it (about 115"
        " MB per feature at 1M rows); the KS statistic's tolerance shrinks as 1/sqrt(sample_rows).",
    )
