"""The rendered YAML of each reference pipeline, committed beside it as golden files.

`make golden` rewrites them; a test renders again and fails on any difference, so every change
to what reaches a cluster shows up as a reviewed diff. Goldens carry no git sha (it changes
with every commit); `mlops compile` adds it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import yaml

ARGO_FILES = {
    "WorkflowTemplate": "workflow-template.yaml",
    "Workflow": "workflow.yaml",
    "CronWorkflow": "cron-workflow.yaml",
}
KFP_FILE = "kfp-pipeline.yaml"


def _dump(document: dict[str, object]) -> str:
    return yaml.safe_dump(document, sort_keys=False, width=120)


def write_renderings(
    name: str, module: ModuleType, out: Path, *, targets: Iterable[str] = ("argo", "kfp"), git_sha: str = ""
) -> list[Path]:
    from pipelines.argo import render
    from pipelines.kfp import compile_ir

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    cfg = module.config()
    if "argo" in targets:
        for kind, document in render(module.SPEC, cfg, module, git_sha=git_sha).items():
            path = out / ARGO_FILES[kind]
            path.write_text(_dump(document))
            written.append(path)
    if "kfp" in targets:
        path = out / KFP_FILE
        compile_ir(module.SPEC, cfg, module, str(path), cluster=True)
        written.append(path)
    return written


def golden_dir(name: str) -> Path:
    return Path(__file__).parent / name / "golden"


def regenerate(names: Iterable[str]) -> list[Path]:
    from pipelines.local import declaration

    return [path for name in names for path in write_renderings(name, declaration(name), golden_dir(name))]


def drift(name: str) -> list[str]:
    """Golden files whose content differs from a fresh rendering (empty when in step)."""
    from pipelines.local import declaration

    with tempfile.TemporaryDirectory() as tmp:
        fresh = write_renderings(name, declaration(name), Path(tmp))
        return [
            p.name
            for p in fresh
            if not (golden_dir(name) / p.name).exists() or (golden_dir(name) / p.name).read_text() != p.read_text()
        ]


if __name__ == "__main__":
    from pipelines.local import available_pipelines

    for path in regenerate(available_pipelines()):
        print(path)
