"""Render a PipelineSpec into a KFP v2 pipeline: compile it to IR, or run it with kfp.local.

Everything about a step (retry, resources, condition, image) is read from the declaration; this
module only translates.

Caching: off for every task compiled for a cluster. KFP keeps its cache in ML Metadata, which has
no authentication and no per-namespace separation, and every tenant's Workflow pods must reach it
(KFP's driver and launcher run there): pricing's pods could rewrite a cached execution of fraud's,
and on a hit KFP's driver hands fraud those outputs by execution id without running the step (issue
29 review finding 2). On a cluster, use the Argo engine to reuse results: its memoization cache is a
ConfigMap in the tenant's own namespace (pipelines/caching.py). Local runs (kfp.local) keep their
cache, under the user's own directory.

Retries: KFP's retry policy cannot tell exit codes apart, so a task-level retry would repeat a
permanent failure (bad data, a gate refusal) as often as a transient one, and on the GPU
step burn accelerator hours doing it. The safe side, for every step: no task-level retry, and
the step's own runtime (pipelines/runtime.py) retries only its transient failures, in the
pod, with the declared backoff (MLOPS_STEP_RETRY). A pod lost whole (evicted, OOM-killed) is
not retried on KFP; on Argo the retryStrategy covers it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Callable, Iterator
from typing import Any

from kfp import dsl

from components.config import PipelineConfig
from components.environment import IMAGE_VARIABLE
from components.errors import ComponentError
from components.steps.trainjob import TEMPLATE_VARIABLE
from pipelines.caching import NAMESPACE_VARIABLE
from pipelines.cluster import TRAINING_POOL
from pipelines.contract import check
from pipelines.declaration import PipelineDeclaration, RunInputs
from pipelines.kfp_components import notify_failure
from pipelines.rayjob import launcher_environment
from pipelines.resources import sized
from pipelines.runtime import STEP_RETRY_VARIABLE
from pipelines.spec import GPU_RESOURCE, ROLLOUT, PipelineSpec, Step
from pipelines.team_steps import load_op
from pipelines.trainer import launcher_template

__all__ = ["apply_cluster_environment", "apply_policies", "build_pipeline", "compile_ir"]


def apply_policies(task: Any, step: Step, *, retries: bool = True) -> None:
    """Set retry, resources and name from the declaration, and caching off (see the module's docstring).

    Retries run inside the step, for transient failures only (see the module's docstring).
    `retries=False` (local runs by default) keeps a failing step from waiting out its
    backoffs on a laptop; compiled IR always carries the declared policy.
    """
    if retries:
        task.set_env_variable(STEP_RETRY_VARIABLE, step.retry.to_json())
    task.set_cpu_limit(step.resources.cpu)
    if step.resources.memory is not None:
        task.set_memory_limit(step.resources.memory)
    if step.resources.gpu:
        task.set_accelerator_type(GPU_RESOURCE)
        task.set_accelerator_limit(step.resources.gpu)
    # on a cluster KFP's cache is shared by every tenant (module docstring); only a local run's
    # own key, which carries the data's digest, may enable it (build_pipeline)
    task.set_caching_options(False)
    task.set_display_name(step.name)


def _no_ephemeral_storage(spec: PipelineSpec) -> None:
    """KFP 2's tasks take cpu, memory and accelerators but no ephemeral storage (kubeflow/pipelines
    issue 11137): refuse a size Kubeflow would silently drop, rather than render without it."""
    for step in spec.steps:
        if step.resources.ephemeral_storage is not None:
            raise ComponentError(
                "config",
                f"resources.{step.name}.ephemeral_storage is set, and Kubeflow Pipelines 2 cannot give a task "
                "ephemeral storage (kubeflow/pipelines#11137)",
                f"remove resources.{step.name}.ephemeral_storage from config.yaml to run on Kubeflow, "
                "or submit with `--engine argo`, which sets it",
            )


def _components(spec: PipelineSpec) -> dict[str, Any]:
    built: dict[str, Any] = {}
    for step in spec.steps:  # a team's step by its import path (pipelines/team_steps.py), in the same image
        built[step.name] = dsl.component(load_op(step.component), base_image=spec.image, install_kfp_package=False)
        # the task is named after the step, not the function: a check's notify runs notify's as `notify-<check>`
        built[step.name].component_spec.name = step.name
    return built


def apply_cluster_environment(task: Any, step: Step, cfg: PipelineConfig) -> None:
    """Settings as env, credentials from Secrets via kfp-kubernetes, GPU steps on the training pool,
    and the pod's namespace from the downward API (require_namespace reads it)."""
    from kfp import kubernetes

    from components.platform.settings import CONFIGMAP, configmap_keys
    from pipelines.cluster import secret_environment

    kubernetes.use_config_map_as_env(task, config_map_name=CONFIGMAP, config_map_key_to_env=_identity(configmap_keys()))
    by_secret: dict[str, dict[str, str]] = {}
    for ref in secret_environment(cfg):
        by_secret.setdefault(ref.secret, {})[ref.key] = ref.env
    for secret, keys in by_secret.items():
        kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=keys)
    kubernetes.use_field_path_as_env(task, env_name=NAMESPACE_VARIABLE, field_path="metadata.namespace")
    if step.resources.gpu:
        for key, value in TRAINING_POOL.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        kubernetes.add_toleration(task, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")


def _failure_notice(spec: PipelineSpec, cfg: PipelineConfig) -> Any:
    """The exit handler's task: the same notice, for the same owner, as Argo's (pipelines/argo.py)."""
    from kfp import kubernetes

    from components.platform.settings import CONFIGMAP, configmap_keys

    op = dsl.component(notify_failure, base_image=spec.image, install_kfp_package=False)
    task = op(pipeline=spec.name, owner=cfg.owner, namespace=cfg.cluster.namespace)
    task.set_display_name("notify-failure")
    task.set_caching_options(False)
    task.set_cpu_limit("500m")
    task.set_memory_limit("512Mi")
    task.set_env_variable(STEP_RETRY_VARIABLE, ROLLOUT.to_json())  # an unreachable Pushgateway is retried
    kubernetes.use_config_map_as_env(task, config_map_name=CONFIGMAP, config_map_key_to_env=_identity(configmap_keys()))
    return task


def _identity(keys: set[str]) -> dict[str, str]:
    return {key: key for key in sorted(keys)}


def build_pipeline(
    declaration: PipelineDeclaration,
    cfg: PipelineConfig,
    *,
    retries: bool = True,
    cluster: bool = False,
    cache_keys: dict[str, str] | None = None,
) -> Callable[..., Any]:
    """The KFP pipeline function of `spec`, with plain arguments taken from `declaration`.

    `cluster=True` renders for Kubeflow: cluster defaults for the run inputs and each task's
    environment and Secrets; local runs leave both out. `cache_keys` (pipelines/caching.py)
    turns on kfp.local's cache of the steps it names, each under its own key (a local run knows
    the data's digest before it starts). On Kubeflow no task is cached: KFP's cache lives in ML
    Metadata, which every tenant's pods can read and write (the module's docstring).
    """
    spec = sized(declaration.spec, cfg)  # config.yaml's resources, checked against admission and quota
    if cluster:
        _no_ephemeral_storage(spec)
    ops = _components(spec)
    names = RunInputs.names()

    def body(*args: Any, **kwargs: Any) -> None:
        run = {**dict(zip(names, args, strict=False)), **kwargs, "run_id": dsl.PIPELINE_JOB_NAME_PLACEHOLDER}
        parameters = declaration.step_parameters(cfg, run)
        check(spec.steps, parameters)  # the wiring agrees with each op's contract, or ValueError
        tasks: dict[str, Any] = {}

        def create(step: Step) -> None:
            wired = {name: tasks[src.split(".")[0]].outputs[src.split(".")[1]] for name, src in step.inputs.items()}
            task = ops[step.name](**wired, **parameters[step.name])
            for name in step.after:
                task.after(tasks[name])
            apply_policies(task, step, retries=retries)
            if cache_keys and step.name in cache_keys and not cluster:
                task.set_caching_options(True, cache_key=cache_keys[step.name])
            if cluster:
                apply_cluster_environment(task, step, cfg)
                task.set_env_variable(IMAGE_VARIABLE, spec.image)  # the lineage records it
                if step.component == "components.steps.train:train" and cfg.train.distributed is not None:
                    # KFP has no resource template: the train task launches the TrainJob itself
                    task.set_env_variable(TEMPLATE_VARIABLE, json.dumps(launcher_template(spec, step, cfg)))
                for name, value in launcher_environment(spec, step, cfg).items():  # engine ray: the RayJob
                    task.set_env_variable(name, value)
            tasks[step.name] = task

        if not cluster:  # a local run reports its own failure (`mlops run` names the step)
            _place(list(spec.steps), 0, tasks, create)
            return
        with dsl.ExitHandler(exit_task=_failure_notice(spec, cfg), name="notify-on-exit"):
            _place(list(spec.steps), 0, tasks, create)

    defaults = RunInputs.on_cluster(cfg).as_dict()
    if not cluster:  # a local run names its data; the cluster's URI is no default here
        defaults.pop("raw_data")
    parameters = [
        inspect.Parameter(
            name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=annotation,
            **({"default": defaults[name]} if name in defaults else {}),
        )
        for name, annotation in RunInputs.types().items()
    ]
    body.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    body.__annotations__ = {p.name: p.annotation for p in parameters}
    body.__name__ = spec.name
    pipeline: Callable[..., Any] = dsl.pipeline(name=spec.name, description=spec.description)(body)
    return pipeline


def _place(steps: list[Step], depth: int, tasks: dict[str, Any], create: Callable[[Step], None]) -> None:
    """Create the steps whose conditions all hold at this depth, then nest one dsl.If (and its
    dsl.Else) per condition at the next depth, in declaration order."""
    for step in steps:
        if len(step.when) == depth:
            create(step)
    grouped: dict[tuple[str, str], dict[bool, list[Step]]] = {}
    for step in steps:
        if len(step.when) > depth:
            condition = step.when[depth]
            grouped.setdefault((condition.step, condition.output), {}).setdefault(condition.equals, []).append(step)
    for (source, output), branches in grouped.items():
        gate = tasks[source].outputs[output]
        if branches.get(True):
            with _branch(gate, True, output, first=True):
                _place(branches[True], depth + 1, tasks, create)
        if branches.get(False):
            with _branch(gate, False, output, first=not branches.get(True)):
                _place(branches[False], depth + 1, tasks, create)


@contextlib.contextmanager
def _branch(gate: Any, value: bool, output: str, *, first: bool) -> Iterator[None]:
    """dsl.If for the first branch of a gate, dsl.Else for the other."""
    if first:
        with dsl.If(gate == value, name=output if value else f"not-{output}"):
            yield
    else:
        with dsl.Else(name="otherwise"):
            yield


def compile_ir(
    declaration: PipelineDeclaration, cfg: PipelineConfig, package_path: str, *, cluster: bool = True
) -> None:
    from kfp import compiler

    compiler.Compiler().compile(build_pipeline(declaration, cfg, cluster=cluster), package_path=package_path)
