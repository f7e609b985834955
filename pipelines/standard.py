"""The standard training DAG every reference pipeline declares: validate, then drift beside
materialize; train and evaluate only when drift decides to retrain (drift, age, or forced),
else `hold` ends the run with "no retrain needed" and the reason;
then register and promote when the gate passes, or notify when it fails.

A pipeline module names itself and its package (`standard_pipeline`); the steps, their wiring,
retry classes and resources are declared here once. A pipeline that needs a different shape
builds its own PipelineDeclaration from a PipelineSpec of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from components.config import PipelineConfig, transformer_settings
from pipelines.declaration import PipelineDeclaration
from pipelines.spec import GPU_COMPUTE, IDEMPOTENT_WRITE, IO_BOUND, ROLLOUT, Condition, PipelineSpec, Resources, Step
from pipelines.team_steps import TeamStep, declare

__all__ = [
    "GATE_FAILED",
    "GATE_PASSED",
    "IMAGE",
    "NO_RETRAIN",
    "RETRAIN",
    "TRAIN_ON_ONE_GPU",
    "standard_pipeline",
    "step_parameters",
    "training_pipeline",
]

IMAGE = "registry.mlops.internal/private-mlops/components-python3.11:0.1.0"
RETRAIN = Condition(step="drift", output="retrain", equals=True)
NO_RETRAIN = Condition(step="drift", output="retrain", equals=False)
GATE_PASSED = Condition(step="evaluate", output="passed", equals=True)
GATE_FAILED = Condition(step="evaluate", output="passed", equals=False)
# Each step's default sizes, from docs/performance.md's tables at their largest measured run (10M rows,
# or 100M where "Memory against rows" has it: the scales the nightly is sized for): the step's peak
# RSS rounded up to a power-of-two Gi with at least 10% headroom. config.yaml's `resources` overrides
# them (components/resource_settings.py).
# train reads the set in 1M-row batches (components/steps/train_batches.py): XGBoost 1,253 MB at 10M rows
# alone in its process, pytorch_mlp 1,109 MB; 4Gi, not 2Gi, for the GPU runtime's host memory (unmeasured)
TRAIN_ON_ONE_GPU = Resources(cpu="4", memory="4Gi", gpu=1)  # train row of "Memory against rows"
# validate and materialize are bounded (issue 33): GX on 1M-row batches, DuckDB under its memory_limit
# (components/duckdb_session.py DEFAULT_MEMORY_LIMIT, 1 GB) spilling to disk; their peak is Python's
# share plus that limit, not a multiple of the rows (docs/performance.md, "Memory against rows").
VALIDATE = Resources(cpu="2", memory="4Gi")  # validate (GX, batches) row: 2,362 MB at 100M rows
MATERIALIZE = Resources(cpu="2", memory="4Gi")  # materialize (Feast + DuckDB) row: 2,347 MB at 100M rows
# evaluate scores the holdout in batches and keeps its labels and predictions (components/steps/evaluate.py)
EVALUATE = Resources(cpu="2", memory="4Gi")  # evaluate row: 3,426 MB at 100M rows (20M holdout)
REGISTER = Resources(cpu="1", memory="1Gi")  # register (MLflow) row: 638 MB at 10M rows, alone in its process
PROMOTE = Resources(cpu="1", memory="1Gi")  # promote row: 653 MB at 10M rows, alone in its process
# drift compares samples of at most 1M rows per side (components/steps/drift_data.py); hold and
# notify read nothing.
DRIFT = Resources(cpu="2", memory="2Gi")  # drift row: 1,793 MB at 100M rows a side (6 features)
HOLD = Resources(cpu="100m", memory="128Mi")
NOTIFY = Resources(cpu="1", memory="512Mi")


def training_pipeline(
    *, name: str, description: str, image: str = IMAGE, train_resources: Resources = TRAIN_ON_ONE_GPU
) -> PipelineSpec:
    # A step a paragraph: component, wiring, condition, retry class, resources.
    # fmt: off
    steps = (
        Step(name="validate", component="components.steps.validate:validate", caching=True,
             retry=IO_BOUND, resources=VALIDATE),
        # the online store is refreshed every night, retrain or not; from the bytes validate read
        Step(name="materialize", component="components.steps.materialize:materialize",
             inputs={"data_digest": "validate.data_digest"}, caching=True,
             retry=IO_BOUND, resources=MATERIALIZE),
        Step(name="drift", component="components.steps.drift:drift", after=("validate",),
             retry=IO_BOUND, resources=DRIFT),
        Step(name="hold", component="components.steps.drift:hold", inputs={"reason": "drift.reason"},
             after=("materialize",), when=(NO_RETRAIN,),
             retry=ROLLOUT, resources=HOLD),
        Step(name="train", component="components.steps.train:train",
             inputs={"train_set": "materialize.train_set", "features": "materialize.features",
                     "train_set_sha256": "materialize.train_set_sha256"},
             when=(RETRAIN,), caching=True, retry=GPU_COMPUTE, resources=train_resources),
        Step(name="evaluate", component="components.steps.evaluate:evaluate",
             inputs={"model": "train.model", "metadata": "train.metadata", "holdout_set": "materialize.holdout_set",
                     "model_sha256": "train.model_sha256"},
             when=(RETRAIN,), caching=True, retry=GPU_COMPUTE, resources=EVALUATE),
        Step(name="register", component="components.steps.register:register",
             inputs={"model": "train.model", "metadata": "train.metadata", "metrics": "evaluate.metrics",
                     "train_set": "materialize.train_set", "lineage": "materialize.lineage"},
             when=(RETRAIN, GATE_PASSED), retry=IDEMPOTENT_WRITE, resources=REGISTER),
        Step(name="promote", component="components.steps.promote:promote",
             inputs={"registration": "register.registration", "model": "train.model"},
             when=(RETRAIN, GATE_PASSED), retry=ROLLOUT, resources=PROMOTE),
        Step(name="notify", component="components.steps.notify:notify", inputs={"metrics": "evaluate.metrics"},
             when=(RETRAIN, GATE_FAILED), retry=ROLLOUT, resources=NOTIFY),
    )
    # fmt: on
    return PipelineSpec(name=name, description=description, image=image, steps=steps)


def standard_pipeline(
    *,
    name: str,
    description: str,
    package: str,
    image: str = IMAGE,
    train_resources: Resources = TRAIN_ON_ONE_GPU,
    team_steps: tuple[TeamStep, ...] = (),
) -> PipelineDeclaration:
    """A pipeline on the standard DAG: its name, what it is for, and the package of its files;
    `team_steps` inserts the team's own steps (pipelines/team_steps.py: a features step between
    validate and materialize, a check joining evaluate's gate), refusing wiring that cannot work."""
    spec = training_pipeline(name=name, description=description, image=image, train_resources=train_resources)
    parameters = functools.partial(step_parameters, image=image)
    return declare(PipelineDeclaration(spec=spec, package=package, parameters=parameters), team_steps)


