"""`mlops drift`, `skew-check`: data and features now against what the champion was trained on.

`mlops drift`: the data a file holds against the champion's training set, as the nightly compares it;
`mlops skew-check`: the features the scoring path reads now against what training saw.
"""

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

    skew = sub.add_parser(
        "skew-check",
        help="online features (as scoring reads them) against Feast's point-in-time offline features, and the "
        "model's score both ways; exit 0 in step, 1 skew, 2 bad input",
    )
    skew.add_argument("pipeline")
    skew.add_argument("--alias", default="challenger", help="the model version by alias (default: challenger)")
    skew.add_argument("--version", type=int, help="the model version by number")
    skew.add_argument("--sample", type=int, default=200, help="entities to check, each at its latest event")
    skew.add_argument("--tolerance", type=float, default=1e-9, help="relative tolerance of a float feature")
    skew.add_argument("--store-dir", help="the feature store folder (default: the profile's)")
    skew.set_defaults(handler=_skew)


def _number(value: float | None) -> str:
    if value is None:
        return "inf"
    return "nan" if math.isnan(value) else f"{value:.4g}"


def _drift(args: argparse.Namespace) -> int:
    import datetime as dt

    from components import artifacts
    from components.environment import mlops_home
    from components.errors import ComponentError
    from components.platform import services
    from components.steps import drift, drift_metrics, drift_report
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
    artifacts.write_json(out / "drift.json", drift_report.table(result, decision, reference))
    drift_report.write_report(result, str(out / "report.html"), result.summary())
    drift_report.write_plot(result, reference, current, str(out / "drifted_features.png"), cfg.drift.plotted_features)
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
        drift_metrics.push_metrics(url, result, reference, pipeline=cfg.pipeline, now=now)
        print(f"pushed to {url}")
    return DRIFT_EXIT_CODE if result.detected else 0


def _skew(args: argparse.Namespace) -> int:
    import tempfile

    from components.platform import model_registry
    from components.steps import skew
    from components.steps.materialize import open_store
    from components.steps.model_formats import load_predictor
    from pipelines.local import declaration

    cfg = declaration(args.pipeline).config()
    m = cfg.materialize
    mlflow = model_registry.client()
    model = cfg.register_.model_name
    number = model_registry.resolve_version(
        mlflow, model, version=args.version, alias=None if args.version else args.alias
    )
    registration, model_bytes = model_registry.load_registration(mlflow, model, number)
    with tempfile.TemporaryDirectory(prefix="mlops-skew-") as tmp:
        path = Path(tmp) / registration["model_file"]
        path.write_bytes(model_bytes)
        metadata: Any = {"format": registration["model_format"], "objective": registration["objective"],
                         "features": registration["features"]}  # fmt: skip
        predict = load_predictor(path, metadata)
        report = skew.check(
            open_store(m.project, args.store_dir),
            m.feature_service,
            entity_column=m.entity_column,
            timestamp_column=m.timestamp_column,
            request_features=m.request_features,
            model_features=registration["features"],
            predict=predict,
            settings=cfg.scoring,
            sample=args.sample,
            tolerance=args.tolerance,
        )
    print(f"{model} v{number}, feature service {report.feature_service} ({report.project}): {report.entities} entities,"
          f" each at its latest event")  # fmt: skip
    for name in report.features:
        found = next((s for s in report.skewed if s.feature == name), None)
        verdict = f"SKEW in {found.mismatches} of {report.entities}, e.g. {found.examples[0]}" if found else "in step"
        print(f"  {name:<28} {verdict}")
    if report.missing_online:
        print(f"  {report.missing_online} entities have no online features (not materialized, or expired)")
    print(f"  score, online vs offline vector: max difference {report.score_max_difference:.3g}")
    if report.passed:
        print("in step: online features equal the point-in-time features training used")
        return 0
    print("SKEW: re-materialize the online store (mlops materialize --rebuild) or retrain on the edited views")
    return 1
