"""`mlops`: run a reference pipeline locally, run one step, compile, make data.

Thin by design: argument parsing and printing here; the work is in pipelines/ and components/.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import shlex
import sys
import tempfile
import time
import typing
from pathlib import Path
from typing import Any

import components  # noqa: F401  (applies the air-gapped defaults before anything else loads)
from components.errors import ComponentError

STEPS = {
    "validate": "components.validate:validate",
    "materialize": "components.materialize:materialize",
    "train": "components.train:train",
    "evaluate": "components.evaluate:evaluate",
    "register": "components.register:register",
    "promote": "components.promote:promote",
    "notify": "components.notify:notify",
    "notify-failure": "components.notify:notify_failure",
}


def _component(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _flag_type(annotation: Any) -> tuple[Any, str]:
    """argparse type and metavar for a component parameter's annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType) else annotation
    if typing.get_origin(base) is list:
        return (lambda text: [item for item in text.split(",") if item]), "A,B,..."
    if base is dict or typing.get_origin(base) is dict:
        return json.loads, "JSON"
    if base in (int, float):
        return base, base.__name__.upper()
    return str, "VALUE"


def _add_step_parsers(subparsers: Any) -> None:
    import inspect

    for name, target in STEPS.items():
        function = _component(target)
        hints = typing.get_type_hints(function)
        doc = (function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else ""
        parser = subparsers.add_parser(name, help=doc, description=doc)
        for parameter in inspect.signature(function).parameters.values():
            flag = "--" + parameter.name.replace("_", "-")
            annotation = hints.get(parameter.name, str)
            required = parameter.default is inspect.Parameter.empty
            if annotation is bool:
                parser.add_argument(
                    flag,
                    dest=parameter.name,
                    action=argparse.BooleanOptionalAction,
                    default=None if required else parameter.default,
                    required=required,
                )
                continue
            convert, metavar = _flag_type(annotation)
            parser.add_argument(
                flag,
                dest=parameter.name,
                type=convert,
                metavar=metavar,
                required=required,
                default=None if required else parameter.default,
            )
        parser.set_defaults(handler=_run_step, target=target)


def _run_step(args: argparse.Namespace) -> int:
    """One component, as a task runs it: same summary line, same exit codes, same in-step retries."""
    from pipelines.runtime import run_step

    kwargs = {k: v for k, v in vars(args).items() if k not in ("handler", "target", "command", "step")}
    run_step(args.target, **kwargs)
    return 0


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ComponentError(
                "run", f"--set {pair!r} is not key=value", "write e.g. --set train.model_type=pytorch_mlp"
            )
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _run_pipeline(args: argparse.Namespace) -> int:
    import os

    from components.environment import mlops_home
    from mlops.progress import StepProgress, run_streaming
    from pipelines.local import declaration

    if args.home:
        os.environ["MLOPS_HOME"] = str(Path(args.home).resolve())
    home = mlops_home()
    module = declaration(args.pipeline)
    overrides = _parse_overrides(args.set or [])
    for flag, key in (
        ("rows", "data.rows"),
        ("seed", "data.seed"),
        ("model_type", "train.model_type"),
        ("min_auc", "evaluate.threshold"),
        ("gate_threshold", "evaluate.threshold"),
    ):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    cfg = module.config(Path(args.config) if args.config else None)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = home / "logs" / f"{args.pipeline}-{stamp}.log"
    data_note = args.data or f"synthetic, {cfg.data.rows} rows, seed {cfg.data.seed}"
    retry_note = "declared retry policies" if args.retries else "no retries: fail fast (--retries to apply them)"
    print(f"{args.pipeline}: running on embedded defaults under {home} ({data_note}; {retry_note})")
    progress = StepProgress(lambda line: print(line, flush=True))
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            "pipelines.local",
            args.pipeline,
            "--config-json",
            json.dumps(cfg.model_dump(by_alias=True)),
            "--result",
            str(result_path),
        ]
        if args.data:
            command += ["--data", str(Path(args.data).resolve())]
        if args.retries:
            command.append("--retries")
        started = time.perf_counter()
        code = run_streaming(command, log_path, progress, args.verbose)
        seconds = time.perf_counter() - started
        result = json.loads(result_path.read_text()) if result_path.exists() else {"ok": False, "outputs": {}}
    _print_summary(args.pipeline, result, progress, seconds, log_path)
    if code == 0 and result.get("ok"):
        return 0
    return progress.failure_exit_code or 1  # the failed step's class: 2 permanent, 75 transient


