"""drift: is the data the champion scores still the data it was trained on, and must we retrain?

1. The reference comes from the registry: the `champion` alias (or a given version) -> its
   run -> the training set register kept there (reference/training_set.parquet).
2. Evidently's DataDriftPreset tests each of the model's features with the methods set
   explicitly, Kolmogorov-Smirnov for numeric features and chi-squared for categorical ones
   (above 1,000 rows its default would switch to Wasserstein and Jensen-Shannon).
3. The table (statistic, p-value and verdict per feature, the drift share, the decision), the
   HTML report and a PNG of the most drifted features are written atomically and logged to a
   monitoring run in the pipeline's MLflow experiment; the figures go to the Pushgateway.
4. The decision: retrain when forced, when nothing serves yet, when the data drifted, when the
   champion is older than max_model_age, or when its realized gate metric on late labels is below
   its gate (components/platform/outcomes_gate.py; no outcomes: no such reason); a retrain already
   claimed for the same night (the dedupe key, a tag on the monitoring run) is not started twice.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from components import artifacts
from components.config import DriftSettings, duration_seconds
from components.drift_settings import SAMPLE_ROWS
from components.errors import ComponentError, TransientError, transient_reason
from components.outcome_settings import OutcomesSettings
from components.platform import model_registry, services
from components.platform.outcomes_gate import nightly_reason
from components.steps.drift_data import Window, check_columns, read_current, read_window, statistic, whole
from components.steps.drift_metrics import push_metrics
from components.steps.drift_report import table, write_plot, write_report
from components.steps.register import REFERENCE_ARTIFACT

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "PARALLEL_ROWS",
    "STEP",
    "THREADS_VARIABLE",
    "DriftResult",
    "FeatureDrift",
    "NoChampion",
    "Reference",
    "check",
    "compare",
    "decide",
    "drift",
    "find_reference",
    "hold",
    "read_current",
    "retrain_key",
]

STEP = "drift"
# Evidently's usage telemetry is off through DO_NOT_TRACK, which components/__init__.py sets
# (components.environment.AIRGAP_DEFAULTS) unless the environment decides; no step sets it itself.


class NoChampion(ComponentError):
    """Nothing serves yet: a run without a champion trains one; `mlops drift` refuses."""


@dataclass(frozen=True, kw_only=True)
class FeatureDrift:
    feature: str
    method: str  # ks | chisquare
    statistic: float | None  # None: infinite (a category the reference never saw)
    p_value: float
    drifted: bool
    new_categories: list[Any] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class DriftResult:
    features: list[FeatureDrift]
    drift_share: float
    threshold: float
    detected: bool
    current_rows: int
    reference_rows: int
    current_sampled: int | None = None  # the rows compared when a sample (drift_data.py), None: all
    reference_sampled: int | None = None
    snapshots: list[Any] = field(repr=False, compare=False)
    """Evidently's snapshots: one, or one per group of features tested in parallel."""

    def most_drifted(self, count: int) -> list[FeatureDrift]:
        return sorted(self.features, key=lambda f: (np.nan_to_num(f.p_value, nan=-1.0), f.feature))[:count]

    def summary(self) -> str:
        drifted = [f.feature for f in self.features if f.drifted]
        share = f"{len(drifted)} of {len(self.features)} features drifted ({self.drift_share:.0%}"
        relation = ">=" if self.detected else "<"
        return f"{share} {relation} {self.threshold:.0%}){': ' + ', '.join(drifted) if drifted else ''}"


@dataclass(frozen=True, kw_only=True)
class Reference:
    model: str
    version: int
    run_id: str
    registered_at: dt.datetime
    features: list[str]
    frame: pd.DataFrame = field(repr=False)
    """The rows compared: all, or window.frame, a sample (components/steps/drift_data.py)."""
    window: Window | None = field(default=None, repr=False)

    def age_seconds(self, now: dt.datetime) -> float:
        return (now - self.registered_at).total_seconds()


