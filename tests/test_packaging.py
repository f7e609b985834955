"""Packaging: every module the code imports is declared, and compiling needs no training stack.

The base install renders, compiles and submits pipelines; torch, Feast, MLflow and the other
step libraries come with the extras (pyproject.toml). A child process whose imports of those
libraries fail proves the compile path never reaches them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import REPO

HEAVY = ("torch", "feast", "mlflow", "great_expectations", "xgboost", "sklearn", "pandas", "numpy", "pyarrow",
         "tritonclient", "treelite", "boto3", "redis", "psycopg", "psycopg2", "matplotlib")  # fmt: skip
BLOCKER = f"""
import runpy, sys
BLOCKED = {set(HEAVY)!r}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not in the base install")
        return None
sys.meta_path.insert(0, Blocker())
sys.argv = ["mlops", *sys.argv[1:]]
runpy.run_module("mlops.cli", run_name="__main__")
"""
# Imported by code that runs elsewhere, or installed apart from the extras, with the reason.
NOT_DECLARED = {
    "triton_python_backend_utils": "provided by Triton's python backend to the model it loads",
    "opa_bindings": "the real OPA engine, installed pinned by the Makefile (its wheel declares Python >= 3.14)",
    "kserve": "the scoring transformer's own environment (transformer-constraints.txt): kserve pins psutil<6",
    "fastapi": "KServe's model server, in the transformer's own environment (the request guard's handlers)",
    "starlette": "under FastAPI, in the transformer's own environment (the request guard's handlers)",
}


def test_the_transformer_environment_pins_what_the_transformer_imports() -> None:
    pins = dict(
        line.split("==", 1) for line in (REPO / "transformer-constraints.txt").read_text().splitlines() if "==" in line
    )
    assert pins["kserve"] == "0.21.0"
    transformer_side = ("feast", "redis", "tritonclient", "grpcio", "pydantic", "PyYAML", "numpy", "psycopg")
    for distribution in (*transformer_side, "fastapi", "starlette"):
        assert distribution in pins, f"transformer-constraints.txt lacks {distribution}"


@pytest.mark.parametrize(
    "args", [["--help"], ["compile", "fraud", "--target", "argo"], ["compile", "forecast", "--target", "kfp"]]
)
def test_compiling_needs_no_training_or_platform_library(args: list[str], tmp_path: Path) -> None:
    if args[0] == "compile":
        args = [*args, "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, "-c", BLOCKER, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    if args[0] == "compile":
        assert list(tmp_path.iterdir()), "nothing was rendered"


def test_the_blocker_blocks() -> None:
    """Positive control: the same child fails where a heavy import is needed (`mlops step` reads the components)."""
    done = subprocess.run([sys.executable, "-c", BLOCKER, "step", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode != 0 and "is not in the base install" in done.stderr


def _third_party_imports() -> dict[str, str]:
    stdlib = set(sys.stdlib_module_names)
    local = {"components", "pipelines", "mlops", "devstack", "tests"}
    found: dict[str, str] = {}
    for folder in ("components", "pipelines", "mlops", "devstack"):
        for source in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in stdlib and top not in local and top != "__future__":
                        found.setdefault(top, str(source.relative_to(REPO)))
    return found


def _requirement_name(requirement: str) -> str:
    name = requirement.split(";")[0].split("[")[0]
    for separator in ("==", ">=", "<=", "~=", "!=", "<", ">"):
        name = name.split(separator)[0]
    return name.strip().lower().replace("_", "-")


def test_every_imported_module_is_declared_in_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    for requirements in project["optional-dependencies"].values():
        declared |= {_requirement_name(r) for r in requirements}
    distributions = metadata.packages_distributions()
    missing = {}
    for module, where in _third_party_imports().items():
        if module in NOT_DECLARED:
            continue
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        if not names & declared:
            missing[module] = f"{where} (distribution {sorted(names) or '?'})"
    assert missing == {}, "declare these in pyproject.toml"


def test_mlflow_clients_load_no_foreign_plugin(tmp_path: Path) -> None:
    """Feast registers an MLflow request-header plugin; loading it imports Feast and torch into every
    MLflow process (about 14 s here) and would send a pod's ServiceAccount token to the tracking
    server. The register step's process and `mlops history` must load neither."""
    feast_plugins = [ep.name for ep in metadata.distribution("feast").entry_points if ep.group.startswith("mlflow.")]
    assert feast_plugins, "positive control: Feast does register an MLflow plugin in this environment"
    code = (
        "import json, sys; import components; from components.platform.model_registry import client_at;"
        f"client_at('sqlite:///{tmp_path}/mlflow.db');"
        "import mlflow.tracking.request_header.registry as r; from mlflow import MlflowClient;"
        "print(json.dumps({m: m in sys.modules for m in ('torch', 'feast', 'great_expectations')}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "torch": False,
        "feast": False,
        "great_expectations": False,
    }
    history = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mlops.cli", "history", "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    imported = {line.split("|")[-1].strip().split(".")[0] for line in history.stderr.splitlines() if "|" in line}
    assert history.returncode == 0 and not imported & {"torch", "feast", "great_expectations"}


def test_feast_processes_do_not_import_torch_until_asked() -> None:
    """Feast imports torch as it is imported (~2 s) for tensor outputs no step uses; components
    stands in a lazy wrapper. Positive control: torch still comes when Feast asks for it."""
    code = (
        "import json, sys; import components; from feast import FeatureStore;"
        "import feast.infra.offline_stores.duckdb, feast.infra.offline_stores.dask;"
        "before = 'torch' in sys.modules; from feast.torch_wrapper import get_torch; version = get_torch().__version__;"
        "print(json.dumps({'before': before, 'after': 'torch' in sys.modules, 'version': version}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["before"] is False and outcome["after"] is True and outcome["version"].startswith("2.")
