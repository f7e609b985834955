"""`mlops new <name> --from fraud`: a new pipeline folder that runs locally unchanged.

The copy keeps the source's config comments (ruamel round-trip) and renames what must be
unique per pipeline: the pipeline and Feast project names, the registered model, the
namespaces, the Feast definitions module (Feast imports repo files by module name, so two
repos must not share one), and renders the new pipeline's golden files.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

from components.errors import ComponentError

NAME = re.compile(r"[a-z][a-z0-9]{1,30}")  # always fullmatch: "$" also matches before a final newline
PIPELINES_DIR = Path(__file__).parent


def shadowed_module(name: str, root: Path = PIPELINES_DIR) -> str | None:
    """What a new package `pipelines.<name>` would hide or be hidden by, or None.

    A pipeline folder is a Python package beside the library's own modules (`mlops new runtime`
    once replaced pipelines/runtime.py for every step), and its name is imported bare by Feast.
    """
    if (root / f"{name}.py").exists() or (root / name).is_dir():
        return f"pipelines/{name}: a module of this library (or a pipeline) already has that name"
    if name in sys.stdlib_module_names:
        return f"the standard-library module {name!r}"
    if importlib.util.find_spec(name) is not None:
        return f"the installed module {name!r}"
    return None


def scaffold(name: str, source: str = "fraud", root: Path = PIPELINES_DIR) -> Path:
    from ruamel.yaml import YAML

    if not NAME.fullmatch(name):
        raise ComponentError(
            "new",
            f"pipeline name {name!r} is not lowercase letters and digits (2-31, letter first)",
            "pick a name such as churn or pricing2: it becomes a Python package, a Feast project and Kubernetes names",
        )
    origin, target = root / source, root / name
    if not target.exists() and (collision := shadowed_module(name, root)):
        raise ComponentError(
            "new",
            f"pipeline name {name!r} collides with {collision}",
            f"pick another name, e.g. {name}pipeline or team{name}",
        )
    if not (origin / "pipeline.py").is_file():
        raise ComponentError("new", f"no pipeline {source!r} to copy from", "use --from fraud or --from forecast")
    if target.exists():
        raise ComponentError("new", f"{target} already exists", "choose another name, or delete the folder first")
    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("golden", "__pycache__", "data", "*.pyc"))
    try:
        for module in (target / "feature_repo").glob(f"{source}_*.py"):
            module.rename(module.with_name(module.name.replace(f"{source}_", f"{name}_", 1)))
        yaml = YAML()
        yaml.preserve_quotes = True
        config_path = target / "config.yaml"
        config = yaml.load(config_path.read_text())
        config["pipeline"] = name
        config["materialize"]["project"] = name
        config["register"]["model_name"] = f"{name}-model"
        config["register"]["experiment"] = name
        config["promote"]["namespace"] = name
        config["cluster"]["namespace"] = name
        config["cluster"]["team"] = name
        config["cluster"]["raw_data"] = f"s3://{name}-data/latest.parquet"
        with open(config_path, "w") as handle:
            yaml.dump(config, handle)
        declaration = target / "pipeline.py"
        text = declaration.read_text().replace(f'name="{source}"', f'name="{name}"')
        text = text.replace(f'"pipelines.{source}"', f'"pipelines.{name}"')
        declaration.write_text(
            f'"""The {name} pipeline, scaffolded from {source}: edit config.yaml, the suite and the '
            f'feature repo."""\n\n' + text.split('"""', 2)[2].lstrip("\n")
        )
        (target / "README.md").write_text(
            f"# The {name} pipeline\n\nScaffolded from `{source}` by `mlops new {name} --from {source}`; it runs as is "
            f"(`mlops run {name}`) on {source}'s synthetic data. Make it yours:\n\n"
            "1. `config.yaml`: owner, label and features under `materialize`, model and objective under `train`, "
            "the gate under `evaluate`, names and namespaces.\n"
            "2. `expectations.json`: the Great Expectations suite your raw data must pass.\n"
            f"3. `feature_repo/{name}_features.py`: your entity, source and feature view.\n"
            "4. `data.py`: a generator or loader of your data, or run with `--data file.parquet`.\n"
            "5. `make golden` and review the rendered Argo and KFP YAML in `golden/`.\n\n"
            "Components stay untouched: if a step cannot do what you need, file an issue for the component library.\n"
        )
        (target / "__init__.py").write_text(f'"""The {name} pipeline (scaffolded from {source})."""\n')
        import importlib

        importlib.invalidate_caches()
        from pipelines.golden import golden_dir, write_renderings
        from pipelines.local import declaration as load

        write_renderings(name, load(name), golden_dir(name))
    except Exception:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target
