"""`mlops serve`, `score`, `promote`, `history`: a version on the local Triton, and its canary on KServe."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError

if TYPE_CHECKING:
    from components.config import PipelineConfig
    from components.handoffs import Registration
    from devstack.transformer import LocalTransformer
    from mlops import rollout

__all__ = ["pipeline_request", "register", "target_of"]


def register(sub: Any, argv: list[str]) -> None:
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
    serve.add_argument(
        "--with-features",
        action="store_true",
        help="start the scoring transformer too (HTTP +3, gRPC +4): entity keys and request features in, the "
        "online features joined from the feature store, the score out",
    )
    serve.add_argument("--pipeline", help="whose feature service and scoring settings (default: the registering one)")
    serve.add_argument(
        "--explain",
        action="store_true",
        help="with --with-features: the loopback transformer answers the explain verb (mlops score --explain) even "
        "where the pipeline's scoring.explain.enabled is off; on the cluster only that setting decides",
    )
    serve.add_argument("--detach", action="store_true", help="leave it running; stop with --stop")
    serve.add_argument("--stop", action="store_true", help="stop the server started with --detach")
    serve.set_defaults(handler=_serve)

    score = sub.add_parser(
        "score",
        help="score one or more requests on the scoring transformer (mlops serve --with-features): "
        "the score per row and, with --explain, the features used",
    )
    score.add_argument("model", help="registered model name")
    score.add_argument("request", help='JSON: one object, e.g. \'{"user_id": 42, "amount": 310.5}\', or a list of them')
    score.add_argument(
        "--explain",
        action="store_true",
        help="ask KServe's explain verb (:explain) for the feature values the model scored; the transformer "
        "answers it only with scoring.explain.enabled, to the callers scoring.explain.callers names",
    )
    score.add_argument("--port-base", type=int, default=18000, help="the port base `mlops serve` used (default 18000)")
    score.add_argument("--url", help="a transformer elsewhere, e.g. the InferenceService's URL (default: loopback)")
    score.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    score.set_defaults(handler=_score)

    promote = sub.add_parser(
        "promote",
        help="canary, promote or roll back a registered model on KServe, admission-checked first",
        description="With none of --canary, --promote, --rollback: a canary of the version (--version, --alias, "
        "default alias challenger) at the canary share of the pipeline that registered it (promote.canary_percent "
        "in its config.yaml; --pipeline or --config name another). While a canary is live, a canary without "
        "--version ramps it. Every change is admission-checked, applied, then recorded (mlops history).",
    )
    promote.add_argument("model", help="registered model name (the InferenceService name)")
    promote.add_argument(
        "--canary",
        type=int,
        metavar="PERCENT",
        help="send PERCENT (1-99) of traffic to the version, overriding the pipeline config's promote.canary_percent",
    )
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
    promote.add_argument(
        "--pipeline",
        help="whose promote settings, canary share included (default: the pipeline that registered the version, "
        "from its `pipeline` tag; without --version, that of the champion, else the challenger)",
    )
    promote.add_argument("--config", help="a pipeline config file to take the settings from")
    promote.add_argument(
        "--serving-root", help="where Triton repositories are published (default: $MLOPS_SERVING_ROOT)"
    )
    promote.add_argument("--policies", help="Gatekeeper policy folder (default: manifests/policies)")
    promote.add_argument("--kubeconfig", help="default: $KUBECONFIG, then ~/.kube/config")
    promote.add_argument("--context", help="kubeconfig context (default: the current one)")
    promote.add_argument("--out", help="GitOps: write the manifest under DIR/<namespace>/ instead of applying it")
    promote.add_argument("--dry-run", action="store_true", help="render and admission-check only; change nothing")
    promote.add_argument(
        "--analyze",
        action="store_true",
        help="judge the live canary against the champion on the decision log (KS and PSI of the scores, realized "
        "metrics where labelled) and apply the verdict, promote, rollback or wait, recorded with its evidence; "
        "with --dry-run, print it only (thresholds: promote.analysis_* in the pipeline config)",
    )
    promote.add_argument(
        "--since", help="--analyze: the window's start, YYYY-MM-DD or ISO time (default: the canary's start)"
    )
    promote.add_argument("--log", help="--analyze: the decision log's root (default: as mlops decisions finds it)")
    promote.add_argument("--json", action="store_true", help="--analyze: the verdict and its evidence as JSON")
    promote.add_argument(
        "--prometheus",
        metavar="URL",
        help="--analyze: read each version's error rate and p99 latency from this Prometheus (its query API) "
        "instead of the decision log's request outcomes (default: promote.prometheus_url)",
    )
    promote.set_defaults(handler=_promote, validate=validate_promote)

    history = sub.add_parser("history", help="which version served when: every canary, promotion and rollback")
    history.add_argument("model")
    history.set_defaults(handler=_history)


def _serve(args: argparse.Namespace) -> int:
    from components.environment import mlops_home
    from devstack import process
    from devstack.triton import serve_registered

    if args.explain and not args.with_features:
        raise ComponentError("serve", "--explain needs --with-features: only the scoring transformer explains",
                             f"mlops serve {args.model} --with-features --explain")  # fmt: skip
    root = Path(args.dir) if args.dir else mlops_home() / "serve" / args.model
    pid_file = root / "triton.pid"
    if args.stop:
        transformer_stopped = process.stop(root / "transformer.pid", grace_seconds=10.0)
        stopped = process.stop(pid_file, grace_seconds=10.0)
        what = "the server" + (" and the transformer" if transformer_stopped else "")
        done = stopped or transformer_stopped
        print(f"{args.model}: {'stopped ' + what if done else 'no server was running'} under {root}")
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
    from components.serving.triton_config import tensor_contract

    features = registration["features"]
    regression = registration["objective"] == "regression"
    tensors = tensor_contract(registration["model_format"], regression=regression)  # the cluster's, exactly
    print(f"  inputs   {tensors.input} [n, {len(features)}] FP32 in order: {', '.join(features)}")
    score = "value" if regression else "P(positive)"
    width = "[P(negative), P(positive)]" if tensors.output_width == 2 else score
    print(f"  output   {tensors.output} [n, {tensors.output_width}] FP32: {width}")
    transformer = None
    if args.with_features:
        try:
            transformer = _start_transformer(args, root, server.grpc_url, registration)
        except BaseException:
            server.stop()
            raise
    if args.detach:
        print(f"stop it with: mlops serve {args.model} --stop" + (f" --dir {args.dir}" if args.dir else ""))
        return 0
    print("Ctrl-C stops it")
    try:
        while process.alive(server.pid) and (transformer is None or process.alive(transformer.pid)):
            time.sleep(1.0)
        failed = server.log if not process.alive(server.pid) else transformer.log if transformer else server.log
        print(f"error: a server exited; read {failed}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if transformer is not None:
            transformer.stop()
        server.stop()


def _start_transformer(
    args: argparse.Namespace, root: Path, predictor_grpc: str, registration: Registration
) -> LocalTransformer:
    """The scoring transformer beside the local Triton, on the pipeline's feature service."""
    from components.steps.materialize import store_directory
    from devstack.transformer import LocalTransformer
    from pipelines.local import declaration

    pipeline = args.pipeline or registration.get("pipeline")
    if not pipeline:
        raise ComponentError(
            "serve",
            f"{args.model} v{registration['version']} records no pipeline, so its feature service is unknown",
            f"name it: mlops serve {args.model} --with-features --pipeline <name>",
        )
    cfg = declaration(pipeline).config()
    m = cfg.materialize
    scoring = cfg.scoring.model_dump()
    scoring["explain"]["enabled"] = bool(scoring["explain"]["enabled"] or args.explain)
    scoring["decision_log"]["spill_dir"] = str(root / "decision-spill")  # beside the server's log, not /tmp
    decisions = _decision_log_environment(cfg.promote.namespace) if cfg.scoring.decision_log.enabled else {}
    transformer = LocalTransformer(
        root=root,
        model_name=args.model,
        predictor_grpc=predictor_grpc,
        http_port=args.port_base + 3,
        grpc_port=args.port_base + 4,
        project=m.project,
        feature_service=m.feature_service,
        entity_column=m.entity_column,
        request_features=list(m.request_features),
        scoring=scoring,
        store_dir=store_directory(m.project),
        env=dict(decisions),
    )
    seconds = transformer.start()
    where = transformer.describe()
    print(f"scoring transformer ({pipeline}: feature service {m.feature_service}, entity {m.entity_column}, "
          f"request features {', '.join(m.request_features)}) ready in {seconds:.1f} s")  # fmt: skip
    for key in ("v1", "v2", "grpc", "log"):
        print(f"  {key:<8} {where[key]}")
    from components.serving.decision_record import URI_VARIABLE

    logged = decisions.get(URI_VARIABLE, "nowhere (scoring.decision_log.enabled is false)")
    print(f"  decisions {logged}")
    example = {m.entity_column: 42, **{name: 1.0 for name in m.request_features}}
    port = "" if args.port_base == 18000 else f" --port-base {args.port_base}"
    explain = " --explain" if scoring["explain"]["enabled"] else ""  # off: the transformer answers explain 403
    print(f"  try      mlops score {args.model} '{json.dumps(example)}'{explain}{port}")
    return transformer


