"""What Argo's workflow controller reports for a pipeline: its custom metrics.

Two kinds, both exported by the controller with its `argo_workflows_` prefix (and, for counters,
no `_total` suffix: Argo's Prometheus exporter is built WithoutCounterSuffixes):
- the drift step's figures as template metrics, gauges named and labelled like the series the
  step pushes to its namespace's Pushgateway (components/steps/drift_metrics.py, the one table of names),
  which carries the per-feature ones too;
- the WorkflowTemplate's run counter: runs that did not succeed, by namespace and pipeline (Argo's
  own `argo_workflows_total_count` names no pipeline), which ArgoWorkflowFailed reads when the exit
  handler's notice (components/steps/notify.py) did not arrive.
"""

from __future__ import annotations

from hera.workflows import Counter, Gauge, Label

from components.config import PipelineConfig
from components.steps.drift_metrics import FEATURES_DRIFTED, SHARE, THRESHOLD
from pipelines.contract import StepContract
from pipelines.spec import PipelineSpec, Step

__all__ = ["RUN_FAILED_METRIC", "run_failed_metric", "template_metrics"]

RUN_FAILED_METRIC = "mlops_pipeline_runs_failed"


def template_metrics(
    spec: PipelineSpec, step: Step, cfg: PipelineConfig, contracts: dict[str, StepContract]
) -> list[Gauge] | None:
    """The drift figures as Argo template metrics too (the Pushgateway is the other path): gauges
    of the step's output parameters, labelled like the pushed series."""
    outputs = set(contracts[step.name].parameter_outputs)
    if not {"drift_share", "drifted_features", "champion_version"} <= outputs:
        return None
    labels = [
        Label(key="pipeline", value=spec.name),
        Label(key="model", value=cfg.register_.model_name),
        Label(key="version", value="{{outputs.parameters.champion_version}}"),
    ]
    return [
        Gauge(
            name=SHARE,
            help="Share of the model's features that drifted.",
            labels=labels,
            realtime=False,
            value="{{outputs.parameters.drift_share}}",
        ),
        Gauge(
            name=THRESHOLD,
            help="The drift share at or above which the pipeline retrains.",
            labels=labels,
            realtime=False,
            value=str(cfg.drift.drift_share),
        ),
        Gauge(
            name=FEATURES_DRIFTED,
            help="How many of the model's features drifted.",
            labels=labels,
            realtime=False,
            value="{{outputs.parameters.drifted_features}}",
        ),
    ]


def run_failed_metric(pipeline: str) -> Counter:
    """A workflow-level counter: one per run of `pipeline` that ended Failed or Error."""
    return Counter(
        name=RUN_FAILED_METRIC,
        help="Runs of the pipeline that ended Failed or Error, counted by the workflow controller.",
        labels=[
            Label(key="namespace", value="{{workflow.namespace}}"),
            Label(key="pipeline", value=pipeline),
            Label(key="status", value="{{workflow.status}}"),
        ],
        when="{{workflow.status}} != Succeeded",
        value="1",
    )
