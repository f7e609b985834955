"""`mlops drift`: the data a file holds against the champion's training set, as the nightly compares it."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

DRIFT_EXIT_CODE = 3
"""`mlops drift` found drift: distinct from 0 (none) and 2 (bad input), so a script can branch on it."""


def register(sub: Any, argv: list[str]) -> None:
    drift = sub.add_parser(
        "drift",
        help="compare a dataset with the champion's training set (KS / chi-squared); exit 0 none, 3 drift, 2 bad input",
    )
    drift.add_argument("pipeline")
    drift.add_argument("--current", required=True, help="the data to compare: Parquet or CSV, a path or s3:// URI")
    drift.add_argument("--reference-version", type=int, help="compare with this version (default: the champion)")
    drift.add_argument("--out", help="where the report goes (default: $MLOPS_HOME/drift/<pipeline>-<time>)")
    drift.add_argument(
        "--push", action="store_true", help="push the figures to the Pushgateway (MLOPS_PUSHGATEWAY_URL) as well"
    )
    drift.set_defaults(handler=_drift)


def _number(value: float | None) -> str:
    if value is None:
        return "inf"
    return "nan" if math.isnan(value) else f"{value:.4g}"


def _drift(args: argparse.Namespace) -> int:
    import datetime as dt

    from components import artifacts, drift, services
    from components.environment import mlops_home
    from components.errors import ComponentError
    from pipelines.local import declaration

    cfg = declaration(args.pipeline).config()
    model = cfg.register_.model_name
    try:
        reference, current, result = drift.check(
            args.current, settings=cfg.drift, model_name=model, reference_version=args.reference_version
        )
    except drift.NoChampion as error:
        raise ComponentError("drift", error.problem, error.fix) from error
    out = Path(args.out) if args.out else mlops_home() / "drift" / f"{args.pipeline}-{time.strftime('%Y%m%d-%H%M%S')}"
    decision = {"retrain": result.detected, "reason": result.summary(), "key": ""}
    artifacts.write_json(out / "drift.json", drift.table(result, decision, reference))
    drift.write_report(result, str(out / "report.html"), result.summary())
    drift.write_plot(result, reference, current, str(out / "drifted_features.png"), cfg.drift.plotted_features)
    print(
        f"{model} v{reference.version} (run {reference.run_id}): {result.reference_rows} reference rows, "
        f"{result.current_rows} current rows"
    )
    print(f"{'feature':<28} {'method':<10} {'statistic':>10} {'p-value':>10}  drifted")
    for feature in result.features:
        mark = "DRIFT" if feature.drifted else "-"
        new = f"  new categories {feature.new_categories}" if feature.new_categories else ""
        print(
            f"{feature.feature:<28} {feature.method:<10} {_number(feature.statistic):>10} "
            f"{_number(feature.p_value):>10}  {mark}{new}"
        )
    verdict = "DRIFT" if result.detected else "no drift"
    print(f"{verdict}: {result.summary()} (p < {cfg.drift.p_value_threshold})")
    print(f"report: {out / 'report.html'}  plot: {out / 'drifted_features.png'}  table: {out / 'drift.json'}")
    if args.push:
        url = services.settings().pushgateway_url
        if not url:
            raise ComponentError("drift", "--push without a Pushgateway", "set MLOPS_PUSHGATEWAY_URL")
        now = dt.datetime.now(dt.UTC)
        drift.push_metrics(url, result, reference, namespace=cfg.cluster.namespace, pipeline=cfg.pipeline, now=now)
        print(f"pushed to {url}")
    return DRIFT_EXIT_CODE if result.detected else 0
