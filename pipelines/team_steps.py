"""Steps a team adds to the standard DAG without forking the library (issue 31, item 3).

A team step is a plain Python function in the team's own package, declared the way the built-in
ops in pipelines/kfp_components.py are: its signature is its contract (KFP's Input[...] and
Output[...] annotations for artifacts, plain typed parameters, a NamedTuple return for the
parameters it reports). pipelines/contract.py reads it from its import path, so the contract is
written once, in the function. KFP runs the function's source alone, so its imports live inside it.

Two places a team step goes, covering the issue's two examples:

- `TeamStep(kind="features")`: between validate and materialize. It takes the run's data as its
  `raw_data: str` parameter, writes the engineered dataset to an Output[Dataset] and returns that
  dataset's URI and digest (`data_uri`, `data_digest`: components.lineage.data_digest of the file).
  materialize AND drift read that URI instead of the raw data, and materialize checks the digest.
  Why both: the model is trained on the engineered columns, so drift must compare the same columns
  the reference was built from (raw data would lack them and drift would report them missing).
  validate still checks the raw file, which is what the data contract is about. Several feature
  steps chain, each reading the previous one's `data_uri`.
- `TeamStep(kind="check")`: after evaluate, on the retrain branch (a fairness or an explanation
  check). It returns a `passed: bool` output and writes an Output[Artifact] `metrics` in the gate
  notice's form (`{"gate": {"metric", "value", "threshold", "direction"}, "holdout_rows"}`).
  register and promote then run only when evaluate AND every check pass; a failed check sends
  the owner the same notice as a failed gate, from its own notify step (`notify-<check>`, run when
  evaluate passed and the check did not: one notice per refusal).

Example, in a team's `pipeline.py`::

    from pipelines.standard import standard_pipeline
    from pipelines.team_steps import TeamStep

    DECLARATION = standard_pipeline(
        name="churn", description="...", package="churn_pipeline",
        team_steps=(
            TeamStep(kind="features", component="churn_pipeline.steps:engineer_features"),
            TeamStep(kind="check", component="churn_pipeline.steps:fairness",
                     inputs={"model": "train.model", "holdout_set": "materialize.holdout_set"},
                     parameters={"group_column": "region"}),
        ),
    )

Wiring that cannot work is refused here, when the declaration is built (`mlops run` and every
render load it first), naming the step and the fix: an unknown input, a cycle, an output named
like a built-in step's, a step named like a built-in one. Team steps render to Argo and KFP like
the built-ins (same image, the retry class and resources declared here) and are cached like them
(pipelines/caching.py keys a team step by its module's source as well as the library's code).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from components.config import PipelineConfig
from components.errors import ComponentError
from pipelines.declaration import PipelineDeclaration, StepParameters
from pipelines.spec import IO_BOUND, ROLLOUT, Condition, PipelineSpec, Resources, RetryPolicy, Step

__all__ = [
    "CHECK_OUTPUT",
    "DATA_OUTPUT",
    "DATA_PARAMETER",
    "DIGEST_OUTPUT",
    "OUTPUT_URIS_VARIABLE",
    "TEAM_STEP_RESOURCES",
    "TeamStep",
    "data_outputs",
    "declare",
    "handoffs",
    "installed_versions",
    "is_team_component",
    "load_op",
    "module_fingerprint",
    "output_environment",
    "team_parameters",
    "with_team_steps",
]

DATA_PARAMETER = "raw_data"
"""A features step's input: the URI of the data it engineers (the run's, or the previous step's)."""
DATA_OUTPUT = "data_uri"
"""A features step's reported output: the URI of the dataset it wrote, which materialize and drift read."""
DIGEST_OUTPUT = "data_digest"
"""A features step's reported output: its dataset's digest (components.lineage.data_digest), which
materialize checks the bytes it reads against, as it checks validate's for the raw data. validate
stays the step whose digest keys the cluster cache (it comes first: pipelines/caching.py)."""
CHECK_OUTPUT = "passed"
"""A check step's reported output: whether the candidate passed it (joins evaluate's gate)."""
CHECK_NOTICE = "metrics"
"""A check step's artifact the owner's notice is made from (components/steps/notify.py reads it)."""
OUTPUT_URIS_VARIABLE = "MLOPS_OUTPUT_URIS"
"""On Argo, where a step's stored outputs live ({output: s3 URI}): the `uri` a team step returns."""
DATA_READERS = {"materialize": "raw_data", "drift": "current_data"}
"""The built-in steps that read the run's data, and their parameter: a features step's output replaces it."""


TEAM_STEP_RESOURCES = Resources(cpu="1", memory="2Gi")
"""What a team step asks for unless its declaration says otherwise."""