def find_reference(
    mlflow: MlflowClient,
    model: str,
    version: int | None = None,
    *,
    categorical: tuple[str, ...] = (),
    sample_rows: int = SAMPLE_ROWS,
) -> Reference:
    """The champion's (or `version`'s) training set, through the registry alone; read as a bounded
    sample of at most `sample_rows` rows (drift_data.read_window), `categorical`'s distinct values
    from all of it."""
    from mlflow.exceptions import MlflowException

    # a search, not a get: on a multi-tenant server a tenant's model that does not exist yet is
    # denied rather than missing, and a search lists only what the caller may read
    found = mlflow.search_registered_models(filter_string=f"name = '{model}'", max_results=1)
    if not found:
        raise NoChampion(
            STEP,
            f"no registered model {model!r} at {model_registry.tracking_uri()}",
            "run the pipeline to register one",
        )
    registered = found[0]
    if version is None:
        aliases = dict(registered.aliases or {})
        if model_registry.CHAMPION not in aliases:
            known = ", ".join(f"{k}->v{v}" for k, v in sorted(aliases.items())) or "none"
            raise NoChampion(
                STEP,
                f"{model} has no champion to compare with (aliases: {known})",
                f"promote a version (`mlops promote {model} --promote --version N`) or pass --reference-version N",
            )
        version = int(aliases[model_registry.CHAMPION])
    try:
        record = mlflow.get_model_version(model, str(version))
    except MlflowException as error:
        raise ComponentError(STEP, f"{model} has no version {version}", "pick one of its versions") from error
    run_id = model_registry.run_id_of(record)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(mlflow.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp))
        except (MlflowException, OSError) as error:
            unreachable = isinstance(error, OSError) and not isinstance(error, FileNotFoundError)
            if unreachable or transient_reason(error):  # the store is down or failing: a retry may pass
                raise TransientError(
                    STEP, f"could not fetch {model} v{version}'s reference: {error}", "check the artifact store"
                ) from error
            raise ComponentError(
                STEP,
                f"{model} v{version} (run {run_id}) has no training set artifact at {REFERENCE_ARTIFACT}",
                "it was registered before drift monitoring kept one: retrain it "
                "(`mlops submit <pipeline> --force-retrain`), or compare with a newer --reference-version",
            ) from error
        what = f"{model} v{version}'s training set"
        window = read_window(str(local), None, list(categorical), what=what, limit=sample_rows)
    registered_at = dt.datetime.fromtimestamp(record.creation_timestamp / 1000, tz=dt.UTC)
    return Reference(
        model=model,
        version=version,
        run_id=run_id,
        registered_at=registered_at,
        features=list(window.frame.columns),
        frame=window.frame,
        window=window,
    )


PARALLEL_ROWS = 200_000
"""Reference plus current rows from which the features are tested in parallel groups."""
THREADS_VARIABLE = "MLOPS_DRIFT_THREADS"


def _threads(features: list[str], rows: int) -> int:
    """Groups to test at once: one per core (numpy and pandas release the GIL in the sorts and
    hash tables the tests spend their time in), one group for small windows."""
    if os.environ.get(THREADS_VARIABLE):
        return max(1, min(int(os.environ[THREADS_VARIABLE]), len(features)))
    if rows < PARALLEL_ROWS:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), len(features)))


def _test_group(
    ref: Window, cur: Window, group: list[str], categorical: list[str], settings: DriftSettings
) -> tuple[list[FeatureDrift], Any]:
    """Evidently's DataDriftPreset over one group of features, and each feature's statistic."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[name for name in group if name not in categorical],
        categorical_columns=[name for name in group if name in categorical],
    )
    preset = DataDriftPreset(
        columns=group,
        num_method="ks",
        cat_method="chisquare",
        threshold=settings.p_value_threshold,
        drift_share=settings.drift_share,
        include_tests=False,
    )
    snapshot = Report([preset]).run(
        Dataset.from_pandas(cur.frame[group], data_definition=definition),
        Dataset.from_pandas(ref.frame[group], data_definition=definition),
    )
    p_values: dict[str, tuple[str, float]] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            p_values[config["column"]] = (config["method"], float(metric["value"]))
    results = []
    for name in group:
        method, p_value = p_values[name]
        value, new = statistic(method, name, ref, cur)
        drifted = bool(math.isnan(p_value) or p_value < settings.p_value_threshold)
        results.append(
            FeatureDrift(
                feature=name, method=method, statistic=value, p_value=p_value, drifted=drifted, new_categories=new
            )
        )
    return results, snapshot


def compare(
    reference: pd.DataFrame | Window, current: pd.DataFrame | Window, *, features: list[str], settings: DriftSettings
) -> DriftResult:
    """Evidently's DataDriftPreset over `features`, KS and chi-squared set explicitly; on large
    windows one preset per group of features, the groups tested in parallel threads. A frame is
    compared whole; a Window (drift_data.read_window) by its rows, a sample of a larger whole."""
    from concurrent.futures import ThreadPoolExecutor

    categories = list(settings.categorical_features)
    ref = reference if isinstance(reference, Window) else whole(reference, categories)
    cur = current if isinstance(current, Window) else whole(current, categories)
    check_columns(cur, features, settings.categorical_features)
    categorical = [name for name in features if name in settings.categorical_features]
    reference, current = ref.frame, cur.frame
    count = _threads(features, len(reference) + len(current))
    groups = [features[index::count] for index in range(count)]
    if count == 1:
        parts = [_test_group(ref, cur, features, categorical, settings)]
    else:
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="drift") as pool:
            parts = list(pool.map(lambda group: _test_group(ref, cur, group, categorical, settings), groups))
    by_name = {feature.feature: feature for part, _ in parts for feature in part}
    results = [by_name[name] for name in features]
    share = sum(f.drifted for f in results) / len(results)
    return DriftResult(
        features=results,
        drift_share=share,
        threshold=settings.drift_share,
        detected=share >= settings.drift_share,
        current_rows=cur.rows,
        reference_rows=ref.rows,
        current_sampled=cur.sampled,
        reference_sampled=ref.sampled,
        snapshots=[snapshot for _, snapshot in parts],
    )


def retrain_key(pipeline: str, now: dt.datetime, timezone: str) -> str:
    """One retrain per pipeline and night: the night's date where the schedule runs."""
    return f"{pipeline}@{now.astimezone(ZoneInfo(timezone)).date().isoformat()}"


