"""The layers: mlops -> pipelines -> components, and nothing points back up (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

FORBIDDEN = {
    "components": {"pipelines", "mlops", "devstack", "kfp", "hera"},
    "pipelines": {"mlops", "devstack"},
    "devstack": {"pipelines"},
}


def imports(source: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_module_imports_a_layer_above_it(layer: str) -> None:
    offenders = {
        str(source.relative_to(REPO)): sorted(imports(source) & FORBIDDEN[layer])
        for source in (REPO / layer).rglob("*.py")
        if "feature_repo" not in source.parts and imports(source) & FORBIDDEN[layer]
    }
    assert offenders == {}


def test_the_checker_sees_an_import_positive_control(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("def f():\n    from pipelines.kfp import compile_ir\n")
    assert "pipelines" in imports(source)


# --- Rooms inside components/ (issue 30 item 1): each room imports only what runs where it runs. ---

TRAINING_STACK = frozenset(
    {
        "xgboost",
        "torch",
        "sklearn",
        "mlflow",
        "great_expectations",
        "evidently",
        "scipy",
        "matplotlib",
        "treelite",
        "lightgbm",
        "skl2onnx",
        "onnx",
        "onnxruntime",
    }
)
"""What training and the steps need and the transformer's environment (.venv-transformer, the component
image's /opt/transformer: KServe, Feast, tritonclient) does not hold: importing one there fails."""

ROOMS = {
    "components.serving": {"components.steps"},
    "components.platform": {"components.steps"},
    "components": {"components.steps", "components.serving"},
}
"""Per room, the rooms no module of it may reach, through any chain of imports (lazy ones included).
`components` is the shared modules at the top (errors, config, handoffs, artifacts, tabular, lineage,
environment): every room imports them."""


def component_modules(repo: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module under repo/components."""
    found = {}
    for source in sorted((repo / "components").rglob("*.py")):
        parts = source.relative_to(repo).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = source
    return found


def imported_names(source: Path, known: set[str], *, top_level_only: bool = False) -> set[str]:
    """Full dotted names `source` imports (`from components.platform import services` names the
    module components.platform.services); with top_level_only, only what runs when it is imported."""
    tree = ast.parse(source.read_text())
    nodes = ast.iter_child_nodes(tree) if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found


STUB = "components.serving.triton_stub_model"
"""Copied alone into a model repository as model.py and run inside Triton's python stub, whose
environment (.venv-serving, the Triton image) holds the library that trained the model: it loads the
model with XGBoost or torch, and imports nothing of components."""


def _room_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and parts[1] in ("steps", "serving", "platform") else parts[0]


def reached(repo: Path, start: str, *, top_level_only: bool = False) -> set[str]:
    """The components modules `start` loads, transitively (their packages' __init__ included)."""
    modules = component_modules(repo)
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        if module in seen or module not in modules:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(imported_names(modules[module], set(modules), top_level_only=top_level_only))
    return seen


def room_violations(repo: Path) -> dict[str, list[str]]:
    """Per module: each forbidden room module it reaches, and (serving) each training-stack import."""
    modules = component_modules(repo)
    found: dict[str, list[str]] = {}
    for module in modules:
        room = _room_of(module)
        problems = [
            f"reaches {other}"
            for other in sorted(reached(repo, module))
            if any(other == forbidden or other.startswith(f"{forbidden}.") for forbidden in ROOMS.get(room, ()))
        ]
        if module == STUB:
            own = imported_names(modules[module], set(modules))
            problems += [f"imports {name} (copied alone)" for name in sorted(own) if name.split(".")[0] == "components"]
        elif room == "components.serving":
            own = {name.split(".")[0] for name in imported_names(modules[module], set(modules))}
            problems += [f"imports {name} (training stack)" for name in sorted(own & TRAINING_STACK)]
            for other in sorted(reached(repo, module, top_level_only=True) - {module}):
                at_import = imported_names(modules[other], set(modules), top_level_only=True)
                loaded = {name.split(".")[0] for name in at_import}
                problems += [f"loads {name} through {other}" for name in sorted(loaded & TRAINING_STACK)]
        if problems:
            found[module] = problems
    return found


def test_each_room_imports_only_what_runs_where_it_runs() -> None:
    """issue 30: serving reaches no step and never the training stack (it runs in the transformer's
    environment and in Triton's stub); platform reaches no step; the shared modules reach no room
    but platform. A module's room is its subpackage; the rules follow imports transitively."""
    assert {_room_of(m) for m in component_modules(REPO)} == set(ROOMS) | {"components.steps"}
    assert room_violations(REPO) == {}


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "components" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


ROOM_PACKAGES = {"__init__.py": "", "steps/__init__.py": "", "serving/__init__.py": "", "platform/__init__.py": ""}


def test_the_room_rules_catch_forbidden_imports_positive_control(tmp_path: Path) -> None:
    """issue 30: each rule, shown catching an import on a synthetic tree: serving reaching a step
    through platform (lazily), serving importing the training stack (lazily) and loading it through a
    platform module at import, platform importing a step, a shared module importing serving, the
    Triton stub importing components; a platform module's lazy mlflow import is allowed."""
    repo = _tree(
        tmp_path,
        {
            **ROOM_PACKAGES,
            "steps/train.py": "import xgboost\n",
            "platform/client.py": "def f():\n    from components.steps import train\n",
            "platform/eager.py": "import torch\n",
            "platform/lazy.py": "def f():\n    import mlflow\n",
            "serving/reader.py": "from components.platform import client\n",
            "serving/model.py": "def f():\n    import sklearn\n",
            "serving/join.py": "from components.platform.eager import x\nfrom components.platform import lazy\n",
            "serving/triton_stub_model.py": "import xgboost\nfrom components import errors\n",
            "config.py": "from components.serving import reader\n",
            "errors.py": "from components.platform import lazy\n",
        },
    )
    assert room_violations(repo) == {
        "components.platform.client": ["reaches components.steps", "reaches components.steps.train"],
        "components.serving.reader": ["reaches components.steps", "reaches components.steps.train"],
        "components.serving.model": ["imports sklearn (training stack)"],
        "components.serving.join": ["loads torch through components.platform.eager"],
        "components.serving.triton_stub_model": ["imports components.errors (copied alone)"],
        "components.config": [
            "reaches components.serving",
            "reaches components.serving.reader",
            "reaches components.steps",
            "reaches components.steps.train",
        ],
    }