@dataclass(frozen=True, kw_only=True)
class TeamStep:
    """One step a team adds; its name is its function's, with `-` for `_` (KFP's task name)."""

    kind: Literal["features", "check"]
    component: str
    """The function, as "package.module:function" in the team's package."""
    inputs: dict[str, str] = field(default_factory=dict)
    """Artifact or parameter inputs from upstream outputs: input name -> "step.output"."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """Plain arguments; one named like a run input (raw_data, gate_threshold...) gets the run's value
    unless given here, and one left out takes the function's default."""
    retry: RetryPolicy = IO_BOUND
    resources: Resources = TEAM_STEP_RESOURCES
    caching: bool = True

    @property
    def name(self) -> str:
        return self.component.partition(":")[2].replace("_", "-")


def is_team_component(component: str) -> bool:
    from pipelines.kfp_components import OPS

    return component not in OPS


def load_op(component: str) -> Any:
    """The function behind a component reference: a built-in op, or a team's function by import path."""
    import importlib

    from pipelines.kfp_components import OPS

    if component in OPS:
        return OPS[component]
    module_name, _, function_name = component.partition(":")
    try:
        op = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ComponentError(
            function_name or component,
            f"the step's component {component!r} cannot be loaded ({error})",
            "name it as package.module:function, with the package installed (pip install -e .) or the "
            "pipeline given by its folder",
        ) from error
    if not callable(op):
        raise ComponentError(function_name, f"{component!r} is not a function", "point at the step's function")
    return op


def module_fingerprint(component: str) -> str:
    """sha256 of a team step's code and what it runs on: every .py file of the folder its module is in
    (and below: the helpers it imports from its own package) and every installed distribution's
    version (the team's requirements.lock, as installed). Part of its cache key, so an edit to the
    step, to a helper, or a dependency upgrade misses the cache, as an edit to the library does
    (pipelines/caching.py)."""
    op = load_op(component)
    source = inspect.getsourcefile(op)
    digest = hashlib.sha256(component.encode())
    if source:
        folder = Path(source).parent
        for path in sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts):
            digest.update(
                f"{path.relative_to(folder).as_posix()}\0".encode() + hashlib.sha256(path.read_bytes()).digest()
            )
    digest.update("\n".join(installed_versions()).encode())
    return digest.hexdigest()


def installed_versions() -> list[str]:
    """`name==version` of every distribution installed here, sorted: what a team step runs on."""
    from importlib import metadata

    return sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"])


def data_outputs(step: Step) -> tuple[str, ...]:
    """The Output[Dataset] a features step stores where later steps read it by URI (on Argo)."""
    from pipelines.contract import contract_of

    if not is_team_component(step.component) or DATA_OUTPUT not in contract_of(step.component).parameter_outputs:
        return ()
    return contract_of(step.component).artifact_outputs


def _refuse(step: str, problem: str, fix: str) -> ComponentError:
    return ComponentError(step, f"team step {step}: {problem}", fix)


def _check_contract(team: TeamStep, builtin: Mapping[str, Step], made: Mapping[str, tuple[str, ...]]) -> None:
    from pipelines.contract import contract_of

    contract = contract_of(team.component)
    name = team.name
    if name in builtin or name in {f"notify-{n}" for n in builtin}:
        raise _refuse(name, f"{name!r} is a built-in step's name", "rename the function (the step takes its name)")
    reserved = {output for step in builtin.values() for output in contract_of(step.component).parameter_outputs}
    required = {"features": (DATA_OUTPUT, DIGEST_OUTPUT), "check": (CHECK_OUTPUT,)}[team.kind]
    for output in required:
        if output not in contract.parameter_outputs:
            raise _refuse(name, f"a {team.kind} step must return {output!r}", f"return a NamedTuple with {output}")
    if team.kind == "check" and CHECK_NOTICE not in contract.artifact_outputs:
        raise _refuse(name, f"a check step must write Output[Artifact] {CHECK_NOTICE!r}", "add it (the notice)")
    if team.kind == "features" and DATA_PARAMETER not in contract.parameter_inputs:
        raise _refuse(name, f"a features step takes the data as {DATA_PARAMETER}: str", "add that parameter")
    for output in sorted((set(contract.parameter_outputs) & reserved) - set(required)):
        raise _refuse(name, f"output {output!r} is a built-in step's output", f"rename {output} in the NamedTuple")
    for input_name, reference in team.inputs.items():
        source, _, output = reference.partition(".")
        if input_name not in contract.artifact_inputs + contract.parameter_inputs:
            raise _refuse(name, f"input {input_name!r} is not a parameter of {team.component}", "wire its parameters")
        if output not in made.get(source, ()):
            raise _refuse(name, f"input {input_name} is wired to {reference}, which no step outputs",
                          "wire it to step.output, an output another step's function declares")  # fmt: skip
    _check_arguments(team, contract.artifact_inputs, contract.parameter_inputs)
    _check_self_contained(team)


