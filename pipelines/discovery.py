"""Where pipelines come from: installed packages that register one, or a folder on disk.

    mlops run fraud               the entry point `fraud` of the group private_mlops.pipelines
    mlops run churn               the same, registered by a team's installed package (mlops new --out)
    mlops run ./churn_pipeline    a pipeline package folder, uninstalled (its parent joins the path)

An entry point names a PipelineDeclaration (`churn_pipeline.pipeline:DECLARATION`). The reference
pipelines register themselves the same way in this library's pyproject.toml, so there is one path
through the code for theirs and a team's. Every command that takes a pipeline goes through
`declaration`.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib import metadata
from pathlib import Path

from components.errors import ComponentError
from pipelines.declaration import PipelineDeclaration

__all__ = ["ENTRY_POINT_GROUP", "available_pipelines", "canonical", "declaration", "is_path", "registered"]

ENTRY_POINT_GROUP = "private_mlops.pipelines"


def registered() -> dict[str, metadata.EntryPoint]:
    """The installed pipelines by name (the first distribution on the path wins a duplicate name)."""
    found: dict[str, metadata.EntryPoint] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry)
    return found


def available_pipelines() -> tuple[str, ...]:
    return tuple(sorted(registered()))


def is_path(reference: str) -> bool:
    """A pipeline given as a folder: it contains a separator or starts with a dot."""
    return os.sep in reference or "/" in reference or reference.startswith(".")


def canonical(reference: str) -> str:
    """The reference a child process resolves the same way: a folder as an absolute path."""
    return str(Path(reference).resolve()) if is_path(reference) else reference


def _package_of(folder: Path) -> tuple[Path, str]:
    """The import root and dotted package name of a folder (a subpackage keeps its parents)."""
    parts, root = [folder.name], folder.parent
    while (root / "__init__.py").is_file():
        parts.insert(0, root.name)
        root = root.parent
    return root, ".".join(parts)


def _from_folder(reference: str) -> PipelineDeclaration:
    folder = Path(reference).resolve()
    if not (folder / "pipeline.py").is_file() or not (folder / "__init__.py").is_file():
        raise ComponentError(
            "pipeline",
            f"{folder} is not a pipeline package (no __init__.py and pipeline.py in it)",
            "point at the package folder `mlops new` wrote, e.g. ./churn_pipeline",
        )
    root, package = _package_of(folder)
    top = package.partition(".")[0]
    if top in sys.stdlib_module_names:
        raise ComponentError("pipeline", f"a pipeline package named {top!r} would shadow the standard library's",
                             "rename the folder (mlops new names it <name>_pipeline)")  # fmt: skip
    loaded = sys.modules.get(top)  # `pipelines` always is: this module belongs to it
    where = Path(str(getattr(loaded, "__file__", "") or "")).resolve().parent if loaded else None
    if loaded is not None and where != root / top:
        raise ComponentError(
            "pipeline",
            f"{folder} is package {package!r}, but {top!r} is already {where}: "
            + ("this library's own package" if top == "pipelines" else "another package"),
            "rename the folder (mlops new names it <name>_pipeline), or uninstall the other package",
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
        # the local runner's step processes import the package too
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    importlib.invalidate_caches()
    return _declaration_of(importlib.import_module(f"{package}.pipeline"), str(folder))


def _declaration_of(module: object, where: str) -> PipelineDeclaration:
    found = getattr(module, "DECLARATION", module)
    if not isinstance(found, PipelineDeclaration):
        raise ComponentError(
            "pipeline", f"{where} holds no PipelineDeclaration", "define DECLARATION = standard_pipeline(...) there"
        )
    return found


def declaration(reference: str) -> PipelineDeclaration:
    """The pipeline a command names: a registered name or a package folder."""
    if is_path(reference):
        return _from_folder(reference)
    entry = registered().get(reference)
    if entry is None:
        names = available_pipelines()
        raise ComponentError(
            "run",
            f"unknown pipeline {reference!r} (installed: {', '.join(names) or 'none'})",
            f"install the package that registers it (pip install -e DIR), pass its folder (./{reference}_pipeline), "
            f"or create it: mlops new {reference} --owner YOU@EXAMPLE --from fraud --out ../{reference}-pipeline",
        )
    return _declaration_of(entry.load(), f"entry point {entry.value}")