def _print_summary(pipeline: str, result: dict[str, Any], progress: Any, seconds: float, log_path: Path) -> None:
    s = progress.summaries
    outputs = result.get("outputs", {})
    status = "SUCCESS" if result.get("ok") else "FAILED"
    print(f"\n{pipeline}: {status} in {seconds:.1f}s")
    if "validate" in s:
        v = s["validate"]
        print(f"  validation   passed: {v['evaluated_expectations']} expectations on {v['rows']} rows")
    if "materialize" in s:
        m = s["materialize"]
        print(
            f"  materialize  {m['training_rows']} training / {m['holdout_rows']} holdout rows; online store: "
            f"{m['online_rows_in_window']} rows, {m['online_entities_written']} entities (watermark {m['watermark']})"
        )
    if "train" in s:
        t = s["train"]
        print(
            f"  train        {t['model_type']} on {t['device']}: {t['training_rows']} rows in {t['train_seconds']}s "
            f"({t['rows_per_second']:.0f} rows/s)"
        )
    if "evaluate" in s:
        e = s["evaluate"]
        verdict = "passed" if e["passed"] else "FAILED"
        shown = ("roc_auc", "pr_auc", "log_loss", "rmse", "mae", "mape", "r2")
        numbers = ", ".join(f"{key} {e[key]:.4f}" for key in shown if key in e)
        direction = ">=" if e["gate_metric"] in ("roc_auc", "pr_auc", "r2") else "<="
        print(f"  evaluate     {numbers}; gate {e['gate_metric']} {direction} {e['threshold']}: {verdict}")
    if "register" in s:
        r = s["register"]
        how = "reused (same artifact sha256)" if r["reused"] else "new"
        print(f"  register     {r['model_name']} version {r['version']} ({how}), alias {r['alias']}")
    if "promote" in s:
        p = s["promote"]
        print(
            f"  promote      InferenceService ({p['canary_percent']}% canary): "
            f"{outputs.get('promote', {}).get('inference_service')}"
        )
        print(f"               Triton model repository: {outputs.get('promote', {}).get('model_repository')}")
        print(f"               storageUri: {p['storage_uri']}")
    if "notify" in s:
        n = s["notify"]
        print(
            f"  notify       gate failed ({n['metric']} {n['value']:.4f} vs {n['threshold']}): nothing registered; "
            f"notice for {n['owner']}: {outputs.get('notify', {}).get('notice_markdown')}"
        )
    if not result.get("ok") and progress.errors:
        print("  error        " + "\n               ".join(progress.errors))
    print(f"  outputs      {result.get('run_dir', '-')}")
    print(f"  log          {log_path}")


def _buckets(args: argparse.Namespace) -> int:
    from components import artifacts, buckets

    ensured = buckets.ensure(artifacts.s3_client())
    print(json.dumps({"buckets": ensured, "lifecycle": buckets.LIFECYCLE["Rules"]}))
    return 0


def _compile(args: argparse.Namespace) -> int:
    from pipelines.golden import write_renderings
    from pipelines.local import declaration, git_commit

    module = declaration(args.pipeline)
    written = write_renderings(args.pipeline, module, Path(args.out), targets=[args.target], git_sha=git_commit())
    print(json.dumps({"target": args.target, "written": [str(p) for p in written]}))
    return 0


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ComponentError("task", f"{flag} {item!r} is not NAME=VALUE", f"write {flag} name=value")
        pairs[key] = value
    return pairs