def _claimed(mlflow: MlflowClient, experiment_id: str, key: str, run_id: str, since: dt.datetime | None) -> str | None:
    """The workflow that already decided to retrain for `key` since the champion was registered
    (a retrain from before it cannot have answered its drift); a retry of this step is not another."""
    query = f"tags.`mlops.retrain_key` = '{key}' and tags.`mlops.decision` = 'retrain'"
    if since is not None:
        query += f" and attributes.start_time > {int(since.timestamp() * 1000)}"
    if run_id:
        query += f" and tags.`mlops.workflow` != '{run_id}'"
    runs = mlflow.search_runs([experiment_id], filter_string=query, max_results=1)
    return str(runs[0].data.tags.get("mlops.workflow", runs[0].info.run_id)) if runs else None


def decide(
    *,
    result: DriftResult | None,
    reference: Reference | None,
    settings: DriftSettings,
    force: bool,
    now: dt.datetime,
    claimed_by: str | None,
    key: str,
    realized: str | None = None,
) -> dict[str, Any]:
    """retrain or not, and the reason a person reads in the run's outputs (`realized`: the champion's
    realized gate metric below its gate, components/platform/outcomes_gate.py, else None)."""
    if force:
        return {"retrain": True, "reason": "retrain forced (--force-retrain)", "key": key, "claim": "forced"}
    reasons = []
    if reference is None:
        reasons.append("no champion yet: nothing serves, so train one")
    else:
        age = reference.age_seconds(now)
        if result is not None and result.detected:
            reasons.append(f"drift: {result.summary()}")
        if age > duration_seconds(settings.max_model_age):
            reasons.append(
                f"champion v{reference.version} is {age / 86400:.1f} days old (max_model_age {settings.max_model_age})"
            )
        reasons += [realized] if realized else []
    if reasons and claimed_by is not None:
        return {
            "retrain": False,
            "reason": f"no retrain needed: {key} was already retrained by {claimed_by}",
            "key": key,
        }
    if reasons:
        return {"retrain": True, "reason": "; ".join(reasons), "key": key}
    assert reference is not None and result is not None
    age_days = reference.age_seconds(now) / 86400
    return {
        "retrain": False,
        "reason": f"no retrain needed: {result.summary()}; champion v{reference.version} is {age_days:.1f} days old "
        f"(max_model_age {settings.max_model_age})",
        "key": key,
    }


def _log_monitoring_run(
    mlflow: MlflowClient,
    experiment_id: str,
    *,
    files: dict[str, str],
    result: DriftResult | None,
    reference: Reference | None,
    decision: dict[str, Any],
    pipeline: str,
    run_id: str,
) -> str:
    """A run per drift check in the pipeline's experiment: its figures, files and decision."""
    tags = {
        "mlflow.runName": f"drift-{run_id or time.strftime('%Y%m%dT%H%M%S')}",
        "mlops.monitoring": "drift",
        "mlops.pipeline": pipeline,
        "mlops.workflow": run_id or "local",
        "mlops.retrain_key": decision["key"],
        # a forced run is outside the nightly's bookkeeping: it trains, but claims no night
        "mlops.decision": decision.get("claim", "retrain" if decision["retrain"] else "skip"),
        "mlops.reason": decision["reason"][:5000],
    }
    if reference is not None:
        tags |= {"mlops.model": reference.model, "mlops.champion_version": str(reference.version)}
    run = mlflow.create_run(experiment_id, tags=tags)
    try:
        if result is not None:
            mlflow.log_metric(run.info.run_id, "drift_share", result.drift_share)
            for feature in result.features:
                if not math.isnan(feature.p_value):
                    mlflow.log_metric(run.info.run_id, f"p_value_{feature.feature}", feature.p_value)
        for path in files.values():
            if Path(path).is_file():
                mlflow.log_artifact(run.info.run_id, path, "drift")
        mlflow.set_terminated(run.info.run_id, "FINISHED")
    except Exception:
        mlflow.set_terminated(run.info.run_id, "FAILED")
        raise
    return str(run.info.run_id)


