"""The forecast pipeline: next-day store demand on the standard training DAG, regression on the GPU path.

Only configuration differs from fraud (config.yaml): a regression objective, a PyTorch model,
and a MAPE gate. The components are the same.
"""

from pipelines.standard import standard_pipeline

DECLARATION = standard_pipeline(
    name="forecast",
    description="Store-demand forecaster: validate, materialize, train, evaluate, then register and canary, or notify.",
    package=__package__ or "pipelines.forecast",
)
