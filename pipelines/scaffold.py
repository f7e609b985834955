"""`mlops new <name> --from fraud --out DIR`: a team's pipeline as a project of its own.

The project depends on this library at its exact version and holds only what a team changes:
the package `<name>_pipeline/` (declaration, config.yaml, the GE suite, the Feast repo, the data
loader, golden YAML), a pyproject.toml that registers the pipeline (entry-point group
private_mlops.pipelines), the library's pinned constraints, a Makefile, a Containerfile that
layers the package on this library's component image, a CI workflow and a test. It runs as
written (`make demo`) on the source pipeline's synthetic data.

The config copy keeps the source's comments (ruamel round-trip) and renames what must be unique
per pipeline: the pipeline and Feast project names, the registered model, the namespaces, the
Feast definitions module (Feast imports repo files by module name).

The project installs only from the index it declares (`mlops new --index-url`, by default the
index-url of pip's configuration here), with hashes: requirements.lock pins every package with
its sha256 (`make lock` writes it from pip's install report, lock.py), the venv installs it with
`--require-hashes`, and the package itself with `--no-index`. A public index that serves a
package named private-mlops (dependency confusion) is never asked, and a changed file is refused.

A new pipeline starts as its own team's, never the source's: `--owner` (required, an email) is
the pipeline's and the model card's owner, so its alerts page its on-call; the team tag, the
feature service (`<name>_model_v1`), the suite's name, the registered model and the namespaces
take the new name; `--model` sets `train.model_type`. What only the team can write is left as a
`TODO(mlops-new): <what to write>` placeholder (pipelines/placeholders.py): the model card's
purpose and known limits, and beside the feature names, the label, the entity, the categorical
features, the GE suite's columns and the data generator. The columns themselves stay the
source's, because the demo's data.py writes them: the project must run `make demo` end to end on
synthetic data before the team changes anything, so a placeholder is text (a model-card string,
a comment, a suite note, a docstring line), never a column the run reads. `mlops new` prints the
placeholders as its checklist and `mlops lint --pipeline` refuses a pipeline that still holds one:
both scan the files for the token, so the checklist and the check are one list.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from components.errors import ComponentError
from components.model_kinds import BUILTIN_KINDS

__all__ = [
    "CPU_TRAINED",
    "EMAIL",
    "INDEX_SCHEMES",
    "MODEL_KINDS",
    "MODEL_PARAMS",
    "NAME",
    "PIPELINES_DIR",
    "PROJECT_FILES",
    "TEMPLATES",
    "configured_index_url",
    "index_url_for",
    "scaffold_project",
    "shadowed_module",
]

NAME = re.compile(r"[a-z][a-z0-9]{1,30}")  # always fullmatch: "$" also matches before a final newline
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")  # fullmatch
MODEL_KINDS = tuple(BUILTIN_KINDS)  # `mlops new --model`: train.model_type, one of the library's kinds
# train.params of a kind the source's params (tree boosting: rounds, depth, rate) do not fit
CPU_TRAINED = frozenset({"lightgbm", "sklearn"})
"""The built-in kinds whose fit runs on CPU only (LightGBM's wheel and scikit-learn): a scaffold for
them sets resources.train.gpu: 0 instead of the standard DAG's one GPU."""
MODEL_PARAMS: dict[str, dict[str, Any]] = {
    "pytorch_mlp": {},
    # leaves of 5 rows: the demo's 2% positives at `--rows 4000` pass the gate (LightGBM's default is 20)
    "lightgbm": {"num_boost_round": 200, "max_depth": 6, "learning_rate": 0.1, "min_data_in_leaf": 5},
    "sklearn": {"estimator": "sklearn.linear_model.LogisticRegression", "estimator_params": {"max_iter": 500}},
}
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


def _check_name(name: str, out: Path) -> str:
    if not NAME.fullmatch(name):
        raise ComponentError(
            "new",
            f"pipeline name {name!r} is not lowercase letters and digits (2-31, letter first)",
            "pick a name such as churn or pricing2: it becomes a Python package, a Feast project and Kubernetes names",
        )
    package = f"{name}_pipeline"
    for candidate in (name, package):
        collision = shadowed_module(candidate)
        if collision:
            raise ComponentError("new", f"pipeline name {name!r} collides with {collision}",
                                 f"pick another name, e.g. {name}model or team{name}")  # fmt: skip
    if out.exists() and any(out.iterdir()):
        raise ComponentError("new", f"{out} exists and is not empty", "choose another --out, or delete the folder")
    return package


def _check_owner_and_model(owner: str, model: str) -> None:
    if not EMAIL.fullmatch(owner or ""):
        raise ComponentError(
            "new",
            f"--owner {owner!r} is not an email address",
            "pass the on-call address that owns the pipeline (its drift alerts and model card name it),"
            " e.g. --owner churn-oncall@bank.internal",
        )
    if model not in MODEL_KINDS:
        raise ComponentError("new", f"--model {model!r} is not one of {', '.join(MODEL_KINDS)}",
                             "pick one of them (train.model_type in config.yaml)")  # fmt: skip


def _todo(text: str) -> str:
    from pipelines.placeholders import TOKEN

    return f"{TOKEN} {text}"


def _own_config(config: Any, name: str, owner: str, model: str) -> None:
    """The copied config.yaml made the new team's: its owner and model, placeholders where only it can write."""
    config["owner"] = owner
    if model in MODEL_PARAMS and config["train"]["model_type"] != model:
        config["train"]["params"] = MODEL_PARAMS[model]
    config["train"]["model_type"] = model
    tune = config.get("tune")
    if tune and tune.get("space"):  # the source's ranges name its own params: keep those the new params have
        for unfit in [key for key in tune["space"] if key not in config["train"]["params"]]:
            del tune["space"][unfit]
        if not tune["space"]:
            tune["space"] = {}
            tune.yaml_add_eol_comment(
                f"none of {name}'s train.params yet: list them with ranges before mlops tune", "space"
            )
    config["materialize"]["feature_service"] = f"{name}_model_v1"
    card = config["model_card"]
    card["owner"] = owner
    card["purpose"] = _todo(f"what the {name} model scores, when, and what a score decides")
    card["known_limits"] = [_todo("the data window, populations and inputs the model was not evaluated on")]
    materialize = config["materialize"]
    materialize.yaml_add_eol_comment(
        _todo(f"{name}'s outcome column (the demo data's is {materialize['label_column']})"), "label_column"
    )
    materialize.yaml_add_eol_comment(_todo(f"the column keying {name}'s entity"), "entity_column")
    materialize.yaml_add_eol_comment(
        _todo(f"{name}'s event-time column (naive times: set materialize.timezone too)"), "timestamp_column"
    )
    materialize.yaml_add_eol_comment(_todo(f"the columns {name}'s scoring request carries"), "request_features")
    if model in CPU_TRAINED:  # no GPU to ask the train pod for: it would hold one idle for the whole fit
        config["resources"] = {"train": {"gpu": 0}}
    config["drift"].yaml_add_eol_comment(_todo(f"{name}'s categorical features"), "categorical_features")


def _own_files(package_dir: Path, source: str, name: str) -> None:
    """The feature repo, the GE suite and the data generator: the new name, and placeholders beside the columns."""
    renames = {
        f'team="{source}"': f'team="{name}"',
        f"{source}_model_v1": f"{name}_model_v1",
        f"the {source} pipeline": f"the {name} pipeline",
        f"the {source} model": f"the {name} model",
    }
    notes = {
        r"^(\w+ = Entity\()": f"the entity {name} scores and its join key (the demo's, until data.py changes)",
        r"^(\w+ = team_feature_view\()": f"{name}'s features, computed as of each event (docs/data-contract.md);"
        " rename them in data.py, expectations.json and config.yaml together",
    }
    for module in (package_dir / "feature_repo").glob(f"{name}_*.py"):
        text = module.read_text()
        for old, new in renames.items():
            text = text.replace(old, new)
        for pattern, what in notes.items():
            text = re.sub(pattern, f"# {_todo(what)}\n" + r"\1", text, count=1, flags=re.M)
        module.write_text(text)
    suite = package_dir / "expectations.json"
    note = _todo(f"{name}'s columns: the raw data's entity, timestamp, label and features (the demo's are here)")
    suite.write_text(re.sub(r'^  "name": .*,$', f'  "name": "{name}_raw",\n  "notes": "{note}",',
                            suite.read_text(), count=1, flags=re.M))  # fmt: skip
    data = package_dir / "data.py"
    if data.is_file():
        text = data.read_text()
        line = _todo(f"load {name}'s data here (or run with --data FILE); this generator is the demo's.")
        data.write_text(text.replace('"""', f'"""{line}\n\n', 1))


def _copy_package(source: str, name: str, package_dir: Path, owner: str, model: str) -> None:
    from ruamel.yaml import YAML

    from pipelines.local import declaration

    origin = declaration(source).folder
    if not (origin / "config.yaml").is_file():
        raise ComponentError("new", f"pipeline {source!r} has no config.yaml to copy", "use --from fraud or forecast")
    shutil.copytree(origin, package_dir, ignore=shutil.ignore_patterns("golden", "__pycache__", "data", "*.pyc"))
    for module in (package_dir / "feature_repo").glob(f"{source}_*.py"):
        module.rename(module.with_name(module.name.replace(f"{source}_", f"{name}_", 1)))
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # a placeholder stays on one line: the checklist quotes it whole
    yaml.indent(mapping=2, sequence=4, offset=2)
    config_path = package_dir / "config.yaml"
    config = yaml.load(config_path.read_text())
    config["pipeline"] = name
    config["materialize"]["project"] = name
    config["register"]["model_name"] = f"{name}-model"
    config["register"]["experiment"] = name
    config["promote"]["namespace"] = name
    config["cluster"]["namespace"] = name
    config["cluster"]["team"] = name
    config["cluster"]["raw_data"] = f"s3://{name}-data/{{date}}/extract.parquet"  # dated: components/dated_inputs.py
    _own_config(config, name, owner, model)
    with open(config_path, "w") as handle:
        yaml.dump(config, handle)
    comment = re.compile(rf"^(\s*#.*)\b{source}\b", re.M)  # "# The fraud reference pipeline's ..."
    config_path.write_text(comment.sub(rf"\g<1>{name}", config_path.read_text()))
    _own_files(package_dir, source, name)
    (package_dir / "README.md").unlink(missing_ok=True)
    (package_dir / "__init__.py").write_text(f'"""The {name} pipeline (scaffolded from {source})."""\n')


def _library_pins() -> str:
    """The versions this library runs on here, pinned: the team installs exactly what it was tested with."""
    from importlib import metadata

    pins = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if not name or name.lower().replace("_", "-") == "private-mlops":
            continue
        direct = distribution.read_text("direct_url.json") or ""
        if "dir_info" in direct:
            continue  # installed from a folder (a checkout, editable or not), not a release
        pins[name.lower()] = distribution.version
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


INDEX_SCHEMES = ("https", "http", "file")


def configured_index_url() -> str | None:
    """The index pip installs from here: PIP_INDEX_URL, else an `index-url` in `pip config list`.

    extra-index-url is never taken: an extra index beside the default one is how a public
    package shadows a private one."""
    import os
    import subprocess

    if os.environ.get("PIP_INDEX_URL", "").strip():
        return os.environ["PIP_INDEX_URL"].strip().split()[0]
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False, timeout=60
    )
    for line in listed.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".index-url") and value.strip("'\" "):
            return value.strip().strip("'\"").split()[0]
    return None