def step_parameters(
    cfg: PipelineConfig, run: Mapping[str, Any], package: str, *, image: str = IMAGE
) -> dict[str, dict[str, Any]]:
    """Plain (non-artifact) arguments of each step, from the config and the run's inputs.

    `run` holds the pipeline inputs (pipelines.cluster.RUN_INPUTS) and the engine's run id,
    placeholders when rendering and values in a local run. Where the stores are is no
    argument: each step reads it from the platform settings (components/platform/settings.py).
    """
    m = cfg.materialize
    return {
        # the data URI may be dated: each step that reads it fills in the run's logical date
        "validate": {
            "raw_data": run["raw_data"],
            "logical_date": run["logical_date"],
            "suite": f"{package}/{cfg.validate_.suite}",
        },
        "drift": {
            "current_data": run["raw_data"],
            "logical_date": run["logical_date"],
            "settings": cfg.drift.model_dump(),
            "outcomes": cfg.outcomes.model_dump(),  # the nightly's realized-metric reason (issue 32)
            "pipeline": cfg.pipeline,
            "model_name": cfg.register_.model_name,
            "experiment": cfg.register_.experiment,
            "namespace": cfg.cluster.namespace,
            "timezone": cfg.cluster.schedule.timezone,
            "force_retrain": run["force_retrain"],
            "run_id": run["run_id"],
        },
        "materialize": {
            "raw_data": run["raw_data"],
            "logical_date": run["logical_date"],
            "feature_repo": f"{package}/{m.feature_repo}",
            # an unset materialize.timezone is left out (KFP parameters cannot be null): goldens unchanged
            "settings": m.model_dump(exclude={"feature_repo"}, exclude_none=True),
            "namespace": cfg.cluster.namespace,  # the tenant, in every cached step's key (pipelines/caching.py)
        },
        "hold": {},
        "train": {
            "label_column": m.label_column,
            "settings": cfg.train.model_dump(exclude_none=True),
            "namespace": cfg.cluster.namespace,
        },
        # the threshold is a run input (gate-threshold); the rest of the section comes whole
        "evaluate": {
            "settings": cfg.evaluate.model_dump(exclude={"threshold"}),
            "threshold": run["gate_threshold"],
            "namespace": cfg.cluster.namespace,
        },
        "register": {
            "settings": cfg.register_.model_dump(),
            "card": cfg.model_card.model_dump(),
            "pipeline": cfg.pipeline,
            "git_commit": run["git_commit"],
            # what the lineage records: the suite by hash, the config whole (components/lineage.py)
            "suite": f"{package}/{cfg.validate_.suite}",
            "config": cfg.model_dump(by_alias=True, mode="json", exclude_none=True),
        },
        # unset settings are left out (KFP parameters cannot be null); the model fills in its defaults
        "promote": {
            "settings": cfg.promote.model_dump(exclude_none=True),
            "decision_threshold": cfg.evaluate.decision_threshold,
            # the scoring transformer joins the feature service this pipeline trains on
            "transformer": transformer_settings(cfg, image).model_dump(mode="json"),
        },
        # the notice is pushed in the tenant's namespace's group, naming the run it is about
        "notify": {
            "owner": cfg.owner,
            "pipeline": cfg.pipeline,
            "model_name": cfg.register_.model_name,
            "namespace": cfg.cluster.namespace,
            "run_name": run["run_id"],
        },
    }
