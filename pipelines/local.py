"""Run a reference pipeline on this machine: kfp.local's SubprocessRunner over embedded stores.

Every piece of state lives under one folder (MLOPS_HOME): the raw data, the Feast registry and
stores, the MLflow database and artifacts, KFP's task outputs and the published serving
repositories. A fresh folder is a fresh platform.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import PipelineConfig
from components.environment import mlops_home
from pipelines.declaration import PipelineDeclaration
from pipelines.spec import Step

__all__ = [
    "ENGINES",
    "LocalRun",
    "available_pipelines",
    "declaration",
    "generator",
    "git_commit",
    "run_inputs",
    "run_local",
    "synthetic_dataset",
]


def available_pipelines() -> tuple[str, ...]:
    """Every installed pipeline: the reference ones and any team package that registers one."""
    from pipelines.discovery import available_pipelines as registered

    return registered()


def declaration(reference: str) -> PipelineDeclaration:
    """A pipeline by registered name or by package folder (pipelines/discovery.py)."""
    from pipelines.discovery import declaration as find

    return find(reference)


def git_commit(start: Path | None = None) -> str:
    """The checkout's commit, or '' outside a git checkout (the image has none)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=start or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def synthetic_dataset(reference: str, cfg: PipelineConfig, home: Path) -> Path:
    """The pipeline's synthetic dataset for (rows, seed), generated once and kept under home."""
    pipeline = declaration(reference)
    path = home / "data" / pipeline.name / f"raw-{cfg.data.rows}-{cfg.data.seed}.parquet"
    if not path.exists():
        from components import artifacts

        artifacts.write_parquet(path, generator(pipeline)(cfg.data.rows, cfg.data.seed))
    return path


def generator(pipeline: PipelineDeclaration) -> Any:
    """The package's `data.generate(rows, seed)`: only a run without --data needs it, so a team whose
    data.py loads real data (or that has none) is refused here, naming --data, not at import."""
    from components.errors import ComponentError

    module = f"{pipeline.package}.data"
    try:
        generate = getattr(importlib.import_module(module), "generate", None)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        generate = None
    if not callable(generate):
        raise ComponentError(
            "data",
            f"pipeline '{pipeline.name}' has no synthetic data: {module} defines no generate(rows, seed)",
            f"pass the raw data with `mlops run {pipeline.name} --data FILE`, or add generate(rows, seed) to"
            " data.py, returning a DataFrame that meets docs/data-contract.md",
        )
    return generate


@dataclass
class LocalRun:
    pipeline: str
    run_dir: Path
    seconds: float
    outputs: dict[str, dict[str, Path]] = field(default_factory=dict)

    def read_json(self, step: str, output: str) -> dict[str, Any] | None:
        path = self.outputs.get(step, {}).get(output)
        if path is None or not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def ran(self, step: str) -> bool:
        return step in self.outputs


def _artifact_outputs(step: Step) -> tuple[str, ...]:
    from pipelines.contract import contract_of

    return contract_of(step.component).artifact_outputs


def run_inputs(
    cfg: PipelineConfig, raw_data: Path, *, force_retrain: bool = True, logical_date: str = ""
) -> dict[str, Any]:
    """The pipeline inputs of a local run; the stores come from the platform settings (the
    environment, else $MLOPS_HOME), exactly as in a pod. A laptop run trains unless asked to
    let the drift step decide (`mlops run --if-needed`), as the nightly does."""
    return {
        "raw_data": str(raw_data),
        "git_commit": git_commit(),
        "gate_threshold": cfg.evaluate.threshold,
        "force_retrain": force_retrain,
        "logical_date": logical_date,
    }


