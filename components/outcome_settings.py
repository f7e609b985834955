"""The `outcomes` section of a pipeline's config: how late labels are joined and when realized metrics count.

Issue 32 item 3. Labels arrive days or weeks after a decision (`mlops outcomes ingest`,
components/platform/outcomes.py); the realized metrics of a version (`mlops outcomes metrics`) are
judged against the pipeline's gate (evaluate.gate_metric, evaluate.threshold) only with enough labelled
decisions: below `min_labelled` a metric is noise, so neither the ModelPerformanceDegraded alert nor the
nightly's retrain decision acts on it. Split from components/config.py (which composes it as
`outcomes`) to keep that module's size.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OutcomesSettings"]

_DURATION = r"^[1-9][0-9]*[hd]$"


class OutcomesSettings(BaseModel):
    """Late labels joined to the decision log, and the realized metrics judged against the gate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_labelled: int = Field(
        200,
        ge=1,
        description="Labelled decisions a version needs before its realized gate metric is judged (the"
        " ModelPerformanceDegraded alert and the nightly's retrain reason); fewer: reported, not judged.",
    )
    window: str = Field(
        "14d",
        pattern=_DURATION,
        description="The trailing window of decisions (by decision time) the nightly judges realized metrics"
        " over (14d, 36h).",
    )
    join_tolerance: str = Field(
        "1h",
        pattern=_DURATION,
        description="An outcome keyed by entity and event time joins the entity's decision nearest that time,"
        " at most this far from it (1h, 2d); farther: counted as matching no decision.",
    )