def index_url_for(requested: str | None) -> str:
    """The index the project declares: --index-url, else pip's configured one; refused if neither."""
    from urllib.parse import urlsplit

    url = requested or configured_index_url()
    if not url:
        raise ComponentError(
            "new",
            "no package index to bind the project to: --index-url was not given and pip here has no"
            " index-url (PIP_INDEX_URL or `pip config`), and PyPI must not serve private-mlops",
            "pass --index-url https://<your team's index>/simple",
        )
    if urlsplit(url).scheme not in INDEX_SCHEMES or any(c.isspace() or c in "'\"$`\\" for c in url):
        raise ComponentError(
            "new", f"--index-url {url!r} is not an https, http or file URL", "pass e.g. https://pypi.internal/simple"
        )
    return url


TEMPLATES = Path(__file__).with_name("project_template")
# template -> where it goes in the project ($package is the pipeline package)
PROJECT_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "Makefile.tmpl": "Makefile",
    "Containerfile.tmpl": "Containerfile",
    "README.md.tmpl": "README.md",
    "gitignore.tmpl": ".gitignore",
    "ci.yml.tmpl": ".github/workflows/ci.yml",
    "test_pipeline.py.tmpl": "tests/test_pipeline.py",
    "pipeline.py.tmpl": "$package/pipeline.py",
    "lock.py.tmpl": "lock.py",
    "requirements.txt.tmpl": "requirements.txt",
}