def _globals_read(code: Any) -> set[str]:
    """The global names a code object (and the comprehensions and lambdas inside it) reads."""
    import dis

    found = {i.argval for i in dis.get_instructions(code) if i.opname == "LOAD_GLOBAL"}
    for constant in code.co_consts:
        if hasattr(constant, "co_code"):
            found |= _globals_read(constant)
    return found


def _check_self_contained(team: TeamStep) -> None:
    """KFP runs the function's source alone, under `from kfp.dsl import *` and `from typing import *`:
    a module-level name it reads works under `mlops task` and fails only on Kubeflow, so refuse it now."""
    import builtins
    import typing

    from kfp import dsl

    given = set(dir(builtins)) | set(dir(dsl)) | set(typing.__all__) | {"dsl"}
    outside = sorted(_globals_read(load_op(team.component).__code__) - given)
    if outside:
        raise _refuse(team.name, f"the function reads {', '.join(outside)} from its module; KFP runs its source alone",
                      "import what it uses inside the function, as the library's ops do")  # fmt: skip


def _check_arguments(team: TeamStep, artifacts: tuple[str, ...], parameters: tuple[str, ...]) -> None:
    """Every argument the function takes has a source (a wire, the run, `parameters` or its
    default), and `parameters` names only arguments it takes."""
    from pipelines.declaration import RunInputs

    for given in sorted(set(team.parameters) - set(parameters)):
        raise _refuse(team.name, f"parameters names {given!r}, which {team.component} does not take",
                      f"give only its plain arguments: {', '.join(parameters) or 'none'}")  # fmt: skip
    sourced = set(team.inputs) | set(team.parameters) | set(_defaults(team.component)) | {*RunInputs.names(), "run_id"}
    if team.kind == "features":
        sourced.add(DATA_PARAMETER)
    for missing in [name for name in (*artifacts, *parameters) if name not in sourced]:
        raise _refuse(team.name, f"{missing!r} has no value (no wire, no run input, no parameter, no default)",
                      f"wire it in inputs={{{missing!r}: 'step.output'}} or give it in parameters")  # fmt: skip


def _check_acyclic(steps: tuple[Step, ...], team: set[str]) -> None:
    """Refuse a DAG with a cycle, naming the team's step on it and the steps left waiting."""
    upstream = {step.name: set(step.upstream()) for step in steps}
    done: set[str] = set()
    while len(done) < len(upstream):
        ready = {name for name, before in upstream.items() if name not in done and before <= done}
        if not ready:
            stuck = sorted(set(upstream) - done)
            raise _refuse(
                next((name for name in stuck if name in team), stuck[0]),
                f"the steps {', '.join(stuck)} wait on each other (a cycle)",
                "a features step reads only what validate gives; wire later outputs into a check step",
            )
        done |= ready


def with_team_steps(spec: PipelineSpec, team_steps: tuple[TeamStep, ...]) -> PipelineSpec:
    """`spec` with the team's steps inserted (the module's docstring); refuses wiring that cannot work."""
    from pipelines.contract import contract_of

    if not team_steps:
        return spec
    builtin = {step.name: step for step in spec.steps}
    made = {name: contract_of(step.component).artifact_outputs + contract_of(step.component).parameter_outputs
            for name, step in builtin.items()}  # fmt: skip
    made |= {team.name: contract_of(team.component).artifact_outputs + contract_of(team.component).parameter_outputs
             for team in team_steps}  # fmt: skip
    seen: set[str] = set()
    for team in team_steps:
        if team.name in seen:
            raise _refuse(team.name, "declared twice", "declare each team step once")
        seen.add(team.name)
        _check_contract(team, builtin, made)
    steps = list(spec.steps)
    data, digest, at = None, None, [s.name for s in steps].index("validate") + 1
    for team in (t for t in team_steps if t.kind == "features"):
        inputs = dict(team.inputs) | ({DATA_PARAMETER: data} if data else {})
        steps.insert(at, Step(name=team.name, component=team.component, inputs=inputs, after=("validate",),
                              retry=team.retry, resources=team.resources, caching=team.caching))  # fmt: skip
        data, digest, at = f"{team.name}.{DATA_OUTPUT}", f"{team.name}.{DIGEST_OUTPUT}", at + 1
    retrain = tuple(c for c in builtin["evaluate"].when)
    checks = [t for t in team_steps if t.kind == "check"]
    passed = tuple(Condition(step=t.name, output=CHECK_OUTPUT, equals=True) for t in checks)
    gate_passed = Condition(step="evaluate", output="passed", equals=True)
    rebuilt: list[Step] = []
    for step in steps:
        if data and step.name in DATA_READERS:
            step = replace(step, inputs={**step.inputs, DATA_READERS[step.name]: data})
        if digest and step.name == "materialize":  # it checks it reads the bytes the features step wrote
            step = replace(step, inputs={**step.inputs, DIGEST_OUTPUT: digest})
        if step.name in ("register", "promote"):
            step = replace(step, when=step.when + passed)
        rebuilt.append(step)
        if step.name == "evaluate":
            rebuilt += [
                Step(
                    name=t.name,
                    component=t.component,
                    inputs=dict(t.inputs),
                    after=("evaluate",),
                    when=retrain,
                    retry=t.retry,
                    resources=t.resources,
                    caching=t.caching,
                )
                for t in checks
            ]
    notify = builtin["notify"]
    for team in checks:
        failed = Condition(step=team.name, output=CHECK_OUTPUT, equals=False)
        rebuilt.append(replace(notify, name=f"notify-{team.name}", inputs={"metrics": f"{team.name}.{CHECK_NOTICE}"},
                               when=(*retrain, gate_passed, failed), retry=ROLLOUT))  # fmt: skip
    _check_acyclic(tuple(rebuilt), seen)
    return replace(spec, steps=tuple(rebuilt))