def run_local(
    name: str,
    cfg: PipelineConfig,
    *,
    raw_data: Path | None = None,
    home: Path | None = None,
    retries: bool = False,
    force_retrain: bool = True,
    cache: bool = True,
    logical_date: str = "",
    engine: str = "warm",
) -> LocalRun:
    """Run the pipeline through kfp.local; raises RuntimeError naming the failed task.

    kfp.local retries every failure, including a deterministic data error, so local runs fail
    fast unless `retries` asks for the declared policies. `engine`: `warm` runs each task in a child
    of the environment's warm worker (pipelines/warm_worker.py), `kfp-local` in a fresh interpreter
    as kfp.local's SubprocessRunner does; a warm worker that cannot start falls back to the latter.
    """
    from kfp import dsl, local

    from pipelines.kfp import build_pipeline

    pipeline_declaration = declaration(name)
    root = (home or mlops_home()).resolve()
    os.environ["MLOPS_HOME"] = str(root)
    data = raw_data or synthetic_dataset(name, cfg, root)
    pipeline_root = root / "kfp-runs"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    inputs = run_inputs(cfg, data, force_retrain=force_retrain, logical_date=logical_date)
    cache_keys = None
    if cache:
        from pipelines.caching import step_keys

        parameters = pipeline_declaration.step_parameters(cfg, {**inputs, "run_id": dsl.PIPELINE_JOB_NAME_PLACEHOLDER})
        cache_keys = step_keys(pipeline_declaration, parameters, str(data))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
        enable_caching=cache,
        cache_root=str(root / "kfp-cache"),
    )
    pipeline = build_pipeline(pipeline_declaration, cfg, retries=retries, cache_keys=cache_keys)
    before = set(pipeline_root.iterdir())
    started = time.perf_counter()
    try:
        with _engine(engine):
            pipeline(**inputs)
    finally:
        seconds = time.perf_counter() - started
    run_dirs = sorted(set(pipeline_root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    run_dir = run_dirs[-1] if run_dirs else pipeline_root
    result = LocalRun(pipeline=pipeline_declaration.name, run_dir=run_dir, seconds=seconds)
    for step in pipeline_declaration.spec.steps:
        task_dir = run_dir / step.name
        if task_dir.is_dir():
            result.outputs[step.name] = {output: task_dir / output for output in _artifact_outputs(step)}
    return result


ENGINES = ("warm", "kfp-local")
"""How a local run's tasks start: children of a warm worker (the default: measured faster, docs/
performance.md), or fresh interpreters as kfp.local's SubprocessRunner starts them."""


@contextlib.contextmanager
def _engine(engine: str) -> Iterator[None]:
    if engine not in ENGINES:
        from components.errors import ComponentError

        raise ComponentError("run", f"unknown engine {engine!r}", f"choose one of {', '.join(ENGINES)}")
    if engine == "kfp-local":
        yield
        return
    from pipelines.warm_worker import WarmUnavailable, connect

    try:
        worker = connect()
    except WarmUnavailable as error:
        print(f"warm worker unavailable ({error}); running each task in a fresh interpreter", flush=True)
        yield
        return
    with worker.installed():
        yield


class _CacheHits(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "cache hit" in record.getMessage()


def _report_cache_hits() -> None:
    """kfp.local says a task was served from its cache only through the root logger at INFO;
    pass those lines (and only those) to the output `mlops run` reads."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_CacheHits())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _main(argv: list[str] | None = None) -> int:
    """Child-process entry of `mlops run`: run, then write the LocalRun as JSON."""
    import argparse

    from components.config import parse_config
    from components.errors import ComponentError

    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--config-json", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--data")
    parser.add_argument("--retries", action="store_true")
    parser.add_argument("--if-needed", action="store_true")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--date", default="")
    parser.add_argument("--engine", choices=ENGINES, default=ENGINES[0])
    args = parser.parse_args(argv)
    cfg = parse_config(json.loads(args.config_json), source="--config-json")
    _report_cache_hits()
    outcome: dict[str, Any] = {"ok": False}
    try:
        run = run_local(
            args.name,
            cfg,
            raw_data=Path(args.data) if args.data else None,
            retries=args.retries,
            force_retrain=not args.if_needed,
            cache=not args.no_cache,
            logical_date=args.date,
            engine=args.engine,
        )
        outcome = {"ok": True}
    except ComponentError as error:  # before any step ran (no synthetic data): `mlops run` prints it
        print(f"ERROR {error}", flush=True)
        return error.exit_code
    except RuntimeError as error:
        outcome = {"ok": False, "error": str(error)}
        pipeline_root = mlops_home() / "kfp-runs"
        runs = sorted(pipeline_root.iterdir(), key=lambda p: p.stat().st_mtime) if pipeline_root.exists() else []
        run = LocalRun(pipeline=args.name, run_dir=runs[-1] if runs else pipeline_root, seconds=0.0)
        for step in declaration(args.name).spec.steps:
            if (run.run_dir / step.name).is_dir():
                run.outputs[step.name] = {o: run.run_dir / step.name / o for o in _artifact_outputs(step)}
    outcome.update(
        {
            "run_dir": str(run.run_dir),
            "seconds": run.seconds,
            "outputs": {s: {o: str(p) for o, p in outs.items()} for s, outs in run.outputs.items()},
        }
    )
    Path(args.result).write_text(json.dumps(outcome))
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(_main())
