"""Run one step of a declared pipeline inside a plain container (Argo's Container templates).

The binding of a step's inputs and outputs to its component's arguments is written once, in
the KFP op (pipelines/kfp_components.py). On Argo, `mlops task <pipeline> <step>` calls that
same op function with plain stand-ins for KFP's artifact objects: input artifacts at the
paths Argo downloaded them to, outputs under --outputs-dir for Argo to upload, and each
returned parameter written to --outputs-dir/<name> for `valueFrom.path`.
"""

from __future__ import annotations

import inspect
import json
import os
import typing
from pathlib import Path
from typing import Any

from kfp.dsl.types import type_annotations

from pipelines.team_steps import OUTPUT_URIS_VARIABLE, load_op

__all__ = ["PathArtifact", "run_task"]


class PathArtifact:
    """What an op needs of a KFP artifact: a local path and a metadata dict."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.uri = str(path)
        self.metadata: dict[str, Any] = {}

    def log_metric(self, metric: str, value: float) -> None:
        self.metadata[metric] = value


def _convert(text: str, annotation: Any) -> Any:
    if annotation in (list, dict) or typing.get_origin(annotation) in (list, dict):
        return json.loads(text)
    if annotation is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    if annotation in (int, float):
        return annotation(text)
    return text


def _render_parameter(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def run_task(
    pipeline: str, step_name: str, inputs: dict[str, str], parameters: dict[str, str], outputs_dir: Path
) -> None:
    from pipelines.local import declaration

    step = declaration(pipeline).spec.step(step_name)
    op = load_op(step.component)
    outputs_dir.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    # where Argo stores an output later steps read by URI (a team features step's dataset)
    stored: dict[str, str] = json.loads(os.environ.get(OUTPUT_URIS_VARIABLE) or "{}")
    for name, parameter in inspect.signature(op).parameters.items():
        annotation = parameter.annotation
        if type_annotations.is_artifact_wrapped_in_Output(annotation):
            kwargs[name] = PathArtifact(outputs_dir / name)
            kwargs[name].uri = stored.get(name, kwargs[name].uri)
        elif type_annotations.is_artifact_wrapped_in_Input(annotation):
            if name not in inputs:
                raise SystemExit(f"step {step_name}: input artifact {name!r} not given (--input {name}=PATH)")
            kwargs[name] = PathArtifact(Path(inputs[name]))
        else:
            if name not in parameters:
                raise SystemExit(f"step {step_name}: parameter {name!r} not given (--param {name}=VALUE)")
            kwargs[name] = _convert(parameters[name], annotation)
    returned = op(**kwargs)
    if returned is None:
        return
    fields = [field for field, _ in typing.get_type_hints(op)["return"].__annotations__.items()]
    for field, value in zip(fields, returned, strict=True):
        (outputs_dir / field).write_text(_render_parameter(value))
