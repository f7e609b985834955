"""The `scoring.decision_log` section of a pipeline's config: the transformer's decision log, written off the
request path (components/serving/decision_log.py, issue 32 item 1), and the request outcomes it carries.

Split from components/config.py (which composes it as ScoringSettings.decision_log and re-exports it) to
keep that module's size.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DecisionLogSettings"]


class DecisionLogSettings(BaseModel):
    """The decision log (components/serving/decision_log.py): one record per scored row, written off the
    request path; where it goes is the serving environment's MLOPS_DECISION_LOG_URI (docs/serving.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Log every scored row; off, nothing is queued or written.")
    queue_max_records: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Records waiting to be written; past it a request's rows are dropped, counted.",
    )
    batch_records: int = Field(1_000, ge=1, le=1_000_000, description="Records that trigger a flush (one file).")
    flush_seconds: float = Field(5.0, gt=0.0, le=3600.0, description="Flush at least this often while records wait.")
    spill_max_bytes: int = Field(
        256 << 20,
        ge=0,
        description="Bytes of unwritten files kept on the pod's disk while the object store refuses; past it,"
        ' records are dropped and counted (mlops_decision_log_records_total{outcome="dropped"}).',
    )
    spill_dir: str = Field("/tmp/mlops-decision-spill", description="The pod's folder for spilled files.")
