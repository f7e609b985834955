"""The fraud pipeline's declaration: which components run, wired how, under which policies.

Configuration (thresholds, model type, canary percent) lives in config.yaml beside this file;
the Step facts below are rendered into KFP and Argo and never repeated there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.config import PipelineConfig, load_config
from pipelines.spec import GPU_COMPUTE, IDEMPOTENT_WRITE, IO_BOUND, ROLLOUT, Condition, PipelineSpec, Resources, Step

FOLDER = Path(__file__).parent
RESOURCE_PACKAGE = "pipelines.fraud"
IMAGE = "registry.mlops.internal/private-mlops/components-python3.11:0.1.0"
GATE_PASSED = Condition(step="evaluate", output="passed", equals=True)
GATE_FAILED = Condition(step="evaluate", output="passed", equals=False)

SPEC = PipelineSpec(
    name="fraud",
    description="Card-fraud model: validate, materialize, train, evaluate, then register and canary, or notify.",
    image=IMAGE,
    steps=(
        Step(
            name="validate",
            component="components.validate:validate",
            outputs=("report",),
            retry=IO_BOUND,
            resources=Resources(cpu="2", memory="4Gi"),
        ),
        Step(
            name="materialize",
            component="components.materialize:materialize",
            after=("validate",),
            outputs=("train_set", "holdout_set"),
            parameters_out=("features",),
            retry=IO_BOUND,
            resources=Resources(cpu="2", memory="8Gi"),
        ),
        Step(
            name="train",
            component="components.train:train",
            inputs={"train_set": "materialize.train_set", "features": "materialize.features"},
            outputs=("model", "metadata"),
            retry=GPU_COMPUTE,
            resources=Resources(cpu="4", memory="16Gi", gpu=1),
        ),
        Step(
            name="evaluate",
            component="components.evaluate:evaluate",
            inputs={"model": "train.model", "metadata": "train.metadata", "holdout_set": "materialize.holdout_set"},
            outputs=("metrics", "roc_curve", "pr_curve"),
            parameters_out=("passed",),
            retry=GPU_COMPUTE,
            resources=Resources(cpu="2", memory="8Gi"),
        ),
        Step(
            name="register",
            component="components.register:register",
            inputs={"model": "train.model", "metadata": "train.metadata", "metrics": "evaluate.metrics"},
            outputs=("registration", "model_card"),
            when=GATE_PASSED,
            retry=IDEMPOTENT_WRITE,
            resources=Resources(cpu="1", memory="2Gi"),
        ),
        Step(
            name="promote",
            component="components.promote:promote",
            inputs={"registration": "register.registration", "model": "train.model"},
            outputs=("inference_service", "model_repository"),
            when=GATE_PASSED,
            retry=ROLLOUT,
            resources=Resources(cpu="1", memory="1Gi"),
        ),
        Step(
            name="notify",
            component="components.notify:notify",
            inputs={"metrics": "evaluate.metrics"},
            outputs=("notice", "notice_markdown"),
            when=GATE_FAILED,
            retry=ROLLOUT,
            resources=Resources(cpu="1", memory="512Mi"),
        ),
    ),
)


def config(path: Path | None = None) -> PipelineConfig:
    return load_config(path or FOLDER / "config.yaml")


def step_parameters(cfg: PipelineConfig, run: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Plain (non-artifact) arguments of each step, from the config and the run's inputs.

    `run` holds the pipeline inputs (raw_data, feast_store_dir, tracking_uri, ...), which
    are placeholders when rendering for a cluster and values in a local run.
    """
    m = cfg.materialize
    return {
        "validate": {"raw_data": run["raw_data"], "suite": f"{RESOURCE_PACKAGE}/{cfg.validate_.suite}"},
        "materialize": {
            "raw_data": run["raw_data"],
            "feature_repo": f"{RESOURCE_PACKAGE}/{m.feature_repo}",
            "store_dir": run["feast_store_dir"],
            "project": m.project,
            "feature_service": m.feature_service,
            "entity_column": m.entity_column,
            "timestamp_column": m.timestamp_column,
            "label_column": m.label_column,
            "request_features": list(m.request_features),
            "holdout_fraction": m.holdout_fraction,
        },
        "train": {
            "model_type": cfg.train.model_type,
            "label_column": m.label_column,
            "params": dict(cfg.train.params),
            "seed": cfg.train.seed,
            "device": cfg.train.device,
        },
        "evaluate": {"min_auc": run["min_auc"], "decision_threshold": cfg.evaluate.decision_threshold},
        "register": {
            "model_name": cfg.register_.model_name,
            "tracking_uri": run["tracking_uri"],
            "artifact_root": run["artifact_root"],
            "experiment": cfg.register_.experiment,
            "pipeline": cfg.pipeline,
            "git_commit": run["git_commit"],
            "alias": cfg.register_.alias,
            "card": cfg.model_card.model_dump(),
        },
        "promote": {
            "namespace": cfg.promote.namespace,
            "canary_percent": cfg.promote.canary_percent,
            "serving_root": run["serving_root"],
            "signed_off_by": cfg.promote.signed_off_by,
            "stage": cfg.promote.stage,
            "runtime": cfg.promote.runtime,
            "gpu": cfg.promote.gpu,
            "memory_limit": cfg.promote.memory_limit,
            "decision_threshold": cfg.evaluate.decision_threshold,
        },
        "notify": {"owner": cfg.owner, "pipeline": cfg.pipeline, "model_name": cfg.register_.model_name},
    }