def check(
    current_data: str, *, settings: DriftSettings, model_name: str, reference_version: int | None = None
) -> tuple[Reference, pd.DataFrame, DriftResult]:
    """`mlops drift`: the champion's (or a version's) reference against a file; NoChampion if none."""
    categorical = tuple(settings.categorical_features)
    reference = find_reference(
        model_registry.client(),
        model_name,
        reference_version,
        categorical=categorical,
        sample_rows=settings.sample_rows,
    )
    current = read_window(
        current_data, reference.features, list(categorical), what="current data", limit=settings.sample_rows
    )
    result = compare(reference.window or reference.frame, current, features=reference.features, settings=settings)
    return reference, current.frame, result


def drift(
    current_data: str,
    table_out: str,
    report_out: str,
    plot_out: str,
    *,
    settings: DriftSettings,
    pipeline: str,
    model_name: str,
    experiment: str,
    outcomes: OutcomesSettings = OutcomesSettings(),  # noqa: B008  (frozen: one shared default is safe)
    namespace: str = "default",
    timezone: str = "UTC",
    force_retrain: bool = False,
    run_id: str = "",
    reference_version: int | None = None,
    logical_date: str = "",
) -> dict[str, Any]:
    """The pipeline's drift step: compare, write, log, push, and decide whether to retrain.

    A dated `current_data` is read for `logical_date` (components/dated_inputs.py).
    `namespace` (the run's, from the renderers) is not pushed: the namespace's own Pushgateway is
    scraped with its namespace (issue 29), so a pushed one could only forge another tenant's."""
    from components.dated_inputs import resolve

    now = dt.datetime.now(dt.UTC)
    mlflow = model_registry.client()
    categorical = tuple(settings.categorical_features)
    reference: Reference | None
    try:
        reference = find_reference(
            mlflow, model_name, reference_version, categorical=categorical, sample_rows=settings.sample_rows
        )
    except NoChampion:
        if reference_version is not None:
            raise
        reference = None
    window = read_window(resolve(current_data, logical_date, step=STEP), reference.features if reference else None,
                         list(categorical), what="current data", limit=settings.sample_rows)  # fmt: skip
    current = window.frame
    result = None
    if reference is not None:
        result = compare(reference.window or reference.frame, window, features=reference.features, settings=settings)
    key = retrain_key(pipeline, now, timezone)
    experiment_id = model_registry.experiment_id(
        mlflow, experiment, services.artifact_root(STEP, model_registry.tracking_uri())
    )
    claimed_by = (
        None
        if force_retrain
        else _claimed(mlflow, experiment_id, key, run_id, reference.registered_at if reference else None)
    )
    realized = None if reference is None else nightly_reason(mlflow, model_name, reference.version,
        reference.run_id, now=now, pipeline=pipeline, settings=outcomes)  # fmt: skip
    decision = decide(result=result, reference=reference, settings=settings, force=force_retrain, now=now,
                      claimed_by=claimed_by, key=key, realized=realized)  # fmt: skip
    artifacts.write_json(table_out, table(result, decision, reference))
    write_report(result, report_out, decision["reason"])
    write_plot(result, reference, current, plot_out, settings.plotted_features)
    monitoring_run = _log_monitoring_run(
        mlflow,
        experiment_id,
        files={"table": table_out, "report": report_out, "plot": plot_out},
        result=result,
        reference=reference,
        decision=decision,
        pipeline=pipeline,
        run_id=run_id,
    )
    url = services.settings().pushgateway_url
    if url and result is not None and reference is not None:
        push_metrics(url, result, reference, pipeline=pipeline, now=now)
    return {
        "step": STEP,
        "retrain": decision["retrain"],
        "reason": decision["reason"],
        "retrain_key": key,
        "drift_share": result.drift_share if result is not None else 0.0,
        "detected": bool(result is not None and result.detected),
        "drifted_features": sum(f.drifted for f in result.features) if result is not None else 0,
        "champion_version": reference.version if reference is not None else 0,
        "monitoring_run": monitoring_run,
        "pushed": bool(url and result is not None),
    }


def hold(reason: str) -> dict[str, Any]:
    """The end of a run that does not retrain: the champion keeps serving, and the reason is said."""
    print(f"no retrain needed: the champion keeps serving ({reason.removeprefix('no retrain needed: ')})")
    return {"step": "hold", "retrain": False, "reason": reason}
