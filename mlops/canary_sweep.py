"""`mlops canary-analysis`: every live canary of a namespace judged once its window has passed (issue 32 item 4).

What the tenant's hourly CronWorkflow runs (pipelines/canary_cron.py), as the namespace's `canary-analyst`
ServiceAccount, inside the cluster; on a laptop the same command runs against a kubeconfig, a GitOps
folder (--out) or nothing (--dry-run). For each registered model the tenant's MLflow identity can see:

- no live canary, or one served in another namespace: nothing to do, and it says so;
- a canary younger than its pipeline's `promote.canary_window`: left alone, with the time it is due;
- otherwise `mlops promote <model> --analyze` (mlops/canary.py): the verdict, promote, rollback or wait,
  applied through the same lifecycle and recorded in the serving history with its evidence.

One model's failure does not stop the others: each is reported, and the exit code is the worst class
seen (75 when any failure may pass on a retry, the CronWorkflow's retry class; 2 when any is permanent;
0 otherwise). The window is the pipeline's own, read from the version's `pipeline` tag like every
promotion's settings (mlops/rollout.py settings_for), so a team changes it in its config, not here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from components.config import duration_seconds
from components.errors import ComponentError, TransientError
from components.platform import model_registry
from components.steps.canary_analysis import canary_start
from mlops import rollout

if TYPE_CHECKING:
    from components.config import PipelineConfig

__all__ = ["Finding", "RequestFor", "exit_code", "sweep"]

RequestFor = Callable[["PipelineConfig", str], rollout.Request]
"""Builds the promotion request for a model from its pipeline's config (the CLI's, shared with promote)."""


@dataclass(frozen=True)
class Finding:
    """One model's turn: what was done (`analyzed`, `not-due`, `no-canary`, `elsewhere`, `failed`) and why."""

    model: str
    status: str
    detail: str
    retryable: bool = False


def _due(model: str, namespace: str, now: dt.datetime) -> tuple[Finding | None, str | None]:
    """(a finding that ends this model's turn, or None and the pipeline name) from the serving history."""
    mlflow = model_registry.client()
    entries = model_registry.history(mlflow, model)
    state = rollout.ServingState.replay(entries)
    if state.canary is None or state.champion is None:
        return Finding(model, "no-canary", state.describe()), None
    started = [e for e in entries if e.action == "canary" and e.to_version == state.canary]
    if started and started[-1].namespace and started[-1].namespace != namespace:
        return Finding(model, "elsewhere", f"its canary v{state.canary} serves in {started[-1].namespace}"), None
    return None, mlflow.get_model_version(model, str(state.canary)).tags.get("pipeline")


def sweep(
    namespace: str,
    target: rollout.Target,
    request_for: RequestFor,
    *,
    models: list[str] | None = None,
    now: dt.datetime | None = None,
    prometheus: str | None = None,
) -> list[Finding]:
    """Judge each due canary in `namespace` (every model the registry shows, or `models`); each version's
    error rate and p99 from `prometheus` when given (as `mlops promote --analyze --prometheus`)."""
    from mlops import canary

    moment = now or dt.datetime.now(dt.UTC)
    mlflow = model_registry.client()
    names = models if models is not None else model_registry.model_names(mlflow)
    findings: list[Finding] = []
    for model in names:
        try:
            finding, pipeline = _due(model, namespace, moment)
            if finding is not None:
                findings.append(finding)
                continue
            cfg = rollout.settings_for(mlflow, model, None, None, pipeline)
            entries = model_registry.history(mlflow, model)
            state = rollout.ServingState.replay(entries)
            assert state.canary is not None
            start = canary_start(entries, state.canary)
            window = dt.timedelta(seconds=duration_seconds(cfg.promote.canary_window))
            if start is not None and moment - start < window:
                due = (start + window).isoformat(timespec="seconds")
                detail = f"canary v{state.canary} started {start.isoformat(timespec='seconds')}; due {due}"
                findings.append(
                    Finding(model, "not-due", f"{detail} (promote.canary_window {cfg.promote.canary_window})")
                )
                continue
            canary.run(model, request_for(cfg, model), target, prometheus=prometheus)
            findings.append(Finding(model, "analyzed", f"canary v{state.canary} judged"))
        except ComponentError as error:  # TransientError too: one model's failure is its own
            findings.append(Finding(model, "failed", str(error), retryable=isinstance(error, TransientError)))
    return findings


def exit_code(findings: list[Finding]) -> int:
    """75 if any failure may pass on a retry, else 2 if any failed, else 0."""
    failed = [f for f in findings if f.status == "failed"]
    if any(f.retryable for f in failed):
        return 75
    return 2 if failed else 0
