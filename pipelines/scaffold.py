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
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

from components.errors import ComponentError

__all__ = [
    "INDEX_SCHEMES",
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


def _copy_package(source: str, name: str, package_dir: Path) -> None:
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
    config_path = package_dir / "config.yaml"
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
}


def scaffold_project(name: str, out: Path, source: str = "fraud", index_url: str | None = None) -> Path:
    """Write the standalone project; returns its folder. Nothing is left behind on failure."""
    from importlib import metadata
    from string import Template

    from pipelines.standard import IMAGE

    out = out.resolve()
    package = _check_name(name, out)
    index = index_url_for(index_url)
    version = metadata.version("private-mlops")
    values = {
        "name": name,
        "package": package,
        "source": source,
        "version": version,
        "index_url": index,
        "image": f"registry.mlops.internal/{name}/{name}-pipeline:0.1.0",
        "component_image": f"{IMAGE.rsplit(':', 1)[0]}:{version}",
    }
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        _copy_package(source, name, out / package)
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
