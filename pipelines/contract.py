"""A step's contract, read from its KFP op's typed signature (pipelines/kfp_components.py): the one
place a step's inputs, outputs and their types are written.

Everything else is derived from it: the Argo template's inputs and outputs, which upstream
outputs are parameters and which artifacts, the local runner's output files, and the CLI's step
table. `check` proves a declaration agrees with it (its wiring, and the plain arguments its
step_parameters give), so an input added in one place only stops the rendering with its name.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl.types import type_annotations

from pipelines.kfp_components import OPS

__all__ = ["KFP_ONLY_OUTPUTS", "StepContract", "check", "contract_of", "is_parameter"]

KFP_ONLY_OUTPUTS = (dsl.Metrics,)
"""Outputs only KFP's UI reads (logged metrics): no file for Argo to collect."""


@dataclass(frozen=True)
class StepContract:
    op: Callable[..., Any]
    artifact_inputs: tuple[str, ...]
    parameter_inputs: tuple[str, ...]
    """Plain arguments: from the config, the run's inputs, or an upstream parameter output."""
    artifact_outputs: tuple[str, ...]
    parameter_outputs: tuple[str, ...]
    """The op's returned NamedTuple fields: what other steps branch on or consume."""


def _artifact_class(annotation: Any) -> Any:
    return type_annotations.get_io_artifact_class(annotation)


def contract_of(component: str) -> StepContract:
    """The contract of a built-in op (OPS), or of a team's step function by its import path
    ("churn_pipeline.steps:engineer_features", pipelines/team_steps.py), read the same way."""
    from pipelines.team_steps import load_op

    op = OPS.get(component) or load_op(component)
    artifact_inputs, parameter_inputs, artifact_outputs = [], [], []
    for name, parameter in inspect.signature(op).parameters.items():
        annotation = parameter.annotation
        if type_annotations.is_artifact_wrapped_in_Output(annotation):
            if not issubclass(_artifact_class(annotation), KFP_ONLY_OUTPUTS):
                artifact_outputs.append(name)
        elif type_annotations.is_artifact_wrapped_in_Input(annotation):
            artifact_inputs.append(name)
        else:
            parameter_inputs.append(name)
    returned = typing.get_type_hints(op).get("return")
    parameter_outputs = tuple(getattr(returned, "__annotations__", {}) or ())
    return StepContract(
        op=op,
        artifact_inputs=tuple(artifact_inputs),
        parameter_inputs=tuple(parameter_inputs),
        artifact_outputs=tuple(artifact_outputs),
        parameter_outputs=parameter_outputs,
    )


def is_parameter(contracts: Mapping[str, StepContract], reference: str) -> bool:
    """Whether `step.output` names a parameter output (else an artifact)."""
    source, output = reference.split(".")
    return output in contracts[source].parameter_outputs


def check(steps: Any, plain_arguments: Mapping[str, Mapping[str, Any]]) -> dict[str, StepContract]:
    """Each step's contract, after proving the declaration agrees with it; raises ValueError naming
    the step and the input otherwise. `steps` is a PipelineSpec's steps."""
    contracts = {step.name: contract_of(step.component) for step in steps}
    problems = []
    for step in steps:
        contract = contracts[step.name]
        for name, reference in step.inputs.items():
            source, _, output = reference.partition(".")
            if source not in contracts:
                problems.append(f"{step.name}.{name} is wired to an unknown step {source!r}")
                continue
            made = contracts[source].artifact_outputs + contracts[source].parameter_outputs
            if output not in made:
                problems.append(f"{step.name}.{name} is wired to {reference}, which {source}'s op does not output")
        wired_parameters = {name for name, ref in step.inputs.items() if is_parameter(contracts, ref)}
        given = set(plain_arguments.get(step.name, {})) | wired_parameters
        for kind, taken, supplied, source_name in (
            ("artifact input", contract.artifact_inputs, set(step.inputs) - wired_parameters, "the DAG"),
            ("parameter", contract.parameter_inputs, given, "step_parameters"),
        ):
            for name in sorted(set(taken) ^ supplied):
                missing, extra = f"the op takes it but {source_name} gives none", f"{source_name} gives it but"
                where = missing if name in taken else f"{extra} the op does not take it"
                problems.append(f"{step.name}: {kind} {name!r}: {where}")
    if problems:
        raise ValueError(
            "the declaration disagrees with the steps' contracts (pipelines/kfp_components.py):\n  "
            + "\n  ".join(problems)
        )
    return contracts
