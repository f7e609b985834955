"""`mlops submit|schedule|status --engine kfp`: the Kubeflow Pipelines side of cluster.py's commands.

Parsing stays in cluster.py (one set of flags for both engines); this module compiles the IR,
prints what a dry run would send, and prints what kfp.Client answered (mlops/kfp_client.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.config import PipelineConfig
from components.errors import ComponentError
from pipelines.declaration import PipelineDeclaration

if TYPE_CHECKING:
    from mlops.kfp_client import Connection

__all__ = ["compiled", "kfp_connection", "schedule", "status", "submit"]


def kfp_connection(args: argparse.Namespace, default_namespace: str | None = None) -> Connection:
    from mlops import kfp_client

    return kfp_client.connect(
        server=args.server,
        namespace=args.namespace,
        token_from=args.token_from,
        insecure_skip_verify=bool(args.insecure_skip_verify),
        default_namespace=default_namespace,
    )


@contextlib.contextmanager
def compiled(pipeline: PipelineDeclaration, cfg: PipelineConfig, git_sha: str) -> Iterator[Any]:
    """The pipeline's cluster IR in a temporary file, as the upload it becomes."""
    from mlops.kfp_client import Upload, version_name
    from pipelines.kfp import compile_ir

    with tempfile.TemporaryDirectory(prefix="mlops-kfp-") as folder:
        package = Path(folder) / f"{pipeline.name}.yaml"
        compile_ir(pipeline, cfg, str(package), cluster=True)
        yield Upload(
            pipeline=pipeline.name,
            description=pipeline.description,
            package=package,
            version=version_name(pipeline.name, package, git_sha),
        )


def _dry_run(args: argparse.Namespace, cfg: PipelineConfig, upload: Any, request: dict[str, Any]) -> int:
    from mlops.kfp_client import ir_digest

    connection = None
    with contextlib.suppress(ComponentError):  # a dry run needs no server
        connection = kfp_connection(args, cfg.cluster.namespace)
    namespace = connection.namespace if connection else args.namespace or cfg.cluster.namespace
    plan = [
        {
            "upload": "POST /apis/v2beta1/pipelines/upload (or upload_version when the pipeline exists)",
            "pipeline": upload.pipeline,
            "namespace": namespace,
            "version": upload.version,
            "ir_sha256": ir_digest(upload.package),
        },
        {"experiment": upload.pipeline, "namespace": namespace},
        request,
    ]
    print(json.dumps({"connection": connection.redacted() if connection else None, "requests": plan}, indent=2))
    return 0


def submit(
    args: argparse.Namespace,
    pipeline: PipelineDeclaration,
    cfg: PipelineConfig,
    parameters: dict[str, str],
    git_sha: str,
) -> int:
    from mlops import kfp_client

    typed = kfp_client.run_parameters(parameters, git_sha=git_sha)
    if args.install_template:
        print(
            "--install-template has nothing to install on KFP: every submit uploads or versions the IR", file=sys.stderr
        )
    with compiled(pipeline, cfg, git_sha) as upload:
        name = f"{pipeline.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        if args.dry_run:
            run = {"run": "POST /apis/v2beta1/runs", "display_name": name, "runtime_config": {"parameters": typed}}
            return _dry_run(args, cfg, upload, run)
        connection = kfp_connection(args, cfg.cluster.namespace)
        created = kfp_client.create_run(kfp_client.client(connection), connection, upload, name, typed)
    print(
        f"pipeline {pipeline.name} {created['pipeline']} (version {created['version_id']}); "
        f"submitted run {created['run_id']} in {connection.namespace}: "
        f"{connection.host}/#/runs/details/{created['run_id']}"
    )
    if not args.wait:
        return 0
    from pipelines.resources import sized

    memory = {step.name: step.resources.memory for step in sized(pipeline.spec, cfg).steps}
    return _follow(connection, created["run_id"], args.poll_seconds, memory)


def _follow(
    connection: Connection, run_id: str, poll_seconds: float, memory: dict[str, str | None] | None = None
) -> int:
    """Wait for the run and print it; `memory` (each step's limit) goes into a killed-for-memory line."""
    from mlops import kfp_client

    final = kfp_client.wait(connection, run_id, poll_seconds=poll_seconds)
    print(kfp_client.format_run(final, memory))
    if final.get("state") != "SUCCEEDED":
        print(f"{run_id} ended {final.get('state')}  (mlops status {run_id} --engine kfp)", file=sys.stderr)
        return 1
    return 0


def status(args: argparse.Namespace) -> int:
    from mlops import kfp_client

    connection = kfp_connection(args)
    if args.wait:
        return _follow(connection, args.workflow, args.poll_seconds)
    document = kfp_client.get_run(connection, args.workflow)
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    else:
        print(kfp_client.format_run(document))
    return 0


def schedule(args: argparse.Namespace, pipeline: PipelineDeclaration, cfg: PipelineConfig, git_sha: str) -> int:
    from components.dated_inputs import is_dated
    from mlops import kfp_client

    if is_dated(cfg.cluster.raw_data):
        raise ComponentError(
            "schedule",
            f"cluster.raw_data {cfg.cluster.raw_data!r} is dated, and a KFP recurring run cannot hand a v2 run "
            "its scheduled time: KFP leaves parameter macros such as [[ScheduledTime]] unexpanded for v2 "
            "pipelines (kubeflow/pipelines#12494), so every night would read the same unfilled template",
            f"schedule it on Argo (mlops schedule {pipeline.name}: its CronWorkflow passes "
            f"{{{{workflow.scheduledTime}}}}), or submit each day from your scheduler: "
            f"mlops submit {pipeline.name} --engine kfp --date YYYY-MM-DD",
        )
    timezone = args.timezone or cfg.cluster.schedule.timezone
    cron = kfp_client.kfp_cron(args.cron or cfg.cluster.schedule.cron, timezone)
    typed = kfp_client.run_parameters({}, git_sha=git_sha)
    name = f"{pipeline.name}-nightly"
    with compiled(pipeline, cfg, git_sha) as upload:
        if args.dry_run:
            request = {
                "recurring_run": "POST /apis/v2beta1/recurringruns",
                "display_name": name,
                "cron": cron,
                "timezone": timezone,
                "max_concurrency": 1,
                "no_catchup": True,
                "runtime_config": {"parameters": typed},
            }
            return _dry_run(args, cfg, upload, request)
        connection = kfp_connection(args, cfg.cluster.namespace)
        made = kfp_client.ensure_recurring_run(kfp_client.client(connection), connection, upload, name, cron, typed)
    print(
        f"recurring run {name} {made['outcome']} in {connection.namespace} ({made['recurring_run_id']}): "
        f"cron {cron!r} in {timezone}, one run at a time, no backfill; pipeline {made['pipeline']}"
    )
    return 0