def _task(args: argparse.Namespace) -> int:
    from components.errors import PERMANENT_EXIT_CODE
    from pipelines.task import run_task

    try:
        run_task(
            args.pipeline,
            args.step,
            _pairs(args.input, "--input"),
            _pairs(args.param, "--param"),
            Path(args.outputs_dir),
        )
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(f"error: {stop.code}", file=sys.stderr)
            return PERMANENT_EXIT_CODE
        raise
    return 0


def _data(args: argparse.Namespace) -> int:
    from components import artifacts

    data = importlib.import_module(f"pipelines.{args.pipeline}.data")
    frame = data.generate(args.rows, args.seed)
    artifacts.write_parquet(args.out, frame)
    label = "is_fraud" if "is_fraud" in frame else frame.columns[-1]
    print(json.dumps({"rows": len(frame), "positive_rate": round(float(frame[label].mean()), 5), "out": args.out}))
    return 0


def _connection(args: argparse.Namespace, default_namespace: str | None = None) -> Any:
    from mlops.argo_client import connect

    return connect(
        server=args.server,
        token=None,
        namespace=args.namespace,
        insecure_skip_verify=True if args.insecure_skip_verify else None,
        token_from=args.token_from,
        default_namespace=default_namespace,
    )


def _submit_parameters(pairs: list[str] | None) -> dict[str, str]:
    from pipelines.kfp import RUN_INPUTS

    declared = {name.replace("_", "-") for name in RUN_INPUTS}
    given = {key.replace("_", "-"): value for key, value in _pairs(pairs, "-p").items()}
    unknown = sorted(set(given) - declared)
    if unknown:
        raise ComponentError(
            "submit", f"parameter(s) {unknown} are not declared by the pipeline", f"use one of {sorted(declared)}"
        )
    return given


def _submit(args: argparse.Namespace) -> int:
    from mlops import argo_client
    from pipelines.argo import render, workflow
    from pipelines.local import declaration, git_commit

    module = declaration(args.pipeline)
    cfg = module.config()
    parameters = _submit_parameters(args.parameter)
    sha = git_commit()
    run = workflow(module.SPEC, cfg, git_sha=sha, parameters=parameters).to_dict()
    template = render(module.SPEC, cfg, module, git_sha=sha)["WorkflowTemplate"]
    if args.dry_run:
        connection = None
        with contextlib.suppress(ComponentError):  # a dry run needs no server
            connection = _connection(args, cfg.cluster.namespace)
        namespace = connection.namespace if connection else args.namespace or cfg.cluster.namespace
        plan = []
        if args.install_template:
            plan.append(
                {"method": "POST", "path": f"/api/v1/workflow-templates/{namespace}", "body": {"template": template}}
            )
        plan.append({"method": "POST", "path": f"/api/v1/workflows/{namespace}", "body": {"workflow": run}})
        print(json.dumps({"connection": connection.redacted() if connection else None, "requests": plan}, indent=2))
        return 0
    connection = _connection(args, cfg.cluster.namespace)
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

    connection = _connection(args)
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

    module = declaration(args.pipeline)
    cfg = module.config()
    document = cron_workflow(module.SPEC, cfg, git_sha=git_commit(), cron=args.cron, timezone=args.timezone).to_dict()
    if args.dry_run:
        print(json.dumps(document, indent=2))
        return 0
    connection = _connection(args, cfg.cluster.namespace)
    outcome = argo_client.upsert(connection, "CronWorkflow", document)
    spec = document["spec"]
    print(
        f"CronWorkflow {document['metadata']['name']} {outcome} in {connection.namespace}: "
        f"{spec['schedules'][0]} ({spec['timezone']}), concurrency {spec['concurrencyPolicy']}, "
        f"catches up missed runs within {spec['startingDeadlineSeconds']}s"
    )
    return 0


def _new(args: argparse.Namespace) -> int:
    from pipelines.scaffold import scaffold

    target = scaffold(args.name, source=args.source)
    print(json.dumps({"created": str(target), "next": f"mlops run {args.name}"}))
    return 0


def _lint(args: argparse.Namespace) -> int:
    from mlops.lint import lint

    checked, findings = lint(Path(args.path))
    for finding in findings:
        print(f"FAIL {finding}")
    print(f"{checked} objects checked, {len(findings)} findings")
    return 1 if findings else 0