def _defaults(component: str) -> dict[str, Any]:
    op = load_op(component)
    return {
        name: parameter.default
        for name, parameter in inspect.signature(op).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def _require_dated_reader(cfg: PipelineConfig, step: Step, taken: Collection[str]) -> None:
    """A team step given the run's raw_data when cluster.raw_data is dated receives the template, so
    it must take the run's logical date as well, to fill it (components/dated_inputs.py); refused
    here, when the declaration's arguments are made, not in the first nightly's pod."""
    from components.dated_inputs import is_dated

    reads_run_data = DATA_PARAMETER in taken and DATA_PARAMETER not in step.inputs
    if reads_run_data and "logical_date" not in taken and is_dated(cfg.cluster.raw_data):
        raise ComponentError(
            step.name,
            f"team step {step.name} reads the run's raw_data, which is dated ({cfg.cluster.raw_data}), "
            "but takes no logical_date to fill it with",
            "add a `logical_date: str` parameter and read "
            f"components.dated_inputs.resolve(raw_data, logical_date, step={step.name!r}) (docs/forking.md)",
        )


def team_parameters(
    cfg: PipelineConfig,
    run: Mapping[str, Any],
    package: str,
    *,
    base: StepParameters,
    spec: PipelineSpec,
    team_steps: tuple[TeamStep, ...],
) -> dict[str, dict[str, Any]]:
    """The built-in steps' arguments (`base`), a team step's from its declaration, the run and its
    function's defaults, and each check's notify the gate's notify's; a parameter an upstream
    output is wired to (materialize's raw_data from a features step) is the wire's, not the run's."""
    from pipelines.contract import contract_of

    arguments = base(cfg, run, package)
    for team in team_steps:
        taken = contract_of(team.component).parameter_inputs
        _require_dated_reader(cfg, spec.step(team.name), taken)
        given = _defaults(team.component) | {name: run[name] for name in taken if name in run} | team.parameters
        arguments[team.name] = {name: value for name, value in given.items() if name in taken}
        if team.kind == "check":
            arguments[f"notify-{team.name}"] = dict(arguments["notify"])
    for step in spec.steps:
        wired = set(step.inputs)
        arguments[step.name] = {k: v for k, v in arguments.get(step.name, {}).items() if k not in wired}
    return arguments


def declare(declaration: PipelineDeclaration, team_steps: tuple[TeamStep, ...]) -> PipelineDeclaration:
    """A declaration with the team's steps in its DAG and their arguments in its parameters."""
    if not team_steps:
        return declaration
    spec = with_team_steps(declaration.spec, team_steps)
    parameters = functools.partial(team_parameters, base=declaration.parameters, spec=spec, team_steps=team_steps)
    return replace(declaration, spec=spec, parameters=parameters)


def handoffs(spec: PipelineSpec) -> dict[str, str]:
    """Each features step's dataset, by `step.output`: on Argo it is stored unpacked at a key the
    step knows (pipelines/trainer.py: stored_outputs), so the URI it returns is one materialize's
    and drift's pods can read (an Argo artifact is otherwise only a file in the pod that made it)."""
    return {f"{step.name}.{output}": "" for step in spec.steps for output in data_outputs(step)}


def output_environment(step: Step, stored: Mapping[str, str]) -> list[Any]:
    """A team step's OUTPUT_URIS_VARIABLE on Argo: each stored output's s3 URI (pipelines/task.py
    gives it as the output's `uri`); none for a built-in step."""
    from hera.workflows import models as m

    from pipelines.trainer import repository_uri

    if not stored or not is_team_component(step.component):
        return []
    uris = json.dumps({name: repository_uri(key) for name, key in sorted(stored.items())}, sort_keys=True)
    return [m.EnvVar(name=OUTPUT_URIS_VARIABLE, value=uris)]
