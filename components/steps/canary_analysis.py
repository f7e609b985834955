"""Canary analysis: does the canary decide like the champion, on the decisions of the canary window?

Issue 32 item 4 (`mlops promote <model> --analyze`, mlops/canary.py applies the verdict). From the
decision log (components/platform/decisions.py) over the canary window, the canary's decisions and the
champion's, told apart by the version that answered (`model_version`: in Standard mode one transformer
fronts both predictors, so `serving_role` cannot tell them apart; the counts per role are reported):

- the score distributions: the two-sample Kolmogorov-Smirnov statistic (scipy.stats.ks_2samp) and the
  population stability index of the canary's scores on the champion's deciles;
- the realized metrics, where labels exist (`components.platform.outcomes.realized`, per version and
  role; with none labelled, "no outcomes yet");
- the error rate (5xx answers per 100 requests) and the p99 latency per version, from the request
  outcomes the transformer records beside the decision log, or from Prometheus
  (components/platform/serving_figures.py: `serving`). "not measured", with why, only when there is
  nothing for a version; requests no version can be named for are reported as `unattributed`.

The verdict, in this order: `wait` while either version has fewer than promote.analysis_min_decisions
decisions in the window; `rollback` when KS exceeds promote.analysis_max_ks, PSI exceeds
promote.analysis_max_psi, or, with promote.analysis_min_labelled labelled decisions each, the canary's
realized metric is worse than the champion's by more than promote.analysis_max_realized_drop, or, with
promote.analysis_min_requests requests each, the canary's error rate exceeds the champion's by more than
promote.analysis_max_error_rate_increase percentage points or its p99 is more than
promote.analysis_max_p99_ratio times the champion's; else `promote`. The evidence (every figure, the
thresholds, the reasons) is a JSON-able dict the serving history records with the step.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.config import PromoteSettings
from components.errors import ComponentError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from components.platform.serving_figures import ServingFigures

__all__ = [
    "NOT_MEASURED_SERVING",
    "PSI_FLOOR",
    "STEP",
    "VERDICTS",
    "RealizedHook",
    "Verdict",
    "analyze",
    "canary_start",
    "compare_scores",
    "judge_serving",
    "population_stability_index",
    "realized_hook",
    "serving_hook",
]

STEP = "promote"
VERDICTS = ("promote", "rollback", "wait")
PSI_FLOOR = 1e-4
"""A bin's share is at least this in the PSI, so an empty bin weighs a large, finite amount."""
NOT_MEASURED_SERVING = {
    "latency_p99": "not measured: the request outcomes were not read",
    "error_rate": "not measured: the request outcomes were not read",
}
"""What the evidence says when the analysis is given no serving figures at all (`serving` None)."""
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "brier": False, "mae": False}
"""The realized metric judged, first found in this order, and its direction; mae's drop is relative."""

RealizedHook = Callable[[str, str, str, str], Any]
"""`realized(root, model, since, until)`: rows per (version, serving role) with `labelled` and metrics."""


@dataclass(frozen=True)
class Verdict:
    action: str
    reasons: tuple[str, ...]
    evidence: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> list[str]:
        e = self.evidence
        lines = [f"verdict: {self.action}: " + "; ".join(self.reasons)]
        for role in ("champion", "canary"):
            side = e[role]
            mean = "-" if side["mean_score"] is None else f"{side['mean_score']:.4f}"
            roles = ", ".join(f"{name} {count}" for name, count in side["by_role"].items()) or "none"
            lines.append(f"  {role:<9} v{side['version']}: {side['decisions']} decisions ({roles}), mean score {mean}")
        if "ks" in e:
            lines.append(f"  KS {e['ks']:.4f} (max {e['thresholds']['max_ks']}), PSI {e['psi']:.4f} "
                         f"(max {e['thresholds']['max_psi']})")  # fmt: skip
        lines.append(f"  realized  {_text(e['realized'])}")
        lines += [f"  {key:<9} {e[key]}" for key in ("latency_p99", "error_rate")]
        return lines


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return ", ".join(f"{role} {figures}" for role, figures in value.items())


