"""KFP v2 lightweight components, one per step, each a thin shell over `pipelines.runtime`.

Each op's signature is its step's contract (pipelines/contract.py reads it). materialize, train
and evaluate take the tenant's `namespace` as an argument and refuse to run anywhere else
(pipelines/caching.py: require_namespace), so their outputs and kfp.local's cache entries name the
tenant they were made in (KFP's cluster cache is off: pipelines/kfp.py); evaluate takes train's
`model_sha256`, so it checks the bytes it scores. A step's settings
travel as one `settings` object, its section of the pipeline config, validated by the settings
model on arrival (pipelines/runtime.py reads the component's annotation): a setting is declared
once, in components/config.py. Artifacts reach the
component as file paths, in the order of its positional parameters.

KFP serialises each function's source into the IR and runs it alone, so every import lives
inside the function. The component image has this package installed, so the functions reach
components through it; locally the same happens in the current environment.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output, PipelineTaskFinalStatus

__all__ = [
    "OPS",
    "drift",
    "evaluate",
    "hold",
    "materialize",
    "notify",
    "notify_failure",
    "promote",
    "register",
    "train",
    "validate",
]


def validate(
    raw_data: str,
    logical_date: str,
    suite: str,
    report: Output[Artifact],
) -> NamedTuple("Outputs", [("data_digest", str)]):  # type: ignore[valid-type]
    from pipelines.runtime import resource, run_step

    summary = run_step(
        "components.steps.validate:validate",
        dataset=raw_data,
        suite_path=resource(suite),
        report_path=report.path,
        logical_date=logical_date,
    )
    return (summary["data_digest"],)  # type: ignore[return-value]


def materialize(
    raw_data: str,
    logical_date: str,
    feature_repo: str,
    data_digest: str,
    settings: dict,
    namespace: str,
    train_set: Output[Dataset],
    holdout_set: Output[Dataset],
    lineage: Output[Artifact],
) -> NamedTuple("Outputs", [("features", list), ("train_set_sha256", str)]):  # type: ignore[valid-type]
    from components.lineage import recorded_digest
    from pipelines.caching import require_namespace
    from pipelines.runtime import resource, run_step

    require_namespace("materialize", namespace)
    summary = run_step(
        "components.steps.materialize:materialize",
        raw_data,
        resource(feature_repo),
        *(a.path for a in (train_set, holdout_set)),
        settings=settings,
        data_digest=data_digest,
        lineage_out=lineage.path,
        logical_date=logical_date,
    )
    train_set.metadata["rows"] = summary["training_rows"]
    holdout_set.metadata["rows"] = summary["holdout_rows"]
    # train checks the set it reads against this, the digest the lineage record holds
    return (summary["features"], recorded_digest(lineage.path, "training"))  # type: ignore[return-value]


def drift(
    current_data: str,
    logical_date: str,
    settings: dict,
    outcomes: dict,
    pipeline: str,
    model_name: str,
    experiment: str,
    namespace: str,
    timezone: str,
    force_retrain: bool,
    run_id: str,
    drift_table: Output[Artifact],
    drift_report: Output[HTML],
    drift_plot: Output[Artifact],
) -> NamedTuple(  # type: ignore[valid-type]
    "Outputs",
    [
        ("retrain", bool),
        ("reason", str),
        ("drift_share", float),
        ("drifted_features", int),
        ("champion_version", int),
        ("retrain_key", str),
    ],
):
    from pipelines.runtime import run_step

    summary = run_step(
        "components.steps.drift:drift",
        current_data,
        *(a.path for a in (drift_table, drift_report, drift_plot)),
        settings=settings,
        outcomes=outcomes,
        pipeline=pipeline,
        model_name=model_name,
        experiment=experiment,
        namespace=namespace,
        timezone=timezone,
        force_retrain=force_retrain,
        run_id=run_id,
        logical_date=logical_date,
    )
    print(("retrain: " if summary["retrain"] else "") + summary["reason"])
    return (  # type: ignore[return-value]
        summary["retrain"],
        summary["reason"],
        summary["drift_share"],
        summary["drifted_features"],
        summary["champion_version"],
        summary["retrain_key"],
    )


def hold(reason: str) -> None:
    from pipelines.runtime import run_step

    run_step("components.steps.drift:hold", reason=reason)


def train(
    train_set: Input[Dataset],
    features: list,
    train_set_sha256: str,
    label_column: str,
    settings: dict,
    namespace: str,
    model: Output[Model],
    metadata: Output[Artifact],
) -> NamedTuple("Outputs", [("model_sha256", str)]):  # type: ignore[valid-type]
    from pipelines.caching import require_namespace
    from pipelines.runtime import run_step

    require_namespace("train", namespace)
    summary = run_step(
        "components.steps.train:train",
        *(a.path for a in (train_set, model, metadata)),
        features=features,
        label_column=label_column,
        settings=settings,
        train_set_sha256=train_set_sha256,
    )
    model.metadata.update({"sha256": summary["model_sha256"], "device": summary["device"]})
    return (summary["model_sha256"],)  # type: ignore[return-value]


def evaluate(
    model: Input[Model],
    metadata: Input[Artifact],
    holdout_set: Input[Dataset],
    model_sha256: str,
    settings: dict,
    threshold: float,
    namespace: str,
    metrics: Output[Artifact],
    quality_plot: Output[Artifact],
    error_plot: Output[Artifact],
    kfp_metrics: Output[Metrics],
) -> NamedTuple(  # type: ignore[valid-type]
    "Outputs", [("passed", bool), ("gate_value", float)]
):
    from pipelines.caching import require_namespace
    from pipelines.runtime import run_step

    require_namespace("evaluate", namespace)
    summary = run_step(
        "components.steps.evaluate:evaluate",
        *(a.path for a in (model, metadata, holdout_set, metrics, quality_plot, error_plot)),
        settings={**settings, "threshold": threshold},  # the threshold is the run's (gate-threshold)
        model_sha256=model_sha256,  # train's; in this step's cache key, so checked against the bytes
    )
    for key, value in summary.items():
        if isinstance(value, float) and key != "threshold":
            kfp_metrics.log_metric(key, value)
    # a file behind the metrics too: kfp.local's cache treats an output with no file as missing
    import json
    import os

    os.makedirs(os.path.dirname(kfp_metrics.path), exist_ok=True)
    with open(kfp_metrics.path, "w") as handle:
        json.dump(kfp_metrics.metadata, handle)
    return (summary["passed"], summary[summary["gate_metric"]])  # type: ignore[return-value]


def register(
    model: Input[Model],
    metadata: Input[Artifact],
    metrics: Input[Artifact],
    train_set: Input[Dataset],
    lineage: Input[Artifact],
    settings: dict,
    card: dict,
    pipeline: str,
    git_commit: str,
    suite: str,
    config: dict,
    registration: Output[Artifact],
    model_card: Output[Markdown],
) -> None:
    from pipelines.runtime import resource, run_step

    run_step(
        "components.steps.register:register",
        *(a.path for a in (model, metadata, metrics, registration, model_card)),
        settings=settings,
        pipeline=pipeline,
        git_commit=git_commit or None,
        card=card,
        train_set=train_set.path,
        lineage=lineage.path,
        suite_path=resource(suite),
        config=config,
    )


def promote(
    registration: Input[Artifact],
    model: Input[Model],
    settings: dict,
    decision_threshold: float,
    transformer: dict,
    inference_service: Output[Artifact],
    model_repository: Output[Artifact],
    serving_authorization: Output[Artifact],
) -> None:
    from pipelines.runtime import run_step

    run_step(
        "components.steps.promote:promote",
        *(a.path for a in (registration, model, inference_service, model_repository, serving_authorization)),
        settings=settings,
        decision_threshold=decision_threshold,
        transformer=transformer,
    )


def notify(
    metrics: Input[Artifact],
    owner: str,
    pipeline: str,
    model_name: str,
    namespace: str,
    run_name: str,
    notice: Output[Artifact],
    notice_markdown: Output[Markdown],
) -> None:
    from pipelines.runtime import run_step

    run_step(
        "components.steps.notify:notify",
        metrics=metrics.path,
        notice_out=notice.path,
        notice_markdown_out=notice_markdown.path,
        owner=owner,
        pipeline=pipeline,
        model_name=model_name,
        namespace=namespace,
        run_name=run_name,
    )


def notify_failure(
    final_status: PipelineTaskFinalStatus, pipeline: str, owner: str, namespace: str, notice: Output[Artifact]
) -> None:
    """The exit handler (dsl.ExitHandler, pipelines/kfp.py): it runs after every run; one that did
    not succeed is the owner's notice, as Argo's exit handler sends it (components.steps.notify)."""
    import json

    from pipelines.runtime import run_step

    if final_status.state == "SUCCEEDED":
        with open(notice.path, "w") as out:  # an output with no file is a failed upload
            json.dump({"kind": "none", "status": final_status.state}, out)
        return
    failed = [{"displayName": final_status.pipeline_task_name, "message": final_status.error_message or ""}]
    run_step(
        "components.steps.notify:notify_failure",
        notice_out=notice.path,
        pipeline=pipeline,
        owner=owner,
        workflow=final_status.pipeline_job_resource_name.rsplit("/", 1)[-1],
        status=final_status.state,
        failures=json.dumps(failed),
        namespace=namespace,
    )


OPS: dict[str, Callable[..., Any]] = {
    "components.steps.validate:validate": validate,
    "components.steps.materialize:materialize": materialize,
    "components.steps.drift:drift": drift,
    "components.steps.drift:hold": hold,
    "components.steps.train:train": train,
    "components.steps.evaluate:evaluate": evaluate,
    "components.steps.register:register": register,
    "components.steps.promote:promote": promote,
    "components.steps.notify:notify": notify,
}
