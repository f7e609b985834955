"""`mlops run`, `step`, `task`, `materialize`: a pipeline or one of its steps, here or in a task's container."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import typing
from pathlib import Path
from typing import Any

from components.errors import ComponentError
from components.model_kinds import installed_kinds
from components.train_settings import HIGHER_IS_BETTER
from mlops.cli.common import config_overrides, pairs


def register(sub: Any, argv: list[str]) -> None:
    run = sub.add_parser("run", help="run a reference pipeline locally through kfp.local on embedded defaults")
    run.add_argument("pipeline")
    run.add_argument("--rows", type=int, help="rows of synthetic data (config: data.rows)")
    run.add_argument("--seed", type=int, help="seed of the synthetic data (config: data.seed)")
    run.add_argument(
        "--data", help="a Parquet dataset to use instead of synthetic data; may be dated: data/{date}/extract.parquet"
    )
    run.add_argument(
        "--date", help="the run's logical date, YYYY-MM-DD: fills a dated --data and is recorded in the lineage"
    )
    run.add_argument("--model-type", choices=installed_kinds(), help="a model kind (config: train.model_type)")
    run.add_argument("--gate-threshold", type=float, help="the gate's threshold (config: evaluate.threshold)")
    run.add_argument("--min-auc", type=float, help="same as --gate-threshold, for pipelines gated on roc_auc")
    run.add_argument("--config", help="a config.yaml to use instead of the pipeline's own")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. train.seed=1")
    run.add_argument("--home", help="state folder (default: $MLOPS_HOME or ./.mlops)")
    run.add_argument(
        "--retries", action="store_true", help="apply each step's declared retry policy locally (default: fail fast)"
    )
    run.add_argument(
        "--if-needed",
        action="store_true",
        help="train only when the drift step finds a reason (drift, the champion's age), as the nightly does;"
        " default: a local run always trains",
    )
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="run every step, even those whose cache key (data digest, arguments, code) is unchanged",
    )
    run.add_argument("--verbose", action="store_true", help="print kfp.local's whole output, not just progress")
    run.add_argument(
        "--engine",
        choices=("warm", "kfp-local"),
        default=os.environ.get("MLOPS_LOCAL_ENGINE", "warm"),
        help="how tasks start: children of a warm worker that has the step libraries imported (default), or a"
        " fresh interpreter each, as kfp.local's SubprocessRunner starts them (env: MLOPS_LOCAL_ENGINE)",
    )
    run.set_defaults(handler=_run_pipeline)

    step = sub.add_parser("step", help="run one component, as a pipeline task does", epilog=TEAM_STEPS_RUN)
    if argv[:1] == ["step"]:  # the flags come from the components' signatures: import them only for `step`
        named = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None
        _add_step_parsers(step.add_subparsers(dest="step", required=True), named)

    task = sub.add_parser("task", help="run one step of a declared pipeline in a container (Argo templates call this)")
    task.add_argument("pipeline")
    task.add_argument("step")
    task.add_argument("--input", action="append", metavar="NAME=PATH", help="an input artifact's local path")
    task.add_argument("--param", action="append", metavar="NAME=VALUE", help="a parameter, as text")
    task.add_argument("--outputs-dir", required=True, help="where output artifacts and parameters are written")
    task.set_defaults(handler=_task)

    materialize = sub.add_parser("materialize", help="rebuild a pipeline's online store from its offline store")
    materialize.add_argument("pipeline")
    materialize.add_argument("--rebuild", action="store_true", help="refill the online store (after a Redis loss)")
    materialize.add_argument("--store-dir", help="the Feast store folder (default: $MLOPS_HOME/feast/<project>)")
    materialize.set_defaults(handler=_materialize)


def _flag_type(annotation: Any) -> tuple[Any, str]:
    """argparse type and metavar for a component parameter's annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType) else annotation
    if typing.get_origin(base) is list:  # a,b,c; or a JSON array, as an orchestrator passes an output list
        return (lambda text: json.loads(text) if text.startswith("[") else [i for i in text.split(",") if i]), "A,B,..."
    if base is dict or typing.get_origin(base) is dict:
        return json.loads, "JSON"
    from pipelines.runtime import settings_model

    if settings_model(base) is not None:
        return json.loads, "JSON"  # a step's settings model: run_step parses it, refused by field
    if base in (int, float):
        return base, base.__name__.upper()
    return str, "VALUE"