def population_stability_index(champion: np.ndarray, canary: np.ndarray, bins: int = 10) -> float:
    """PSI of the canary's scores on bins cut at the champion's quantiles (deciles by default):
    sum over bins of (canary share - champion share) * ln(canary share / champion share)."""
    import numpy as np

    edges = np.unique(np.quantile(champion, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, champion, side="right"), minlength=len(edges) + 1) / len(champion)
    actual = np.bincount(np.searchsorted(edges, canary, side="right"), minlength=len(edges) + 1) / len(canary)
    expected, actual = np.maximum(expected, PSI_FLOOR), np.maximum(actual, PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def compare_scores(champion: np.ndarray, canary: np.ndarray) -> dict[str, float]:
    """KS statistic and p-value, and PSI on the champion's deciles."""
    from scipy.stats import ks_2samp

    result = ks_2samp(champion, canary)
    return {
        "ks": float(result.statistic),
        "ks_pvalue": float(result.pvalue),
        "psi": population_stability_index(champion, canary),
    }


def canary_start(entries: Sequence[Any], canary: int) -> dt.datetime | None:
    """When the live canary of `canary` began: the first canary entry of its current run (ramps keep
    it; a rollback or promotion ends a run), from the serving history's entries."""
    start: dt.datetime | None = None
    for entry in entries:
        if entry.action == "canary" and entry.to_version == canary:
            start = start or dt.datetime.fromisoformat(entry.at)
        elif entry.action in ("promote", "rollback") or (entry.action == "canary" and entry.to_version != canary):
            start = None
    return start


def realized_hook() -> RealizedHook:
    """The outcomes module's `realized` (components/platform/outcomes.py), imported when judged."""
    from components.platform.outcomes import realized

    hook: RealizedHook = realized
    return hook


def serving_hook(
    log_root: str, model: str, settings: PromoteSettings, since: dt.datetime, until: dt.datetime, prometheus: str = ""
) -> Callable[[], ServingFigures]:
    """The window's request figures per version: from Prometheus when `prometheus` (--prometheus) or
    promote.prometheus_url names one, else from the decision log's request outcomes at `log_root`."""
    from components.platform import serving_figures

    url = prometheus or settings.prometheus_url

    def read() -> ServingFigures:
        if url:
            return serving_figures.from_prometheus(url, namespace=settings.namespace, model=model, since=since,
                                                   until=until)  # fmt: skip
        return serving_figures.from_log(log_root, model, since, until)

    return read


def _rows(found: Any) -> list[dict[str, Any]]:
    """A realized answer as dicts: a DataFrame, a pyarrow table, or a sequence of mappings/objects."""
    if hasattr(found, "to_dict") and hasattr(found, "columns"):
        return [dict(row) for row in found.to_dict("records")]
    if hasattr(found, "to_pylist"):
        return [dict(row) for row in found.to_pylist()]
    return [dict(row) if isinstance(row, Mapping) else dict(vars(row)) for row in found or []]


def _labelled(row: Mapping[str, Any]) -> int:
    for key in ("labelled", "n_labelled", "labelled_decisions", "n"):
        if row.get(key) is not None:
            return int(row[key])
    return 0


def _per_version(rows: list[dict[str, Any]], version: int) -> dict[str, Any] | None:
    """The version's row with the most labelled decisions (in Standard mode every role is champion)."""
    mine = [r for r in rows if str(r.get("version", r.get("model_version"))) == str(version)]
    return max(mine, key=_labelled) if mine else None


def _realized(
    rows: list[dict[str, Any]], champion: int, canary: int, settings: PromoteSettings
) -> tuple[dict[str, Any], str | None]:
    """(evidence, a rollback reason or None) from the realized rows of both versions."""
    sides = {"champion": _per_version(rows, champion), "canary": _per_version(rows, canary)}
    evidence: dict[str, Any] = {}
    for role, row in sides.items():
        if row is None:
            evidence[role] = "no labelled decisions"
            continue
        metrics = {
            k: row[k] for k in HIGHER_IS_BETTER if isinstance(row.get(k), int | float) and not math.isnan(row[k])
        }
        evidence[role] = {"labelled": _labelled(row), **metrics}
    both = [s for s in sides.values() if s is not None]
    if len(both) < 2 or min(_labelled(s) for s in both) < settings.analysis_min_labelled:
        evidence["judged"] = f"no: fewer than {settings.analysis_min_labelled} labelled decisions for a version"
        return evidence, None
    old, new = evidence["champion"], evidence["canary"]
    metric = next((m for m in HIGHER_IS_BETTER if m in old and m in new), None)
    if metric is None:
        evidence["judged"] = "no: no realized metric both versions have"
        return evidence, None
    drop = old[metric] - new[metric] if HIGHER_IS_BETTER[metric] else new[metric] - old[metric]
    if metric == "mae":
        drop = drop / old[metric] if old[metric] else math.inf
    evidence["judged"] = f"{metric}: canary worse by {drop:.4f} (max {settings.analysis_max_realized_drop})"
    if drop > settings.analysis_max_realized_drop:
        return evidence, f"realized {metric} {new[metric]:.4f} vs the champion's {old[metric]:.4f}"
    return evidence, None


def _side(table: pa.Table, version: int) -> tuple[np.ndarray, dict[str, Any]]:
    import numpy as np
    import pyarrow.compute as pc

    rows = table.filter(pc.equal(table.column("model_version"), str(version)))
    scores = np.asarray([s for s in rows.column("score").to_pylist() if s is not None], dtype="float64")
    roles = rows.column("serving_role").to_pylist()
    return scores, {
        "version": version,
        "decisions": rows.num_rows,
        "scored": len(scores),
        "by_role": {role: roles.count(role) for role in sorted(set(roles))},
        "mean_score": float(scores.mean()) if len(scores) else None,
    }


def analyze(
    table: pa.Table,
    *,
    champion: int,
    canary: int,
    since: dt.datetime,
    until: dt.datetime,
    settings: PromoteSettings,
    realized: Callable[[], Any] | None = None,
    serving: Callable[[], ServingFigures] | None = None,
) -> Verdict:
    """The verdict on the decisions in `table` made from `since` to `until` (the canary window), with its
    evidence; `realized` returns the realized rows over the window, or None (no outcomes yet); `serving`
    the request figures per version over the window (from the log or Prometheus)."""
    import pyarrow.compute as pc

    if champion == canary:
        raise ComponentError(STEP, f"v{canary} is the champion, not a canary", "analyze a live canary")
    window = pc.and_(
        pc.greater_equal(table.column("decided_at"), since), pc.less_equal(table.column("decided_at"), until)
    )
    table = table.filter(window)
    old_scores, old = _side(table, champion)
    new_scores, new = _side(table, canary)
    thresholds = {
        "min_decisions": settings.analysis_min_decisions,
        "max_ks": settings.analysis_max_ks,
        "max_psi": settings.analysis_max_psi,
        "min_labelled": settings.analysis_min_labelled,
        "max_realized_drop": settings.analysis_max_realized_drop,
        "min_requests": settings.analysis_min_requests,
        "max_error_rate_increase": settings.analysis_max_error_rate_increase,
        "max_p99_ratio": settings.analysis_max_p99_ratio,
    }
    evidence: dict[str, Any] = {
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "champion": old,
        "canary": new,
        "thresholds": thresholds,
        **NOT_MEASURED_SERVING,
    }
    found = None if realized is None else realized()
    if found is None:
        evidence["realized"] = "no outcomes yet (`mlops outcomes ingest` joins labels to the decisions)"
        realized_reason = None
    else:
        evidence["realized"], realized_reason = _realized(_rows(found), champion, canary, settings)
    serving_reasons: list[str] = []
    if serving is not None:
        served, serving_reasons = judge_serving(serving(), champion, canary, settings)
        evidence |= served
    least = settings.analysis_min_decisions
    short = [
        f"{side['scored']} {role}" for role, side in (("champion", old), ("canary", new)) if side["scored"] < least
    ]
    if short:
        return _verdict(
            "wait", (f"{' and '.join(short)} scored decisions in the window, fewer than {least}",), evidence
        )
    evidence |= compare_scores(old_scores, new_scores)
    ks, psi = evidence["ks"], evidence["psi"]
    max_ks, max_psi = settings.analysis_max_ks, settings.analysis_max_psi
    against = [f"KS {ks:.4f} > {max_ks}"] if ks > max_ks else []
    against += [f"PSI {psi:.4f} > {max_psi}"] if psi > max_psi else []
    against += [realized_reason] if realized_reason else []
    against += serving_reasons
    if against:
        return _verdict("rollback", tuple(against), evidence)
    passed = f"KS {ks:.4f} <= {max_ks}, PSI {psi:.4f} <= {max_psi}"
    passed += "".join(f", {evidence[key].split(': ', 1)[1]}" for key in ("error_rate", "latency_p99")
                      if evidence[key].startswith("judged: "))  # fmt: skip
    return _verdict("promote", (passed,), evidence)


def _verdict(action: str, reasons: tuple[str, ...], evidence: dict[str, Any]) -> Verdict:
    return Verdict(action=action, reasons=reasons, evidence={**evidence, "verdict": action, "reasons": list(reasons)})


def judge_serving(
    figures: ServingFigures, champion: int, canary: int, settings: PromoteSettings
) -> tuple[dict[str, Any], list[str]]:
    """The serving evidence (`serving`, `error_rate`, `latency_p99`) and the rollback reasons it gives:
    judged only with analysis_min_requests requests for each version, else reported with why."""
    versions = {"champion": champion, "canary": canary}
    sides = {role: figures.versions.get(str(version)) for role, version in versions.items()}
    shown: dict[str, Any] = {
        role: {"version": versions[role], **(side.as_evidence() if side else {"requests": 0})}
        for role, side in sides.items()
    }
    shown |= {"source": figures.source, "unattributed": figures.unattributed.as_evidence(),
              "attributed_by_serving": figures.attributed_by_serving}  # fmt: skip
    evidence: dict[str, Any] = {"serving": shown}
    absent = [f"v{versions[role]}" for role, side in sides.items() if side is None or not side.requests]
    old, new = sides["champion"], sides["canary"]
    if figures.missing or absent or old is None or new is None:
        why = f"not measured: {figures.missing or 'no requests of ' + ' or '.join(absent) + ' in the window'}"
        return evidence | dict.fromkeys(("error_rate", "latency_p99"), f"{why} ({figures.source})"), []
    increase = (new.error_rate or 0.0) - (old.error_rate or 0.0)
    max_increase, max_ratio = settings.analysis_max_error_rate_increase, settings.analysis_max_p99_ratio
    rates = (
        f"canary {new.error_rate:.2f}% vs champion {old.error_rate:.2f}% ({increase:+.2f} points, max +{max_increase})"
    )
    ratio, p99 = None, "no p99 for a version"
    if old.p99_ms and new.p99_ms is not None:
        ratio = new.p99_ms / old.p99_ms
        p99 = f"canary {new.p99_ms:.1f} ms vs champion {old.p99_ms:.1f} ms (ratio {ratio:.2f}, max {max_ratio})"
    least = min(old.requests, new.requests)
    if least < settings.analysis_min_requests:
        note = f"reported, not judged: {least} requests for a version, fewer than {settings.analysis_min_requests}: "
        return evidence | {"error_rate": note + rates, "latency_p99": note + p99}, []
    reasons = [f"error rate {rates}"] if increase > max_increase else []
    reasons += [f"p99 {p99}"] if ratio is not None and ratio > max_ratio else []
    return evidence | {"error_rate": f"judged: error rate {rates}", "latency_p99": f"judged: p99 {p99}"}, reasons
