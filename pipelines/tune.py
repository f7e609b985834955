"""`mlops tune`: a hyperparameter search over the real train and evaluate steps.

Locally Optuna runs the trials (its TPE or random sampler, `tune.parallel` at once, in threads:
XGBoost and torch release the GIL while they fit); on the cluster the same search space becomes
a Katib Experiment (pipelines/katib.py) whose trials run `mlops tune-trial`, the same function.

    data -> validate -> materialize (once) -> trial x N: train(params) -> evaluate -> metric

Each trial is an MLflow child run of one parent run; the objective is the pipeline's gate
metric on the holdout (maximised for AUCs and r2, minimised for errors). The best parameters
come back as a config patch and as a whole patched config.yaml, for `mlops run --config`.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from components.config import PipelineConfig, SearchRange
from components.train_settings import HIGHER_IS_BETTER
from pipelines.declaration import PipelineDeclaration
from pipelines.scratch_sets import Sets, make_sets

if TYPE_CHECKING:
    from optuna.trial import Trial

__all__ = ["GREATER_IS_BETTER", "STEP", "Tuning", "config_patch", "direction", "run_trial", "sample", "tune"]

STEP = "tune"
GREATER_IS_BETTER = HIGHER_IS_BETTER
"""The gate metrics a sweep maximizes: the training settings' table, every objective's (multiclass too)."""


def direction(metric: str) -> Literal["maximize", "minimize"]:
    return "maximize" if metric in GREATER_IS_BETTER else "minimize"


def sample(trial: Trial, space: dict[str, SearchRange]) -> dict[str, Any]:
    """One point of the search space, drawn through Optuna's trial."""
    point: dict[str, Any] = {}
    for name, bounds in sorted(space.items()):
        if bounds.type == "categorical":
            assert bounds.choices is not None  # SearchRange refuses a categorical range without them
            point[name] = trial.suggest_categorical(name, bounds.choices)
        elif bounds.type == "int":
            point[name] = trial.suggest_int(name, int(bounds.low or 0), int(bounds.high or 0), log=bounds.log)
        else:
            point[name] = trial.suggest_float(name, float(bounds.low or 0), float(bounds.high or 0), log=bounds.log)
    return point


def run_trial(
    cfg: PipelineConfig, params: dict[str, Any], sets: Sets, out: Path, *, report: bool = False
) -> dict[str, Any]:
    """Train with `params` laid over train.params, evaluate on the holdout; the holdout metrics.
    `report` prints `<metric>=<value>` lines: what Katib's StdOut metrics collector reads."""
    from components.steps.evaluate import evaluate
    from components.steps.train import train

    out.mkdir(parents=True, exist_ok=True)
    settings = cfg.train.model_copy(update={"params": {**cfg.train.params, **params}})
    trained = train(sets.train_set, str(out / "model"), str(out / "metadata.json"),
                    features=sets.features, label_column=cfg.materialize.label_column, settings=settings)  # fmt: skip
    evaluate(str(out / "model"), str(out / "metadata.json"), sets.holdout_set, str(out / "metrics.json"),
             str(out / "quality.png"), str(out / "errors.png"), settings=cfg.evaluate)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    found = {k: float(v) for k, v in metrics.items() if isinstance(v, float) and k != "holdout_rows"}
    for name, value in sorted(found.items()) if report else ():
        print(f"{name}={value}", flush=True)
    return {"metrics": found, "model_sha256": trained["model_sha256"], "seconds": trained["train_seconds"]}


@dataclass
class Tuning:
    pipeline: str
    metric: str
    direction: Literal["maximize", "minimize"]
    best_value: float
    best_params: dict[str, Any]
    parent_run_id: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    patch_path: str = ""
    config_path: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [trial for trial in self.trials if trial["state"] != "COMPLETE"]


def config_patch(cfg: PipelineConfig, best: dict[str, Any]) -> dict[str, Any]:
    """The change to config.yaml: train.params with the best point laid over it."""
    return {"train": {"params": {**cfg.train.params, **best}}}