def steps() -> dict[str, str]:
    """`mlops step` names -> component targets: every component the library's standard pipeline or
    an installed pipeline declares, and the exit handler's notice. Read from the declarations, not
    the KFP op table, so a worker that has no KFP (a TrainJob's node, the GPU check's machine) runs
    `mlops step train` all the same; and the standard steps without any installed entry point, so
    a checkout that is only on the path (the GPU machine's copy of the tree) has them too."""
    from pipelines.local import available_pipelines, declaration
    from pipelines.standard import training_pipeline

    declared = {step.component for step in training_pipeline(name="standard", description="").steps}
    declared |= {step.component for name in available_pipelines() for step in declaration(name).spec.steps}
    targets = [*sorted(c for c in declared if _library_component(c)), "components.steps.notify:notify_failure"]
    return {target.partition(":")[2].replace("_", "-"): target for target in targets}


TEAM_STEPS_RUN = "a team's own steps (team_steps= in its pipeline.py) run with `mlops task <pipeline> <step>`"


def _library_component(component: str) -> bool:
    """A built-in op lives in the library's components package; a team step in the team's own, and
    `mlops step` cannot run it: its arguments are wired by the declaration (`mlops task` reads them)."""
    return component.startswith("components.")


def team_steps() -> dict[str, str]:
    """Each installed pipeline's team steps: step name -> the pipeline that declares it."""
    from pipelines.local import available_pipelines, declaration

    return {step.name: name for name in available_pipelines() for step in declaration(name).spec.steps
            if not _library_component(step.component)}  # fmt: skip


def _team_step(args: argparse.Namespace) -> int:
    raise ComponentError(
        "step",
        f"{args.step} is a team step of pipeline {args.pipeline}, which `mlops step` does not run",
        f"run it as its pipeline does: mlops task {args.pipeline} {args.step} --input NAME=PATH "
        "--param NAME=VALUE --outputs-dir DIR (mlops task --help)",
    )


def _add_step_parsers(subparsers: Any, named: str | None = None) -> None:
    """A parser per step; with `named`, only that step's component is imported for its flags (a
    TrainJob node running `mlops step train` needs neither Feast nor MLflow), the rest are listed."""
    import inspect

    from pipelines.runtime import component

    library = steps()
    for name, target in library.items():
        if named is not None and name != named:
            subparsers.add_parser(name, help=target)
            continue
        function = component(target)
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
    pipeline = team_steps().get(named) if named is not None and named not in library else None
    if pipeline is not None:  # a team step named: refused naming `mlops task`, whatever its flags
        team = subparsers.add_parser(named, help=TEAM_STEPS_RUN, prefix_chars="\0")  # any flags are its words
        team.add_argument("arguments", nargs="*")
        team.set_defaults(handler=_team_step, pipeline=pipeline)


def _run_step(args: argparse.Namespace) -> int:
    """One component, as a task runs it: same summary line, same exit codes, same in-step retries."""
    from pipelines.runtime import run_step

    kwargs = {k: v for k, v in vars(args).items() if k not in ("handler", "target", "command", "step")}
    run_step(args.target, **kwargs)
    return 0


