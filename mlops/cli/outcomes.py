"""`mlops outcomes`: late labels joined to the decision log (ingest), and each version's realized metrics.

Issue 32 item 3 (components/platform/outcomes.py: the join, the refusals, where outcomes are stored and
how the metrics are computed; components/platform/outcomes_gate.py: the push and the gate):

- `mlops outcomes ingest <pipeline> FILE [--log ROOT]`: a Parquet or CSV file of outcomes, keyed by
  decision_id or by the pipeline's entity column and event time, its label in the pipeline's label
  column; refused whole (exit 2) before anything is written when a key or the label is missing, one id
  carries two labels, or a label is outside the objective's domain.
- `mlops outcomes metrics <pipeline|model> --since D --until D [--json] [--push]`: per version and serving
  role, the labelled decisions and their realized metrics, and, for a pipeline, each against its gate
  (evaluate.gate_metric, evaluate.threshold; judged with outcomes.min_labelled labels). `--push` sends
  them to the namespace's Pushgateway, where ModelPerformanceDegraded reads them (a pipeline only: the
  alert is routed by it).

Exit 0 done, 2 bad input (permanent), 75 the store or the Pushgateway not answering (transient).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]

STEP = "outcomes"
_LOG_HELP = "the decision log's root (default: $MLOPS_HOME/decisions/, or the tenant's)"


def register(sub: Any, argv: list[str]) -> None:
    group = sub.add_parser("outcomes", help="late labels joined to the decision log, and realized metrics")
    commands = group.add_subparsers(dest="outcomes_command", required=True)
    ingest = commands.add_parser(
        "ingest", help="join a file of outcomes (by decision_id, or entity and event time) to the decision log"
    )
    ingest.add_argument("pipeline", help="a registered pipeline name or a package folder")
    ingest.add_argument("file", metavar="FILE", help="Parquet or CSV (by suffix), local or s3://")
    ingest.add_argument("--log", metavar="ROOT", help=_LOG_HELP)
    ingest.add_argument("--json", action="store_true", help="the summary as one JSON object")
    ingest.set_defaults(handler=_ingest)

    metrics = commands.add_parser("metrics", help="realized metrics per version and serving role over days")
    metrics.add_argument("target", metavar="PIPELINE|MODEL", help="a pipeline (judged against its gate) or a model")
    metrics.add_argument("--since", required=True, metavar="YYYY-MM-DD", help="the first day of decisions (UTC)")
    metrics.add_argument("--until", required=True, metavar="YYYY-MM-DD", help="the last day (UTC, included)")
    metrics.add_argument("--log", metavar="ROOT", help=_LOG_HELP)
    metrics.add_argument("--json", action="store_true", help="the same, as one JSON object")
    metrics.add_argument("--push", action="store_true", help="push them to the namespace's Pushgateway")
    metrics.set_defaults(handler=_metrics)


def _ingest(args: argparse.Namespace) -> int:
    from components.platform import decisions, outcomes
    from pipelines.local import declaration

    cfg = declaration(args.pipeline).config()
    root = decisions.decision_log_root(args.log, serving_namespace=cfg.promote.namespace)
    summary = outcomes.ingest(root, args.file, cfg)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    print(
        f"{summary['model']}: {summary['outcomes']} outcomes: {summary['joined']} joined to decisions,"
        f" {summary['stored']} stored, {summary['already_stored']} already stored,"
        f" {summary['unmatched']} matching no decision (keyed by {summary['keyed_by']}; log {root})"
    )
    print(f"  stored in {summary['stored_in']} ({len(summary['files'])} files)")
    if summary["unmatched"]:
        print(f"  matching no decision: {', '.join(summary['unmatched_examples'])}"
              f"{' and more' if summary['unmatched'] > len(summary['unmatched_examples']) else ''}")  # fmt: skip
    return 0


def _target(name: str) -> tuple[str, Any]:
    """(model, the pipeline's config or None) for a pipeline name or folder, else a model name."""
    from components.errors import ComponentError
    from pipelines.local import declaration

    try:
        pipeline = declaration(name)
    except ComponentError:  # no such pipeline: a model's name
        return name, None
    cfg = pipeline.config()  # a pipeline whose config is broken says so, never passes for a model
    return cfg.register_.model_name, cfg


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _metrics(args: argparse.Namespace) -> int:
    from components.errors import ComponentError
    from components.platform import decisions, outcomes, outcomes_gate

    model, cfg = _target(args.target)
    if args.push and cfg is None:
        raise ComponentError(
            STEP,
            f"--push needs a pipeline; {args.target!r} is none installed here",
            "name the pipeline (its owner is paged by it), e.g. mlops outcomes metrics fraud --push",
        )
    root = decisions.decision_log_root(args.log, serving_namespace=None if cfg is None else cfg.promote.namespace)
    rows = outcomes.realized(root, model, args.since, args.until)
    gate = None if cfg is None else {"metric": cfg.evaluate.gate_metric, "threshold": cfg.evaluate.threshold}
    least = None if cfg is None else cfg.outcomes.min_labelled
    for row in rows:
        margin = None if gate is None else outcomes_gate.gate_margin(row, gate["metric"], gate["threshold"])
        row["gate_margin"] = margin
        row["below_gate"] = margin is not None and margin < 0 and least is not None and row["labelled"] >= least
    pushed = ""
    if args.push and cfg is not None:
        gate_metric, threshold, least = cfg.evaluate.gate_metric, cfg.evaluate.threshold, cfg.outcomes.min_labelled
        pushed = outcomes_gate.push(rows, pipeline=cfg.pipeline, gate_metric=gate_metric, threshold=threshold,
                                    min_labelled=least)  # fmt: skip
    report = {"model": model, "since": args.since, "until": args.until, "log": root, "gate": gate,
              "min_labelled": least, "rows": rows, "pushed": pushed}  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
        return 0
    print(f"{model}: realized metrics of decisions from {args.since} to {args.until} ({root})")
    if gate is not None:
        print(f"  gate: {gate['metric']} {gate['threshold']}, judged with at least {least} labelled decisions")
    if not rows:
        print("  no labelled decisions (mlops outcomes ingest joins labels to the decisions)")
    for row in rows:
        names = outcomes.METRICS.get(row["objective"], ())
        figures = ", ".join(f"{name} {_figure(row.get(name))}" for name in names)
        flag = f"  BELOW GATE ({gate['metric'] if gate else ''})" if row["below_gate"] else ""
        print(f"  v{row['version']} {row['role']:<8} {row['labelled']} labelled: {figures}{flag}")
        for name, why in row["reasons"].items():
            print(f"      {name}: {why}")
    if args.push:
        print(f"  pushed to {pushed}" if pushed else "  not pushed: no Pushgateway configured (MLOPS_PUSHGATEWAY_URL)")
    return 0