def tune(
    declaration: PipelineDeclaration,
    cfg: PipelineConfig,
    data: str,
    out: Path,
    *,
    trials: int | None = None,
    parallel: int | None = None,
    tracking_uri: str | None = None,
) -> Tuning:
    """Run the search; log the parent run and one child run per trial; write the patch."""
    import optuna

    from components.errors import ComponentError, TransientError, classify
    from components.platform import model_registry, services

    settings = cfg.tune
    if not settings.space:
        raise ComponentError(
            STEP, f"{cfg.pipeline}'s config has no tune.space", "list train.params names and ranges under tune.space"
        )
    trials = trials or settings.trials
    parallel = parallel or settings.parallel
    metric = cfg.evaluate.gate_metric
    started = time.perf_counter()
    mlflow = model_registry.client(tracking_uri)
    root = services.artifact_root(STEP, model_registry.tracking_uri(tracking_uri))
    experiment = model_registry.experiment_id(mlflow, cfg.register_.experiment, root)
    parent = mlflow.create_run(
        experiment,
        run_name=f"tune-{cfg.pipeline}",
        tags={"mlops.pipeline": cfg.pipeline, "mlops.tune": "search", "mlops.tune.algorithm": settings.algorithm},
    ).info.run_id
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="mlops-tune-") as tmp:
        scratch = Path(tmp)
        sets = make_sets(declaration, cfg, data, scratch)

        def objective(trial: Trial) -> float:
            point = sample(trial, settings.space)
            child = None
            try:
                child = mlflow.create_run(
                    experiment,
                    run_name=f"trial-{trial.number}",
                    tags={
                        "mlflow.parentRunId": parent,
                        "mlops.pipeline": cfg.pipeline,
                        "mlops.tune.trial": str(trial.number),
                    },
                ).info.run_id
                for name, value in point.items():
                    mlflow.log_param(child, name, value)
                result = run_trial(cfg, point, sets, scratch / f"trial-{trial.number}")
                for name, value in result["metrics"].items():
                    mlflow.log_metric(child, name, value)
                mlflow.set_tag(child, "mlops.model_sha256", result["model_sha256"])
                mlflow.set_terminated(child, "FINISHED")
            except Exception as error:
                failure = classify(error, STEP)
                with lock:
                    records.append({"number": trial.number, "params": point, "state": "FAIL", "error": str(error)[:500],
                                    "retryable": bool(failure and failure.retryable)})  # fmt: skip
                if child is not None:
                    with contextlib.suppress(Exception):  # the tracking server itself may be what failed
                        mlflow.set_terminated(child, "FAILED")
                raise
            value = float(result["metrics"][metric])
            with lock:
                records.append({"number": trial.number, "params": point, "state": "COMPLETE", metric: value,
                                "run_id": child})  # fmt: skip
            return value

        sampler = (
            optuna.samplers.TPESampler(seed=cfg.train.seed)
            if settings.algorithm == "tpe"
            else optuna.samplers.RandomSampler(seed=cfg.train.seed)
        )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction=direction(metric), sampler=sampler)
        study.optimize(objective, n_trials=trials, n_jobs=parallel, catch=(Exception,))
    complete = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        failures = "; ".join(sorted({record.get("error", "?")[:200] for record in records}))
        with contextlib.suppress(Exception):  # the tracking server may be what failed
            mlflow.set_terminated(parent, "FAILED")
        if records and all(record.get("retryable") for record in records):  # a service failed every trial
            raise TransientError(STEP, f"all {trials} trials failed: {failures}", "check the service; run again")
        raise ComponentError(STEP, f"all {trials} trials failed: {failures}", "fix what the trials' errors name")
    best = study.best_trial
    best_value = float(best.value if best.value is not None else "nan")
    patch_path, config_path = _write_best(cfg, dict(best.params), out)
    mlflow.log_param(parent, "trials", trials)
    mlflow.log_param(parent, "parallel", parallel)
    for name, value in best.params.items():
        mlflow.log_param(parent, f"best.{name}", value)
    mlflow.log_metric(parent, f"best_{metric}", best_value)
    mlflow.log_artifact(parent, str(patch_path))
    mlflow.set_terminated(parent, "FINISHED")
    return Tuning(
        pipeline=cfg.pipeline,
        metric=metric,
        direction=direction(metric),
        best_value=best_value,
        best_params=dict(best.params),
        parent_run_id=parent,
        trials=sorted(records, key=lambda record: int(record["number"])),
        patch_path=str(patch_path),
        config_path=str(config_path),
        seconds=time.perf_counter() - started,
    )


def _write_best(cfg: PipelineConfig, params: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """The best trial as a config patch (train.params only) and as the whole patched config."""
    patch = config_patch(cfg, params)
    patch_path = out / f"tune-{cfg.pipeline}.patch.yaml"
    patch_path.write_text(yaml.safe_dump(patch, sort_keys=True))
    config_path = out / f"tune-{cfg.pipeline}.config.yaml"
    patched = cfg.with_overrides({"train.params": patch["train"]["params"]})
    config_path.write_text(
        yaml.safe_dump(patched.model_dump(by_alias=True, mode="json", exclude_none=True), sort_keys=False)
    )
    return patch_path, config_path