def scaffold_project(
    name: str, out: Path, source: str = "fraud", index_url: str | None = None, *, owner: str, model: str = "xgboost"
) -> Path:
    """Write the standalone project; returns its folder. Nothing is left behind on failure."""
    from importlib import metadata
    from string import Template

    from pipelines.standard import IMAGE

    out = out.resolve()
    _check_owner_and_model(owner, model)
    package = _check_name(name, out)
    index = index_url_for(index_url)
    version = metadata.version("private-mlops")
    values = {
        "name": name,
        "package": package,
        "source": source,
        "version": version,
        "index_url": index,
        "owner": owner,
        "model": model,
        "image": f"registry.mlops.internal/{name}/{name}-pipeline:0.1.0",
        "component_image": f"{IMAGE.rsplit(':', 1)[0]}:{version}",
    }
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        _copy_package(source, name, out / package, owner, model)
        for template, relative in PROJECT_FILES.items():
            path = out / Template(relative).substitute(values)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(Template((TEMPLATES / template).read_text()).substitute(values))
        (out / "constraints.txt").write_text(
            f"# The versions private-mlops {version} was installed with when `mlops new` ran (pip install -c).\n"
            "# Upgrading the library: bump private-mlops in pyproject.toml, take the new release's constraints,\n"
            "# run `make golden` and review the diff.\n" + _library_pins()
        )
        from pipelines.golden import write_renderings
        from pipelines.local import declaration

        pipeline = declaration(str(out / package))
        write_renderings(pipeline.name, pipeline, out / package / "golden")
    except Exception:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in list(out.iterdir()):
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink()
        raise
    return out
