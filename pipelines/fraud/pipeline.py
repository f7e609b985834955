"""The fraud pipeline: card-transaction fraud scoring on the standard training DAG.

Configuration (thresholds, model type, canary percent, cluster settings) lives in config.yaml
beside this file; the steps' facts live in pipelines/standard.py and are rendered into KFP and
Argo, never repeated here.
"""

from pipelines.standard import standard_pipeline

__all__ = ["DECLARATION"]

DECLARATION = standard_pipeline(
    name="fraud",
    description="Card-fraud model: validate, materialize, train, evaluate, then register and canary, or notify.",
    package=__package__ or "pipelines.fraud",
)