def _stack(args: argparse.Namespace) -> Any:
    from devstack.stack import DEFAULT_PORT_BASE, Ports, Stack, default_root

    root = Path(args.dir) if args.dir else default_root()
    existing = Stack.load(root)
    tenancy = bool(getattr(args, "tenancy", False))
    if existing is not None and args.port_base is None:
        if tenancy and not existing.mlflow_auth:
            existing.mlflow_auth = True
        return existing
    return Stack(root=root, ports=Ports.from_base(args.port_base or DEFAULT_PORT_BASE), mlflow_auth=tenancy)


def _dev(args: argparse.Namespace) -> int:
    from devstack.stack import SERVICES

    stack = _stack(args)
    services = tuple(args.services.split(",")) if args.services else SERVICES
    unknown = sorted(set(services) - set(SERVICES))
    if unknown:
        raise ComponentError("dev", f"unknown services {unknown}", f"choose from {list(SERVICES)}")
    if args.action == "up":
        print(f"platform services under {stack.root}")
        stack.up(services, echo=True)
        print(f'use them: eval "$(mlops dev env --dir {stack.root})"; then `mlops run fraud` runs on them')
    elif args.action == "down":
        stopped = stack.down(services)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    elif args.action == "env":
        for key, value in stack.environment().items():
            print(f"export {key}={shlex.quote(value)}")
    else:
        rows = stack.status()
        for row in rows:
            state = "running" if row["running"] else "stopped"
            print(f"{row['service']:<10} {state:<8} pid {row['pid'] or '-':<8} {row['address']}  log {row['log']}")
        return 0 if all(row["running"] for row in rows if row["service"] in services) else 1
    return 0


def _materialize(args: argparse.Namespace) -> int:
    from components.materialize import rebuild_online
    from pipelines.local import declaration

    module = declaration(args.pipeline)
    project = module.config().materialize.project
    if not args.rebuild:
        raise ComponentError(
            "materialize",
            "nothing to do without --rebuild (the pipeline's materialize step moves the online store forward)",
            f"mlops materialize {args.pipeline} --rebuild",
        )
    started = time.perf_counter()
    summary = rebuild_online(project, store_dir=args.store_dir)
    for view in summary["rebuilt"]:
        span = f"{view['from']} to {view['to']}"
        print(f"rebuilt {view['view']}: {view['rows']} offline rows, {span}, from {view['source']}")
    print(f"online store of {project} rebuilt in {time.perf_counter() - started:.1f} s")
    return 0


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


def _tenant(args: argparse.Namespace) -> int:
    from devstack.tenants import add_tenant, get_tenant, load_tenants, tenant_environment

    stack = _stack(args)
    if args.action in ("add", "env") and not args.name:
        raise ComponentError("tenant", f"`mlops tenant {args.action}` needs a tenant name", "mlops tenant add fraud")
    if args.action == "add":
        tenant = add_tenant(stack, args.name)
        print(f"tenant {tenant.name}: S3 key {tenant.access_key} (prefix <bucket>/{tenant.name}/),"
              f" PostgreSQL role {tenant.name} (database feast_{tenant.name}, schema offline.{tenant.name}),"
              f" MLflow user {tenant.name} (experiment {tenant.name})")
        print(f'use it: eval "$(mlops tenant env {tenant.name} --dir {stack.root})"')
    elif args.action == "env":
        for key, value in tenant_environment(stack, get_tenant(stack, args.name)).items():
            print(f"export {key}={shlex.quote(value)}")
    else:
        for name in load_tenants(stack):
            print(name)
    return 0


def _isolation_check(args: argparse.Namespace) -> int:
    from devstack.tenants import get_tenant
    from mlops.isolation import DENIED, check

    stack = _stack(args)
    attempts = check(stack, get_tenant(stack, args.as_), get_tenant(stack, args.target))
    width = max(len(attempt.path) for attempt in attempts)
    print(f"{'path':<{width}}  expected  observed  detail")
    for attempt in attempts:
        print(f"{attempt.path:<{width}}  {attempt.expected:<8}  {attempt.observed:<8}  {attempt.detail}")
    bad = [attempt for attempt in attempts if attempt.observed != DENIED]
    denied = len(attempts) - len(bad)
    print(f"{len(attempts)} paths from {args.as_} into {args.target}: {denied} denied, {len(bad)} not")
    return 1 if bad else 0


