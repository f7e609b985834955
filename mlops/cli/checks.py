"""`mlops lint`, `doctor`: the manifests and the live configuration, checked against the platform's known failures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any, argv: list[str]) -> None:
    lint = sub.add_parser("lint", help="render every kustomize overlay and validate every object and policy")
    lint.add_argument("path", nargs="?", default="manifests")
    lint.add_argument(
        "--pipeline", help="lint a pipeline's rendered Argo objects instead (a registered name or a package folder)"
    )
    lint.set_defaults(handler=_lint)

    doctor = sub.add_parser("doctor", help="check the live configuration and endpoints for known failures, with fixes")
    doctor.add_argument(
        "--profile", choices=["embedded", "platform"], help="check as this profile (default: $MLOPS_PROFILE)"
    )
    doctor.add_argument("--manifests", help="also check rendered objects: a kustomize folder or YAML files")
    doctor.add_argument("--planned-writers", type=int, default=50, help="parallel DB writers you plan (default 50)")
    doctor.set_defaults(handler=_doctor)


def _lint(args: argparse.Namespace) -> int:
    import tempfile

    from mlops.lint import lint

    with tempfile.TemporaryDirectory(prefix="mlops-lint-") as tmp:
        paths = [Path(args.path)]
        if args.pipeline:
            from pipelines.golden import write_renderings
            from pipelines.local import declaration

            pipeline = declaration(args.pipeline)
            from pipelines.placeholders import refuse_placeholders

            refuse_placeholders(pipeline.name, pipeline.folder)  # exit 2 while a `mlops new` placeholder is left
            paths = write_renderings(pipeline.name, pipeline, Path(tmp), targets=["argo"])
        checked, findings = 0, list[Any]()
        for path in paths:
            count, found = lint(path)
            checked, findings = checked + count, findings + found
    for finding in findings:
        print(f"FAIL {finding}")
    print(f"{checked} objects checked, {len(findings)} findings")
    return 1 if findings else 0


def _doctor(args: argparse.Namespace) -> int:
    import os

    from mlops.doctor import FAIL, Context, diagnose, load_objects

    env = dict(os.environ)
    if args.profile == "platform":
        env["MLOPS_PROFILE"] = "platform"
    objects = load_objects(Path(args.manifests)) if args.manifests else []
    findings = diagnose(Context(env=env, objects=objects, planned_writers=args.planned_writers))
    width = max(len(finding.check) for finding in findings)
    for finding in findings:
        print(f"{finding.status:<5} {finding.check:<{width}}  {finding.detail}")
        if finding.fix and finding.status != "ok":
            print(f"{'':<5} {'':<{width}}  fix: {finding.fix}")
    failed = [finding.check for finding in findings if finding.status == FAIL]
    print(f"{len(findings)} checks, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
