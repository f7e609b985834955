"""`mlops promote <model> --analyze`: judge the live canary on its decisions, then apply the verdict.

Issue 32 item 4. The serving history says which version is the canary, which the champion and when
the canary began (the window starts there unless --since says otherwise); the decision log holds what
each decided; components/steps/canary_analysis.py compares them and gives the verdict with its evidence.
The verdict goes through the lifecycle `mlops promote` always uses (mlops/rollout.py `execute`: render,
admission, apply, history, aliases), never a path of its own:

- promote: `--promote` of the canary (production: the sign-off rules apply, components/steps/promote_signoff.py);
- rollback: `--rollback` of the canary;
- either carries the sign-off recorded when the canary started (its history entry's `signed_off_by`) unless
  --signed-off-by names one: the analysis applies an approval, it never gives one (promote_identity.py);
- wait: nothing moves; a `wait` entry is appended to the serving history (ServingState ignores it).

Each history entry carries the evidence (`evidence`) and the reason names the verdict's reasons.
`--dry-run` prints the verdict and its evidence and changes nothing anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError
from components.platform import model_registry
from components.steps.canary_analysis import Verdict, analyze, canary_start, realized_hook, serving_hook
from mlops import rollout

if TYPE_CHECKING:
    from components.config import PromoteSettings

__all__ = ["STEP", "parse_since", "recorded_sign_off", "run", "started_as", "verdict_for"]

STEP = "promote"


def parse_since(value: str) -> dt.datetime:
    """--since as a day (YYYY-MM-DD, its midnight UTC) or an ISO time (UTC when it names no zone)."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise ComponentError(
            STEP, f"--since {value!r} is not a date or time", "write YYYY-MM-DD or an ISO time"
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def recorded_sign_off(entries: list[model_registry.HistoryEntry], canary: int) -> str:
    """The sign-off recorded with the live canary of `canary`: its current run's latest canary entry that
    carries one (a ramp may repeat it), "" when none did (staging, or a history edited by hand)."""
    found = ""
    for entry in entries:
        if entry.action == "canary" and entry.to_version == canary:
            found = entry.signed_off_by or found
        elif entry.action in ("promote", "rollback") or entry.action == "canary":
            found = ""  # a run ended, or another version's canary began
    return found


def started_as(
    model: str, request: rollout.Request, target: rollout.Target, state: rollout.ServingState
) -> tuple[str | None, str]:
    """The stage the live canary serves in and its sign-off, which its verdict keeps: a production canary
    is promoted or rolled back in production, never relabelled by a config that says staging.

    On a cluster both come from the live InferenceService (its stage label, and the sign-off admission
    held to the identity that applied it), not from the registry's history, whose tags the tenant's MLflow
    user can write. Elsewhere (GitOps, dry run) from the history: a canary that recorded a sign-off was
    started in production. (None, "") when neither says."""
    from components.steps.promote import annotation

    if target.kind == "kubernetes":
        live = target.live(request.settings.namespace, model) or {}
        metadata = live.get("metadata", {})
        stage = metadata.get("labels", {}).get(annotation("stage"))
        signed = metadata.get("annotations", {}).get(annotation("signed-off-by"), "")
        return stage, (signed if stage == "production" else "")
    if state.canary is None:
        return None, ""
    recorded = recorded_sign_off(model_registry.history(model_registry.client(), model), state.canary)
    return ("production" if recorded else None), recorded


def verdict_for(
    model: str,
    settings: PromoteSettings,
    *,
    log: str | None = None,
    since: str | None = None,
    prometheus: str | None = None,
) -> tuple[Verdict, rollout.ServingState]:
    """The verdict on `model`'s live canary over its window, from the history and the decision log (the
    error rate and p99 from Prometheus instead when --prometheus or promote.prometheus_url names one)."""
    from components.platform import decisions

    mlflow = model_registry.client()
    entries = model_registry.history(mlflow, model)
    state = rollout.ServingState.replay(entries)
    if state.canary is None or state.champion is None:
        raise ComponentError(
            STEP,
            f"{model}: no canary is live ({state.describe()}), so there is nothing to analyze",
            f"start one: mlops promote {model} --canary <percent> --version <version>",
        )
    start = parse_since(since) if since else canary_start(entries, state.canary)
    if start is None:  # a history without the canary's own entry (edited by hand)
        raise ComponentError(STEP, f"{model}: the history names no start for canary v{state.canary}",
                             "pass --since YYYY-MM-DD")  # fmt: skip
    until = dt.datetime.now(dt.UTC)
    root = decisions.decision_log_root(log, serving_namespace=settings.namespace)
    table = decisions.between(root, model, start.date().isoformat(), until.date().isoformat())
    hook = realized_hook()

    def realized() -> Any:  # [] with nothing labelled yet; a store that fails says so, never "no outcomes"
        return hook(root, model, start.isoformat(), until.isoformat())

    verdict = analyze(
        table, champion=state.champion, canary=state.canary, since=start, until=until, settings=settings,
        realized=realized, serving=serving_hook(root, model, settings, start, until, prometheus or ""),
    )  # fmt: skip
    return verdict, state


def run(
    model: str,
    request: rollout.Request,
    target: rollout.Target,
    *,
    log: str | None = None,
    since: str | None = None,
    as_json: bool = False,
    prometheus: str | None = None,
) -> int:
    """Analyze, print, and (unless the target is a dry run) apply the verdict through rollout.execute."""
    verdict, state = verdict_for(model, request.settings, log=log, since=since, prometheus=prometheus)
    report: dict[str, Any] = {"model": model, "verdict": verdict.action, "reasons": list(verdict.reasons),
                              "evidence": verdict.evidence, "before": state.describe(), "applied": None}  # fmt: skip
    reason = f"canary analysis: {verdict.action}: " + "; ".join(verdict.reasons)
    if target.kind == "dry-run":
        pass
    elif verdict.action == "wait":
        entry = model_registry.HistoryEntry(
            action="wait", to_version=state.canary, from_version=state.champion, traffic_percent=state.canary_percent,
            who=model_registry.who(), reason=reason, namespace=request.settings.namespace, applied="nothing",
            evidence=verdict.evidence,
        )  # fmt: skip
        model_registry.append_history(model_registry.client(), model, entry)
        report["applied"] = asdict(entry)
    else:
        request.action, request.reason, request.evidence = verdict.action, request.reason or reason, verdict.evidence
        stage, signed_off_by = started_as(model, request, target, state)
        request.stage = request.stage or stage
        if request.signed_off_by is None:
            request.signed_off_by = signed_off_by or None  # none: the config's, as before
        outcome = rollout.execute(request, target)
        report["applied"] = None if outcome.entry is None else asdict(outcome.entry)
        report["after"] = outcome.after.describe()
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
        return 0
    for line in verdict.describe():
        print(f"{model}: {line}")
    if report["applied"] is None:
        print(f"{model}: dry run: the verdict is not applied or recorded", file=sys.stderr)
    else:
        print(f"{model}: {verdict.action} recorded in the serving history ({report.get('after', state.describe())})")
    return 0