def _serve(args: argparse.Namespace) -> int:
    from components.environment import mlops_home
    from devstack import process
    from devstack.triton import serve_registered

    root = Path(args.dir) if args.dir else mlops_home() / "serve" / args.model
    pid_file = root / "triton.pid"
    if args.stop:
        stopped = process.stop(pid_file, grace_seconds=10.0)
        print(f"{args.model}: {'stopped the server' if stopped else 'no server was running'} under {root}")
        return 0
    if process.alive(process.read_pid(pid_file)):
        raise ComponentError(
            "serve", f"a server already runs from {root}", f"mlops serve {args.model} --stop, or pass another --dir"
        )
    server, registration = serve_registered(
        args.model,
        root=root,
        version=args.version,
        alias=args.alias,
        port_base=args.port_base,
        instance_count=args.instances,
        max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.dynamic_batching_us,
        threads=args.threads,
    )
    where = server.describe()
    print(
        f"serving {args.model} v{registration['version']} ({registration['model_format']}, "
        f"{len(registration['features'])} FP32 features, sha256 {registration['artifact_sha256'][:12]}) "
        f"ready in {registration['load_seconds']:.1f} s"
    )
    for key in ("http", "grpc", "metrics", "log"):
        print(f"  {key:<8} {where[key]}")
    features = registration["features"]
    print(f"  inputs   INPUT__0 [n, {len(features)}] FP32 in order: {', '.join(features)}")
    score = "value" if registration["objective"] == "regression" else "P(positive)"
    print(f"  output   OUTPUT__0 [n, 1] FP32: {score}")
    if args.detach:
        print(f"stop it with: mlops serve {args.model} --stop" + (f" --dir {args.dir}" if args.dir else ""))
        return 0
    print("Ctrl-C stops it")
    try:
        while process.alive(server.pid):
            time.sleep(1.0)
        print(f"error: tritonserver exited; read {server.log}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _promote(args: argparse.Namespace) -> int:
    from components import registry
    from mlops import kube, rollout

    actions = [name for name, on in (("canary", args.canary is not None), ("promote", args.promote),
                                     ("rollback", args.rollback)) if on]
    if len(actions) != 1:
        raise ComponentError("promote", "choose exactly one of --canary N, --promote, --rollback",
                             f"e.g. mlops promote {args.model} --canary 10")
    mlflow = registry.client()
    registry.registered_model(mlflow, args.model)
    cfg = rollout.settings_for(
        mlflow, args.model, args.version, Path(args.config) if args.config else None, args.pipeline
    )
    if args.dry_run:
        target = rollout.Target(kind="dry-run", folder=Path(args.out) if args.out else None)
    elif args.out:
        target = rollout.Target(kind="gitops", folder=Path(args.out))
    else:
        path = kube.kubeconfig_path(args.kubeconfig)
        if path is None:
            raise ComponentError(
                "promote",
                "no kubeconfig (--kubeconfig, $KUBECONFIG or ~/.kube/config) and neither --out nor --dry-run",
                "point at the cluster, or write the manifest for GitOps with --out DIR, or preview with --dry-run",
            )
        target = rollout.Target(kind="kubernetes", cluster=kube.Cluster.from_kubeconfig(path, args.context))
    request = rollout.Request(
        action=actions[0],
        model=args.model,
        settings=cfg.promote,
        version=args.version,
        alias=args.alias,
        percent=args.canary,
        stage=args.stage,
        signed_off_by=args.signed_off_by,
        reason=args.reason or "",
        serving_root=args.serving_root,
        policies=Path(args.policies) if args.policies else rollout.POLICY_DIR,
        decision_threshold=cfg.evaluate.decision_threshold,
    )
    outcome = rollout.execute(request, target)
    report = sys.stderr if target.kind == "dry-run" and not args.out else sys.stdout
    print(f"{args.model}: before: {outcome.before.describe()}", file=report)
    if outcome.entry is None:
        print(f"{args.model}: dry run: admitted by every policy; nothing applied, recorded or moved", file=report)
        return 0
    print(f"{args.model}: {outcome.action} applied ({outcome.applied})", file=report)
    print(f"{args.model}: now: {outcome.after.describe()}; aliases "
          + ", ".join(f"{k}->v{v}" for k, v in sorted(outcome.aliases.items())), file=report)
    return 0


def _history(args: argparse.Namespace) -> int:
    from components import registry
    from mlops import rollout

    mlflow = registry.client()
    entries = registry.history(mlflow, args.model)
    if not entries:
        print(f"{args.model}: no serving history yet (mlops promote {args.model} --promote starts it)")
        return 0
    for line in rollout.render_history(entries):
        print(line)
    print(f"now: {rollout.ServingState.replay(entries).describe()}")
    return 0


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", help="Argo server host:port or URL (default: $ARGO_SERVER)")
    parser.add_argument("--namespace", help="namespace (default: $ARGO_NAMESPACE, then the pipeline's)")
    parser.add_argument(
        "--token-from",
        choices=["argo", "kubeconfig"],
        help="take the token from `argo auth token` or the kubeconfig instead of $ARGO_TOKEN",
    )
    parser.add_argument(
        "--insecure-skip-verify",
        action="store_true",
        help="skip TLS verification (default: $ARGO_INSECURE_SKIP_VERIFY)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a reference pipeline locally through kfp.local on embedded defaults")
    run.add_argument("pipeline")
    run.add_argument("--rows", type=int, help="rows of synthetic data (config: data.rows)")
    run.add_argument("--seed", type=int, help="seed of the synthetic data (config: data.seed)")
    run.add_argument("--data", help="a Parquet dataset to use instead of synthetic data")
    run.add_argument("--model-type", choices=["xgboost", "pytorch_mlp"])
    run.add_argument("--gate-threshold", type=float, help="the gate's threshold (config: evaluate.threshold)")
    run.add_argument("--min-auc", type=float, help="same as --gate-threshold, for pipelines gated on roc_auc")
    run.add_argument("--config", help="a config.yaml to use instead of the pipeline's own")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. train.seed=1")
    run.add_argument("--home", help="state folder (default: $MLOPS_HOME or ./.mlops)")
    run.add_argument(
        "--retries", action="store_true", help="apply each step's declared retry policy locally (default: fail fast)"
    )
    run.add_argument("--verbose", action="store_true", help="print kfp.local's whole output, not just progress")
    run.set_defaults(handler=_run_pipeline)

    step = sub.add_parser("step", help="run one component, as a pipeline task does")
    _add_step_parsers(step.add_subparsers(dest="step", required=True))

    buckets = sub.add_parser("buckets", help="create the platform buckets and their lifecycle (platform admins)")
    buckets.add_argument("action", choices=["ensure"])
    buckets.set_defaults(handler=_buckets)

    compile_ = sub.add_parser("compile", help="render a pipeline for an orchestrator")
    compile_.add_argument("pipeline")
    compile_.add_argument("--target", choices=["argo", "kfp"], default="argo")
    compile_.add_argument("--out", default="build")
    compile_.set_defaults(handler=_compile)

    submit = sub.add_parser("submit", help="submit a pipeline to an Argo server (settings as for the argo CLI)")
    submit.add_argument("pipeline")
    submit.add_argument("-p", "--parameter", action="append", metavar="KEY=VALUE", help="override a pipeline input")
    submit.add_argument("--wait", action="store_true", help="follow the run; exit non-zero unless it succeeds")
    submit.add_argument("--dry-run", action="store_true", help="print what would be sent, send nothing")
    submit.add_argument("--install-template", action="store_true", help="create or update the WorkflowTemplate first")
    submit.add_argument("--poll-seconds", type=float, default=5.0)
    _add_server_flags(submit)
    submit.set_defaults(handler=_submit)

    status = sub.add_parser("status", help="a workflow as the controller lowered it: nodes, artifact keys, resources")
    status.add_argument("workflow")
    status.add_argument("--json", action="store_true")
    _add_server_flags(status)
    status.set_defaults(handler=_status)

    schedule = sub.add_parser("schedule", help="create or update the pipeline's nightly CronWorkflow")
    schedule.add_argument("pipeline")
    schedule.add_argument("--cron", help="schedule (default: cluster.schedule.cron in the config)")
    schedule.add_argument("--timezone", help="IANA timezone (default: cluster.schedule.timezone)")
    schedule.add_argument("--dry-run", action="store_true")
    _add_server_flags(schedule)
    schedule.set_defaults(handler=_schedule)

    new = sub.add_parser("new", help="scaffold a new pipeline folder from a reference pipeline")
    new.add_argument("name")
    new.add_argument("--from", dest="source", default="fraud", help="the pipeline to copy (default: fraud)")
    new.set_defaults(handler=_new)

    lint = sub.add_parser("lint", help="render every kustomize overlay and validate every object and policy")
    lint.add_argument("path", nargs="?", default="manifests")
    lint.set_defaults(handler=_lint)

    task = sub.add_parser("task", help="run one step of a declared pipeline in a container (Argo templates call this)")
    task.add_argument("pipeline")
    task.add_argument("step")
    task.add_argument("--input", action="append", metavar="NAME=PATH", help="an input artifact's local path")
    task.add_argument("--param", action="append", metavar="NAME=VALUE", help="a parameter, as text")
    task.add_argument("--outputs-dir", required=True, help="where output artifacts and parameters are written")
    task.set_defaults(handler=_task)

    data = sub.add_parser("data", help="write a pipeline's synthetic dataset")
    data.add_argument("pipeline")
    data.add_argument("--rows", type=int, default=50_000)
    data.add_argument("--seed", type=int, default=7)
    data.add_argument("--out", required=True)
    data.set_defaults(handler=_data)

    dev = sub.add_parser("dev", help="start, stop or show the platform services on loopback (PostgreSQL, ...)")
    dev.add_argument("action", choices=["up", "down", "status", "env"])
    dev.add_argument("--dir", help="data, logs and pid files (default: $MLOPS_SERVICES_DIR or $MLOPS_HOME/services)")
    dev.add_argument("--port-base", type=int, help="first port; services take base..base+24 (default 15400)")
    dev.add_argument("--services", help="comma-separated subset of postgres,pgbouncer,redis,s3,mlflow")
    dev.add_argument(
        "--tenancy", action="store_true", help="run MLflow's basic-auth app (NO_PERMISSIONS by default) for tenants"
    )
    dev.set_defaults(handler=_dev)

    materialize = sub.add_parser("materialize", help="rebuild a pipeline's online store from its offline store")
    materialize.add_argument("pipeline")
    materialize.add_argument("--rebuild", action="store_true", help="refill the online store (after a Redis loss)")
    materialize.add_argument("--store-dir", help="the Feast store folder (default: $MLOPS_HOME/feast/<project>)")
    materialize.set_defaults(handler=_materialize)

    doctor = sub.add_parser("doctor", help="check the live configuration and endpoints for known failures, with fixes")
    doctor.add_argument(
        "--profile", choices=["embedded", "platform"], help="check as this profile (default: $MLOPS_PROFILE)"
    )
    doctor.add_argument("--manifests", help="also check rendered objects: a kustomize folder or YAML files")
    doctor.add_argument("--planned-writers", type=int, default=50, help="parallel DB writers you plan (default 50)")
    doctor.set_defaults(handler=_doctor)

    tenant = sub.add_parser("tenant", help="provision a tenant on the loopback services (S3, PostgreSQL, MLflow)")
    tenant.add_argument("action", choices=["add", "env", "list"])
    tenant.add_argument("name", nargs="?", default="")
    tenant.add_argument("--dir", help="the services folder (default: $MLOPS_SERVICES_DIR or $MLOPS_HOME/services)")
    tenant.add_argument("--port-base", type=int, help=argparse.SUPPRESS)
    tenant.set_defaults(handler=_tenant)

    isolation = sub.add_parser("isolation-check", help="try every path from one tenant into another's data")
    isolation.add_argument("--as", dest="as_", required=True, help="the curious tenant")
    isolation.add_argument("--target", required=True, help="the tenant whose data must stay out of reach")
    isolation.add_argument("--dir", help="the services folder (default: $MLOPS_SERVICES_DIR or $MLOPS_HOME/services)")
    isolation.add_argument("--port-base", type=int, help=argparse.SUPPRESS)
    isolation.set_defaults(handler=_isolation_check)

    serve = sub.add_parser("serve", help="serve a registered model version on a local Triton (HTTP and gRPC, loopback)")
    serve.add_argument("model", help="registered model name")
    which = serve.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="version number")
    which.add_argument("--alias", help="alias, e.g. champion (default: challenger, the latest that passed its gate)")
    serve.add_argument("--port-base", type=int, default=18000, help="HTTP port; gRPC +1, metrics +2 (default 18000)")
    serve.add_argument("--dir", help="repository, log and pid file (default: $MLOPS_HOME/serve/<model>)")
    serve.add_argument("--instances", type=int, default=1, help="model instances (instance_group count)")
    serve.add_argument("--max-batch-size", type=int, default=64)
    serve.add_argument("--dynamic-batching-us", type=int, help="enable dynamic batching with this max queue delay")
    serve.add_argument("--threads", type=int, default=1, help="scoring threads per instance")
    serve.add_argument("--detach", action="store_true", help="leave it running; stop with --stop")
    serve.add_argument("--stop", action="store_true", help="stop the server started with --detach")
    serve.set_defaults(handler=_serve)

    promote = sub.add_parser(
        "promote", help="canary, promote or roll back a registered model on KServe, admission-checked first"
    )
    promote.add_argument("model", help="registered model name (the InferenceService name)")
    promote.add_argument("--canary", type=int, metavar="PERCENT", help="send PERCENT (1-99) of traffic to the version")
    promote.add_argument(
        "--promote", action="store_true", help="send 100%% to the canary (or --version); champion moves"
    )
    promote.add_argument("--rollback", action="store_true", help="all traffic back to the previous revision")
    chosen = promote.add_mutually_exclusive_group()
    chosen.add_argument("--version", type=int, help="the version to canary or promote (default: alias challenger)")
    chosen.add_argument("--alias", help="the alias naming that version")
    promote.add_argument("--reason", help="why, for the history")
    promote.add_argument("--signed-off-by", help="who signed off (production needs it; default: the config's)")
    promote.add_argument("--stage", choices=["staging", "production"], help="default: the pipeline config's")
    promote.add_argument("--pipeline", help="whose promote settings (default: the pipeline that registered it)")
    promote.add_argument("--config", help="a pipeline config file to take the settings from")
    promote.add_argument(
        "--serving-root", help="where Triton repositories are published (default: $MLOPS_SERVING_ROOT)"
    )
    promote.add_argument("--policies", help="Gatekeeper policy folder (default: manifests/policies)")
    promote.add_argument("--kubeconfig", help="default: $KUBECONFIG, then ~/.kube/config")
    promote.add_argument("--context", help="kubeconfig context (default: the current one)")
    promote.add_argument("--out", help="GitOps: write the manifest under DIR/<namespace>/ instead of applying it")
    promote.add_argument("--dry-run", action="store_true", help="render and admission-check only; change nothing")
    promote.set_defaults(handler=_promote)

    history = sub.add_parser("history", help="which version served when: every canary, promotion and rollback")
    history.add_argument("model")
    history.set_defaults(handler=_history)
    return parser


def main(argv: list[str] | None = None) -> int:
    from components.errors import classify

    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except Exception as error:
        failure = classify(error, getattr(args, "command", None) or "mlops")
        if failure is None:
            raise
        print(f"error: {failure}", file=sys.stderr)
        return failure.exit_code
    return code


if __name__ == "__main__":
    raise SystemExit(main())