def _decision_log_environment(serving_namespace: str) -> dict[str, str]:
    """Where the local transformer logs decisions (issue 32): the reader's own derivation
    (components.platform.decisions.decision_log_root): $MLOPS_HOME/decisions/ on the local profile, the
    tenant's s3://decisions/<namespace>/ on the devstack's S3 under the platform profile; a platform
    profile that names no tenant logs under the namespace the pipeline serves in (promote.namespace)."""
    import os

    from components.platform.decisions import decision_log_root
    from components.serving.decision_record import NAMESPACE_VARIABLE, URI_VARIABLE

    env = dict(os.environ)
    uri = decision_log_root(env=env, serving_namespace=serving_namespace)
    parts = uri.removeprefix("s3://").strip("/").split("/") if uri.startswith("s3://") else []
    namespace = env.get(NAMESPACE_VARIABLE) or (parts[1] if len(parts) > 1 else "local")
    return {URI_VARIABLE: uri, NAMESPACE_VARIABLE: namespace}


def _score(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    from components.errors import TransientError

    try:
        request = json.loads(args.request)
    except ValueError as error:
        fix = 'e.g. \'{"user_id": 42, "amount": 310.5}\''
        raise ComponentError("score", f"the request is not JSON: {error}", fix) from error
    rows = request if isinstance(request, list) else [request]
    if not rows or not all(isinstance(row, dict) for row in rows):
        raise ComponentError("score", "the request must be a JSON object or a list of objects",
                             'e.g. \'[{"user_id": 42, "amount": 310.5}, {"user_id": 7, "amount": 12}]\'')  # fmt: skip
    base = (args.url or f"http://127.0.0.1:{args.port_base + 3}").rstrip("/")
    url = f"{base}/v1/models/{args.model}:{'explain' if args.explain else 'predict'}"
    body = json.dumps({"instances": rows}).encode()
    http = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(http, timeout=args.timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        message = json.loads(error.read() or b"{}").get("error", error.reason)
        if error.code >= 500:
            raise TransientError("score", f"the transformer answered {error.code}: {message}",
                                 "retry; if it persists, read the transformer's log") from error  # fmt: skip
        raise ComponentError("score", f"the transformer answered {error.code}: {message}",
                             "fix the request as the message says") from error  # fmt: skip
    except (urllib.error.URLError, OSError) as error:
        raise TransientError("score", f"no scoring transformer answers at {base} ({error})",
                             f"start one: mlops serve {args.model} --with-features") from error  # fmt: skip
    version = answer.get("model_version", "?")
    for index, (row, score) in enumerate(zip(rows, answer["predictions"], strict=True)):
        unknown = answer.get("unknown_entity", [False] * len(rows))[index]
        flag = "  (unknown entity: scored on the configured defaults)" if unknown else ""
        classes = answer.get("predicted_class")  # a multiclass model: k probabilities and the argmax per row
        shown = (
            f"class {classes[index]}  probabilities [{', '.join(f'{p:.6f}' for p in score)}]"
            if classes is not None
            else f"score {score:.6f}"
        )
        print(f"{json.dumps(row)}  {shown}  ({args.model} v{version}){flag}")
        if args.explain:
            for name, value in answer["features"][index].items():
                print(f"    {name:<28} {value}")
    return 0


def validate_promote(args: argparse.Namespace) -> str:
    """The action the flags ask for, or the refusal, from the flags alone: no registry, cluster or
    file is touched (tests/test_docs_commands.py calls it on every documented command line)."""
    chosen = [
        name
        for name, on in (("canary", args.canary is not None), ("promote", args.promote), ("rollback", args.rollback))
        if on
    ]
    if getattr(args, "analyze", False):
        if chosen or args.version is not None or args.alias is not None:
            raise ComponentError(
                "promote",
                "--analyze judges the live canary and chooses the action itself",
                f"drop --canary/--promote/--rollback/--version/--alias: mlops promote {args.model} --analyze",
            )
        return "analyze"
    analysis_only = [f for f in ("since", "log", "json", "prometheus") if getattr(args, f, None)]
    if analysis_only:
        raise ComponentError("promote", f"--{analysis_only[0]} belongs to --analyze",
                             f"mlops promote {args.model} --analyze --{analysis_only[0]} ...")  # fmt: skip
    if len(chosen) > 1:
        raise ComponentError(
            "promote",
            f"choose at most one of --canary N, --promote, --rollback (got {', '.join('--' + c for c in chosen)})",
            f"e.g. mlops promote {args.model} --version N: a canary at the pipeline's promote.canary_percent",
        )
    if args.canary is not None and not 1 <= args.canary <= 99:
        raise ComponentError(
            "promote", f"--canary must be 1..99, got {args.canary}", "use --promote to send 100% to the version"
        )
    if args.rollback and (args.version is not None or args.alias is not None):
        raise ComponentError(
            "promote", "--rollback takes no --version or --alias", "it returns to the previous revision"
        )
    return chosen[0] if chosen else "canary"


def target_of(args: argparse.Namespace, *, in_cluster: bool = False) -> rollout.Target:
    """Where a promotion goes: --dry-run, --out (GitOps), the kubeconfig, else (with `in_cluster`, inside a
    pod) the pod's own ServiceAccount."""
    import os

    from mlops import kube, rollout

    if args.dry_run:
        return rollout.Target(kind="dry-run", folder=Path(args.out) if args.out else None)
    if args.out:
        return rollout.Target(kind="gitops", folder=Path(args.out))
    path = kube.kubeconfig_path(args.kubeconfig)
    if path is not None:
        return rollout.Target(kind="kubernetes", cluster=kube.Cluster.from_kubeconfig(path, args.context))
    if in_cluster and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return rollout.Target(kind="kubernetes", cluster=kube.Cluster.in_cluster())
    raise ComponentError(
        "promote",
        "no kubeconfig (--kubeconfig, $KUBECONFIG or ~/.kube/config) and neither --out nor --dry-run",
        "point at the cluster, or write the manifest for GitOps with --out DIR, or preview with --dry-run",
    )


def pipeline_request(cfg: PipelineConfig, model: str, **given: Any) -> rollout.Request:
    """A promotion of `model` with its pipeline's settings: promote section, decision threshold, transformer."""
    from components.config import transformer_settings
    from mlops import rollout
    from pipelines.local import declaration

    return rollout.Request(
        model=model,
        settings=cfg.promote,
        decision_threshold=cfg.evaluate.decision_threshold,
        transformer=transformer_settings(cfg, declaration(cfg.pipeline).spec.image),
        **given,
    )


def _promote(args: argparse.Namespace) -> int:
    from components.platform import model_registry
    from mlops import rollout

    action = validate_promote(args)
    mlflow = model_registry.client()
    model_registry.registered_model(mlflow, args.model)
    cfg = rollout.settings_for(
        mlflow, args.model, args.version, Path(args.config) if args.config else None, args.pipeline
    )
    target = target_of(args)
    percent = args.canary
    if action == "canary" and percent is None:
        percent = cfg.promote.canary_percent
        print(f"{args.model}: canary share {percent}%: promote.canary_percent of pipeline {cfg.pipeline} "
              "(--canary N overrides it)", file=sys.stderr)  # fmt: skip
    request = pipeline_request(
        cfg,
        args.model,
        action="promote" if action == "analyze" else action,  # --analyze: the verdict's, set by mlops.canary
        version=args.version,
        alias=args.alias,
        percent=percent,
        stage=args.stage,
        signed_off_by=args.signed_off_by,
        reason=args.reason or "",
        serving_root=args.serving_root,
        policies=Path(args.policies) if args.policies else rollout.POLICY_DIR,
    )
    if action == "analyze":
        from mlops import canary

        return canary.run(args.model, request, target, log=args.log, since=args.since, as_json=args.json,
                          prometheus=args.prometheus)  # fmt: skip
    outcome = rollout.execute(request, target)
    report = sys.stderr if target.kind == "dry-run" and not args.out else sys.stdout
    print(f"{args.model}: before: {outcome.before.describe()}", file=report)
    if outcome.entry is None:
        print(f"{args.model}: dry run: admitted by every policy; nothing applied, recorded or moved", file=report)
        return 0
    print(f"{args.model}: {outcome.action} applied ({outcome.applied})", file=report)
    print(
        f"{args.model}: now: {outcome.after.describe()}; aliases "
        + ", ".join(f"{k}->v{v}" for k, v in sorted(outcome.aliases.items())),
        file=report,
    )
    return 0


def _history(args: argparse.Namespace) -> int:
    from components.platform import model_registry
    from mlops import rollout

    mlflow = model_registry.client()
    entries = model_registry.history(mlflow, args.model)
    if not entries:
        print(f"{args.model}: no serving history yet (mlops promote {args.model} --promote starts it)")
        return 0
    for line in rollout.render_history(entries):
        print(line)
    print(f"now: {rollout.ServingState.replay(entries).describe()}")
    return 0
