"""`mlops compile`, `golden`, `submit`, `status`, `schedule`: a pipeline rendered for Argo or KFP, sent to its server.

`--engine argo` (the default) speaks to the Argo server (mlops/argo_client.py); `--engine kfp` to
Kubeflow Pipelines through kfp.Client (mlops/kfp_client.py), with the same run inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError
from mlops.cli.common import pairs

if TYPE_CHECKING:
    from mlops.argo_client import Connection

__all__ = ["add_server_flags", "argo_connection", "register"]


def register(sub: Any, argv: list[str]) -> None:
    compile_ = sub.add_parser("compile", help="render a pipeline for an orchestrator")
    compile_.add_argument("pipeline")
    compile_.add_argument("--target", choices=["argo", "kfp"], default="argo")
    compile_.add_argument("--out", default="build")
    compile_.set_defaults(handler=_compile)

    golden = sub.add_parser(
        "golden",
        help="write a pipeline's golden Argo and KFP YAML beside its declaration, or --check that they are current",
    )
    golden.add_argument("pipeline", help="a registered name or a package folder (./churn_pipeline)")
    golden.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each stale file")
    golden.set_defaults(handler=_golden)

    submit = sub.add_parser("submit", help="submit a pipeline to an Argo server, or Kubeflow Pipelines (--engine kfp)")
    submit.add_argument("pipeline")
    submit.add_argument("-p", "--parameter", action="append", metavar="KEY=VALUE", help="override a pipeline input")
    submit.add_argument(
        "--force-retrain",
        action="store_true",
        help="train even when the drift step finds no drift and the champion is young (-p force-retrain=true)",
    )
    submit.add_argument(
        "--no-cache",
        action="store_true",
        help="run every step, even those whose inputs are unchanged (a fresh -p cache-salt=...)",
    )
    submit.add_argument(
        "--date",
        metavar="YYYY-MM-DD",
        help="the run's logical date, which fills a dated cluster.raw_data (-p logical-date=...); "
        "the Argo Workflow is labelled with it",
    )
    submit.add_argument("--wait", action="store_true", help="follow the run; exit non-zero unless it succeeds")
    submit.add_argument("--dry-run", action="store_true", help="print what would be sent, send nothing")
    submit.add_argument("--install-template", action="store_true", help="create or update the WorkflowTemplate first")
    submit.add_argument("--poll-seconds", type=float, default=5.0)
    add_server_flags(submit)
    submit.set_defaults(handler=_submit)

    status = sub.add_parser("status", help="a workflow as the controller lowered it (or a KFP run: state, tasks)")
    status.add_argument("workflow", help="the Argo workflow's name, or the KFP run's id with --engine kfp")
    status.add_argument("--json", action="store_true")
    status.add_argument("--wait", action="store_true", help="follow it; exit 0 on success, 1 on failure")
    status.add_argument("--poll-seconds", type=float, default=5.0)
    add_server_flags(status)
    status.set_defaults(handler=_status)

    schedule = sub.add_parser(
        "schedule", help="create or update the pipeline's nightly CronWorkflow (or KFP recurring run, --engine kfp)"
    )
    schedule.add_argument("pipeline")
    schedule.add_argument("--cron", help="schedule (default: cluster.schedule.cron in the config)")
    schedule.add_argument("--timezone", help="IANA timezone (default: cluster.schedule.timezone)")
    schedule.add_argument("--dry-run", action="store_true")
    add_server_flags(schedule)
    schedule.set_defaults(handler=_schedule)


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=["argo", "kfp"],
        default="argo",
        help="the orchestrator: Argo Workflows, or Kubeflow Pipelines through kfp.Client",
    )
    parser.add_argument(
        "--server",
        help="Argo server host:port or URL (default: $ARGO_SERVER); with --engine kfp the KFP API ($KFP_HOST)",
    )
    parser.add_argument(
        "--namespace", help="namespace (default: $ARGO_NAMESPACE or, for kfp, $KFP_NAMESPACE; then the pipeline's)"
    )
    parser.add_argument(
        "--token-from",
        choices=["argo", "kubeconfig"],
        help="take the token from `argo auth token` or the kubeconfig instead of $ARGO_TOKEN ($KFP_TOKEN for kfp)",
    )
    parser.add_argument(
        "--insecure-skip-verify",
        action="store_true",
        help="skip TLS verification (default: $ARGO_INSECURE_SKIP_VERIFY)",
    )


def _compile(args: argparse.Namespace) -> int:
    from pipelines.golden import write_renderings
    from pipelines.local import declaration, git_commit

    pipeline = declaration(args.pipeline)
    written = write_renderings(pipeline.name, pipeline, Path(args.out), targets=[args.target], git_sha=git_commit())
    print(json.dumps({"target": args.target, "written": [str(p) for p in written]}))
    return 0


def _golden(args: argparse.Namespace) -> int:
    from pipelines.golden import drift, golden_dir, write_renderings
    from pipelines.local import declaration

    pipeline, folder = declaration(args.pipeline), golden_dir(args.pipeline)
    if args.check:
        stale = drift(args.pipeline)
        if stale:
            print(f"{pipeline.name}: golden files out of date in {folder}: {', '.join(stale)}")
            print(f"  run `mlops golden {args.pipeline}` and review the diff (a library upgrade shows up here)")
            return 1
        print(f"{pipeline.name}: golden files in {folder} match a fresh rendering")
        return 0
    for path in write_renderings(pipeline.name, pipeline, folder):
        print(path)
    return 0


def argo_connection(args: argparse.Namespace, default_namespace: str | None = None) -> Connection:
    from mlops.argo_client import connect

    return connect(
        server=args.server,
        token=None,
        namespace=args.namespace,
        insecure_skip_verify=True if args.insecure_skip_verify else None,
        token_from=args.token_from,
        default_namespace=default_namespace,
    )


def _submit_parameters(values: list[str] | None) -> dict[str, str]:
    from pipelines.declaration import RunInputs

    declared = {name.replace("_", "-") for name in RunInputs.names()}
    given = {key.replace("_", "-"): value for key, value in pairs(values, "-p").items()}
    unknown = sorted(set(given) - declared)
    if unknown:
        raise ComponentError(
            "submit", f"parameter(s) {unknown} are not declared by the pipeline", f"use one of {sorted(declared)}"
        )
    return given


def _submit_date(text: str | None, given: str | None) -> str | None:
    """The run input logical-date from `--date` (as YYYY-MM-DD) or `-p logical-date`, checked here
    rather than in the pod; the two naming different days are refused. None: an undated run."""
    from components.dated_inputs import logical_date

    if text is None:
        if given is not None:
            logical_date(given, step="submit")
        return given
    day = logical_date(text, step="submit")
    if day is None:
        raise ComponentError("submit", "--date is empty", "pass --date YYYY-MM-DD, or leave it out for an undated run")
    if given is not None and logical_date(given, step="submit") != day:
        raise ComponentError(
            "submit",
            f"--date {text} and -p logical-date={given} name different days",
            "pass the date once: --date YYYY-MM-DD",
        )
    return day.isoformat()


def _submit(args: argparse.Namespace) -> int:
    from mlops import argo_client
    from pipelines.argo import render, workflow
    from pipelines.local import declaration, git_commit

    pipeline = declaration(args.pipeline)
    cfg = pipeline.config()
    parameters = _submit_parameters(args.parameter)
    day = _submit_date(args.date, parameters.get("logical-date"))
    if day is not None:
        parameters["logical-date"] = day
    if args.force_retrain:
        parameters["force-retrain"] = "true"
    if args.no_cache:
        import secrets

        parameters["cache-salt"] = secrets.token_hex(6)
    sha = git_commit()
    if args.engine == "kfp":
        from mlops.cli.kfp_engine import submit

        return submit(args, pipeline, cfg, parameters, sha)
    run = workflow(pipeline, cfg, git_sha=sha, parameters=parameters).to_dict()
    template = render(pipeline, cfg, git_sha=sha)["WorkflowTemplate"]
    if args.dry_run:
        connection = None
        with contextlib.suppress(ComponentError):  # a dry run needs no server
            connection = argo_connection(args, cfg.cluster.namespace)
        namespace = connection.namespace if connection else args.namespace or cfg.cluster.namespace
        plan = []
        if args.install_template:
            plan.append(
                {"method": "POST", "path": f"/api/v1/workflow-templates/{namespace}", "body": {"template": template}}
            )
        plan.append({"method": "POST", "path": f"/api/v1/workflows/{namespace}", "body": {"workflow": run}})
        print(json.dumps({"connection": connection.redacted() if connection else None, "requests": plan}, indent=2))
        return 0
    connection = argo_connection(args, cfg.cluster.namespace)
    if args.install_template:
        outcome = argo_client.upsert(connection, "WorkflowTemplate", template)
        print(f"WorkflowTemplate {args.pipeline} {outcome} in {connection.namespace}")
    name = argo_client.submit(connection, run)
    print(f"submitted {name} in {connection.namespace}: {argo_client.ui_link(connection, name)}")
    if not args.wait:
        return 0
    final = argo_client.wait(connection, name, poll_seconds=args.poll_seconds)
    print(f"\n{'step':<16} {'phase':<10} resourcesDuration")
    for step, phase, resources in argo_client.chargeback(final):
        print(f"{step:<16} {phase:<10} " + ", ".join(f"{k}={v}" for k, v in sorted(resources.items())))
    phase = final.get("status", {}).get("phase")
    if phase != "Succeeded":
        print(
            f"{name} ended {phase}: {final.get('status', {}).get('message', '')}  (mlops status {name})",
            file=sys.stderr,
        )
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    from mlops import argo_client

    if args.engine == "kfp":
        from mlops.cli.kfp_engine import status

        return status(args)
    connection = argo_connection(args)
    if args.wait:
        final = argo_client.wait(connection, args.workflow, poll_seconds=args.poll_seconds)
        print(argo_client.format_status(final))
        return 0 if final.get("status", {}).get("phase") == "Succeeded" else 1
    document = argo_client.get_workflow(connection, args.workflow)
    if args.json:
        print(json.dumps(argo_client.node_rows(document), indent=2))
    else:
        print(argo_client.format_status(document))
    return 0


def _schedule(args: argparse.Namespace) -> int:
    from mlops import argo_client
    from pipelines.argo import cron_workflow
    from pipelines.local import declaration, git_commit

    pipeline = declaration(args.pipeline)
    cfg = pipeline.config()
    if args.engine == "kfp":
        from mlops.cli.kfp_engine import schedule

        return schedule(args, pipeline, cfg, git_commit())
    document = cron_workflow(pipeline, cfg, git_sha=git_commit(), cron=args.cron, timezone=args.timezone).to_dict()
    if args.dry_run:
        print(json.dumps(document, indent=2))
        return 0
    connection = argo_connection(args, cfg.cluster.namespace)
    outcome = argo_client.upsert(connection, "CronWorkflow", document)
    spec = document["spec"]
    print(
        f"CronWorkflow {document['metadata']['name']} {outcome} in {connection.namespace}: "
        f"{spec['schedules'][0]} ({spec['timezone']}), concurrency {spec['concurrencyPolicy']}, "
        f"catches up missed runs within {spec['startingDeadlineSeconds']}s"
    )
    return 0