def _run_pipeline(args: argparse.Namespace) -> int:
    import os

    from components.environment import mlops_home
    from mlops.progress import StepProgress, run_streaming
    from pipelines.discovery import canonical
    from pipelines.local import declaration

    if args.home:
        os.environ["MLOPS_HOME"] = str(Path(args.home).resolve())
    home = mlops_home()
    pipeline = declaration(args.pipeline)
    overrides = config_overrides(args.set or [])
    for flag, key in (
        ("rows", "data.rows"),
        ("seed", "data.seed"),
        ("model_type", "train.model_type"),
        ("min_auc", "evaluate.threshold"),
        ("gate_threshold", "evaluate.threshold"),
    ):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    cfg = pipeline.config(Path(args.config) if args.config else None)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    from components.dated_inputs import logical_date, resolve

    logical_date(args.date or "", step="run")  # a date that is none is refused before anything runs
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = home / "logs" / f"{pipeline.name}-{stamp}.log"
    data_note = args.data or f"synthetic, {cfg.data.rows} rows, seed {cfg.data.seed}"
    retry_note = "declared retry policies" if args.retries else "no retries: fail fast (--retries to apply them)"
    print(f"{pipeline.name}: running on embedded defaults under {home} ({data_note}; {retry_note})")
    progress = StepProgress(lambda line: print(line, flush=True))
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            "pipelines.local",
            canonical(args.pipeline),  # a folder as an absolute path: the child resolves it the same
            "--config-json",
            json.dumps(cfg.model_dump(by_alias=True)),
            "--result",
            str(result_path),
        ]
        if args.data:
            command += ["--data", str(Path(resolve(args.data, args.date or "", step="run")).resolve())]
        if args.date:
            command += ["--date", args.date]
        if args.retries:
            command.append("--retries")
        if args.if_needed:
            command.append("--if-needed")
        if args.no_cache:
            command.append("--no-cache")
        command += ["--engine", args.engine]
        started = time.perf_counter()
        code = run_streaming(command, log_path, progress, args.verbose)
        seconds = time.perf_counter() - started
        result = json.loads(result_path.read_text()) if result_path.exists() else {"ok": False, "outputs": {}}
    _print_summary(pipeline.name, result, progress, seconds, log_path)
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
    if "drift" in s:
        d = s["drift"]
        print(f"  drift        {'retrain: ' if d['retrain'] else ''}{d['reason']}")
    if "materialize" in s:
        m = s["materialize"]
        print(
            f"  materialize  {m['training_rows']} training / {m['holdout_rows']} holdout rows; online store: "
            f"{m['online_rows_in_window']} rows, {m['online_entities_written']} entities (watermark {m['watermark']})"
        )
    if "train" in s:
        t = s["train"]
        spread = t.get("distributed")
        where = f"{t['device']}, {spread['workers']} {spread['runtime']} workers" if spread else t["device"]
        print(
            f"  train        {t['model_type']} on {where}: {t['training_rows']} rows in {t['train_seconds']}s "
            f"({t['rows_per_second']:,.0f} rows/s; {t.get('passes', 1)} passes, "
            f"{t.get('row_passes_per_second', 0):,.0f} row-passes/s)"
        )
    if "evaluate" in s:
        e = s["evaluate"]
        verdict = "passed" if e["passed"] else "FAILED"
        shown = ("roc_auc", "pr_auc", "accuracy", "macro_f1", "roc_auc_ovr", "log_loss", "rmse", "mae", "mape", "r2")
        numbers = ", ".join(f"{key} {e[key]:.4f}" for key in shown if key in e)
        direction = ">=" if e["gate_metric"] in HIGHER_IS_BETTER else "<="
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
    if progress.cached:
        steps = ", ".join(sorted(progress.cached))
        print(f"  cached       {steps}: same data digest, arguments and code as a run before (--no-cache runs them)")
    if not result.get("ok") and progress.errors:
        print("  error        " + "\n               ".join(progress.errors))
    print(f"  outputs      {result.get('run_dir', '-')}")
    print(f"  log          {log_path}")


def _task(args: argparse.Namespace) -> int:
    from components.errors import PERMANENT_EXIT_CODE
    from pipelines.task import run_task

    try:
        run_task(
            args.pipeline,
            args.step,
            pairs(args.input, "--input"),
            pairs(args.param, "--param"),
            Path(args.outputs_dir),
        )
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(f"error: {stop.code}", file=sys.stderr)
            return PERMANENT_EXIT_CODE
        raise
    return 0


def _materialize(args: argparse.Namespace) -> int:
    from components.steps.materialize import rebuild_online
    from pipelines.local import declaration

    project = declaration(args.pipeline).config().materialize.project
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
