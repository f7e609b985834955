"""`mlops tune`, `tune-trial`: a hyperparameter search (Optuna here, Katib there), and one Katib trial.

`mlops tune`: a hyperparameter search with Optuna here, or its Katib Experiment for the cluster;
`mlops tune-trial`: one trial, as a Katib trial's Job runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.cli.common import pairs

if TYPE_CHECKING:
    from components.config import PipelineConfig
    from pipelines.declaration import PipelineDeclaration


def register(sub: Any, argv: list[str]) -> None:
    tune = sub.add_parser(
        "tune",
        help="search train.params over tune.space: Optuna trials of the real train and evaluate steps, "
        "or (--katib) the Katib Experiment of the same search",
    )
    tune.add_argument("pipeline")
    tune.add_argument("--trials", type=int, help="trials in all (config: tune.trials)")
    tune.add_argument("--parallel", type=int, help="trials at once (config: tune.parallel)")
    tune.add_argument("--data", help="a Parquet dataset (default: the pipeline's synthetic data)")
    tune.add_argument("--rows", type=int, help="rows of synthetic data (config: data.rows)")
    tune.add_argument("--config", help="a config.yaml to use instead of the pipeline's own")
    tune.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    tune.add_argument("--out", default=".", help="folder for the config patch (default: here)")
    tune.add_argument("--tracking-uri", help="MLflow tracking server (default: the platform settings or embedded)")
    katib = tune.add_argument_group("the cluster's search (Katib)")
    katib.add_argument("--katib", action="store_true", help="print the Katib Experiment instead of searching here")
    katib.add_argument("--train-set", help="object store URI of the training set the trials read")
    katib.add_argument("--holdout-set", help="object store URI of the holdout set")
    katib.add_argument("--name", help="the Experiment's name (default: <pipeline>-tune)")
    tune.set_defaults(handler=_tune)

    trial = sub.add_parser("tune-trial", help="one trial: train with --param values over train.params, evaluate")
    trial.add_argument("pipeline")
    trial.add_argument("--train-set", required=True)
    trial.add_argument("--holdout-set", required=True)
    trial.add_argument("--param", action="append", metavar="NAME=VALUE", help="a train.params value (repeat)")
    trial.add_argument("--out", help="folder for the trial's model and metrics (default: a scratch folder)")
    trial.set_defaults(handler=_trial)


def _config(args: argparse.Namespace) -> tuple[PipelineDeclaration, PipelineConfig]:
    from mlops.cli.common import config_overrides
    from pipelines.local import declaration

    pipeline = declaration(args.pipeline)
    cfg = pipeline.config(Path(args.config) if args.config else None)
    overrides = config_overrides(args.set or [])
    if args.rows is not None:
        overrides["data.rows"] = args.rows
    return pipeline, cfg.with_overrides(overrides) if overrides else cfg


def _tune(args: argparse.Namespace) -> int:
    from components.environment import mlops_home
    from components.errors import ComponentError
    from pipelines.local import synthetic_dataset
    from pipelines.tune import tune

    pipeline, cfg = _config(args)
    if args.trials or args.parallel:
        cfg = cfg.with_overrides(
            {f"tune.{k}": v for k, v in (("trials", args.trials), ("parallel", args.parallel)) if v}
        )
    if args.katib:
        if not (args.train_set and args.holdout_set):
            raise ComponentError(
                "tune", "--katib needs --train-set and --holdout-set", "pass the object store URIs of the two sets"
            )
        import yaml

        from pipelines.katib import experiment

        document = experiment(
            pipeline.spec, cfg, name=args.name or f"{cfg.pipeline}-tune", train_set=args.train_set,
            holdout_set=args.holdout_set,
        )  # fmt: skip
        yaml.safe_dump(document, sys.stdout, sort_keys=False)
        return 0
    data = args.data or str(synthetic_dataset(args.pipeline, cfg, mlops_home()))
    print(f"{cfg.pipeline}: {cfg.tune.trials} trials, {cfg.tune.parallel} at once, {cfg.tune.algorithm} over "
          f"{', '.join(sorted(cfg.tune.space))}; objective {cfg.evaluate.gate_metric}", flush=True)  # fmt: skip
    result = tune(pipeline, cfg, data, Path(args.out).resolve(), tracking_uri=args.tracking_uri)
    for trial in result.trials:
        value = f"{trial[result.metric]:.4f}" if result.metric in trial else trial.get("error", "")[:80]
        print(
            f"  trial {trial['number']:>3}  {trial['state']:<8} {value}  {json.dumps(trial['params'], sort_keys=True)}"
        )
    print(f"best {result.metric} {result.best_value:.4f} ({result.direction}) with {json.dumps(result.best_params)}")
    print(f"  {len(result.trials) - len(result.failed)} of {len(result.trials)} trials completed in "
          f"{result.seconds:.1f} s; MLflow parent run {result.parent_run_id}")  # fmt: skip
    print(f"  patch      {result.patch_path}")
    print(f"  apply it   mlops run {args.pipeline} --config {result.config_path}")
    return 0 if not result.failed else 1


def _trial(args: argparse.Namespace) -> int:
    import tempfile

    import pyarrow.parquet as pq

    from components import artifacts
    from pipelines.local import declaration
    from pipelines.scratch_sets import Sets
    from pipelines.tune import run_trial

    cfg = declaration(args.pipeline).config()
    params: dict[str, Any] = {}
    for name, text in pairs(args.param, "--param").items():
        try:
            params[name] = json.loads(text)
        except json.JSONDecodeError:
            params[name] = text
    m = cfg.materialize
    with artifacts.fetched(args.train_set) as path:
        columns = pq.read_schema(path).names
    features = [c for c in columns if c not in (m.timestamp_column, m.entity_column, m.label_column)]
    sets = Sets(train_set=args.train_set, holdout_set=args.holdout_set, features=features, lineage="")
    with tempfile.TemporaryDirectory(prefix="mlops-trial-") as tmp:
        run_trial(cfg, params, sets, Path(args.out) if args.out else Path(tmp), report=True)
    return 0
