"""Render a PipelineSpec into Argo Workflows objects with Hera: WorkflowTemplate, Workflow, CronWorkflow.

Each step is a Container template in the component image running `mlops task <pipeline> <step>`,
which calls the same op the KFP rendering compiles (pipelines/task.py). Container templates,
not Hera runner scripts, because the image already holds the code: the rendered YAML carries
no function source, reads the same in `argo get` as in review, and runs with the image alone.

Argo-specific choices, each closing a known trap:
- retryStrategy per step from its retry class, with `expression` skipping the permanent
  failure's exit code (2: bad data or config, components/errors.py) while transient failures
  (75) and unexpected ones (1) are retried; `backoff.cap` per wait, and `backoff.maxDuration`
  set to the whole retry window (it includes pod start-up, argo-workflows#2260);
- every container gets the namespace's `mlops-platform` ConfigMap through `envFrom` and its
  credentials from Secrets (pipelines/cluster.py): no endpoint or local path in the YAML;
- artifacts go through the platform's `artifactRepositoryRef`, passed between tasks by key;
- `depends` on each upstream's `.Succeeded` (not `dependencies`), so a task below a skipped one
  is Omitted rather than left to resolve outputs that were never made;
- an exit handler notifies the owner when the run did not succeed (components/steps/notify.py), and
  the controller counts the failed run by pipeline (pipelines/argo_metrics.py) in case it could not;
- the CronWorkflow sets `startingDeadlineSeconds`, or runs missed while the controller was
  down are silently skipped (argo-workflows#9632), and `concurrencyPolicy: Forbid`; a mutex per
  pipeline serialises the nightly with manual submits, and the drift step's dedupe key keeps
  a second run of the same night from training again;
- the drift step's figures are template metrics (gauges) as well as pushed to the Pushgateway.
"""

from __future__ import annotations

import json
from typing import Any

from hera.workflows import (
    DAG,
    Artifact,
    Container,
    CronWorkflow,
    Parameter,
    Resource,
    S3Artifact,
    Task,
    Workflow,
    WorkflowTemplate,
)
from hera.workflows import models as m

from components.config import PipelineConfig
from components.dated_inputs import logical_date
from components.environment import IMAGE_VARIABLE
from components.errors import PERMANENT_EXIT_CODE
from components.platform.settings import CONFIGMAP
from pipelines.argo_metrics import run_failed_metric, template_metrics
from pipelines.caching import CACHE_CONFIGMAP, CACHE_MAX_AGE, cache_key
from pipelines.cluster import TRAINING_POOL, secret_environment
from pipelines.contract import StepContract, check, is_parameter
from pipelines.declaration import PipelineDeclaration, RunInputs
from pipelines.rayjob import launcher_environment
from pipelines.resources import OOM_KILLED, sized
from pipelines.spec import PipelineSpec, Step
from pipelines.team_steps import handoffs as team_handoffs
from pipelines.team_steps import output_environment
from pipelines.trainer import (
    argo_resource_template,
    argo_task,
    distributed_train,
    stored_outputs,
    trainjob_handoffs,
)

__all__ = [
    "LABEL",
    "PERMANENT_FAILURE",
    "PLATFORM_SETTINGS",
    "RESTRICTED_CONTAINER",
    "RESTRICTED_POD",
    "RUN_ID",
    "SCHEDULED_TIME",
    "Contracts",
    "cron_workflow",
    "depends",
    "render",
    "retry_strategy",
    "step_cache",
    "workflow",
    "workflow_template",
]

LABEL = "mlops.private-platform.io"
PERMANENT_FAILURE = (
    f"asInt(lastRetry.exitCode) != {PERMANENT_EXIT_CODE} && not (lastRetry.message matches '{OOM_KILLED}')"
)
"""Retry only what may pass next time: a permanent error (exit 2, components/errors.py) and a pod
killed for memory (the same limit is hit again; `mlops status` names resources.<step>.memory) are not."""
IN, OUT = "/work/in", "/work/out"
RUN_ID = "{{workflow.name}}"
Contracts = dict[str, StepContract]

# What Pod Security's `restricted` profile asks of a pod and of each container: non-root, the
# runtime's default seccomp profile, no privilege escalation, every capability dropped. Argo's
# own init and wait containers get the same from the controller (manifests/base/argo).
RESTRICTED_POD = m.PodSecurityContext(
    run_as_non_root=True, run_as_user=65532, fs_group=65532, seccomp_profile=m.SeccompProfile(type="RuntimeDefault")
)
RESTRICTED_CONTAINER = m.SecurityContext(
    allow_privilege_escalation=False, capabilities=m.Capabilities(drop=["ALL"]), run_as_non_root=True
)


def _argo_name(name: str) -> str:
    return name.replace("_", "-")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def retry_strategy(step: Step) -> m.RetryStrategy:
    policy = step.retry
    return m.RetryStrategy(
        limit=m.IntOrString(policy.limit),
        retry_policy=policy.retry_on,
        expression=PERMANENT_FAILURE,
        backoff=m.Backoff(
            duration=f"{policy.backoff_seconds}s",
            factor=m.IntOrString(policy.factor),
            cap=f"{policy.max_backoff_seconds}s",
            max_duration=f"{policy.max_duration_seconds}s",
        ),
    )


def _resources(step: Step) -> m.ResourceRequirements:
    limits = {name: m.Quantity(value) for name, value in step.resources.limits().items()}
    return m.ResourceRequirements(limits=limits, requests=dict(limits))


PLATFORM_SETTINGS = [m.EnvFromSource(config_map_ref=m.ConfigMapEnvSource(name=CONFIGMAP))]


def _environment(cfg: PipelineConfig) -> list[m.EnvVar]:
    return [
        m.EnvVar(
            name=ref.env, value_from=m.EnvVarSource(secret_key_ref=m.SecretKeySelector(name=ref.secret, key=ref.key))
        )
        for ref in secret_environment(cfg)
    ]


def step_cache(namespace: str) -> dict[str, Any]:
    """The ConfigMap Argo's controller keeps memoized step outputs in, one per pipelines namespace."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CACHE_CONFIGMAP,
            "namespace": namespace,
            "labels": {"workflows.argoproj.io/configmap-type": "Cache", "app.kubernetes.io/part-of": "private-mlops"},
            "annotations": {
                "mlops.private-platform.io/generated-by": "make golden (pipelines/argo.py: step_cache)",
                "mlops.private-platform.io/keys": (
                    "<step>-<arguments sha>-<namespace>-<data digest>[-<artifact digests>]-<commit>"
                    "[-<run inputs>]-<salt>"
                ),
            },
        },
        "data": {},
    }


def _container(
    spec: PipelineSpec,
    step: Step,
    parameters: dict[str, Any],
    cfg: PipelineConfig,
    contracts: Contracts,
    *,
    memoized: bool = False,
    stored: dict[str, str],
) -> Container:
    artifact_inputs = [name for name, ref in step.inputs.items() if not is_parameter(contracts, ref)]
    parameter_inputs = [name for name, ref in step.inputs.items() if is_parameter(contracts, ref)]
    plain = list(parameters)
    args = [f"--input={name}={IN}/{name}" for name in artifact_inputs]
    args += [f"--param={name}={{{{inputs.parameters.{_argo_name(name)}}}}}" for name in plain + parameter_inputs]
    args.append(f"--outputs-dir={OUT}")
    gpu = step.resources.gpu > 0
    return Container(
        name=step.name,
        image=spec.image,
        command=["mlops", "task", spec.name, step.name],
        args=args,
        inputs=[Artifact(name=name, path=f"{IN}/{name}") for name in artifact_inputs]
        + [Parameter(name=_argo_name(name)) for name in plain + parameter_inputs]
        + ([Parameter(name="cache-key")] if memoized else []),
        memoize=m.Memoize(
            key="{{inputs.parameters.cache-key}}",
            max_age=CACHE_MAX_AGE,
            cache=m.Cache(config_map=m.LocalObjectReference(name=CACHE_CONFIGMAP)),
        )
        if memoized
        else None,
        outputs=[_output_artifact(name, stored.get(name)) for name in contracts[step.name].artifact_outputs]
        + [
            Parameter(name=name, value_from=m.ValueFrom(path=f"{OUT}/{name}"))
            for name in contracts[step.name].parameter_outputs
        ],
        env_from=PLATFORM_SETTINGS,
        # the lineage records the image; a team step learns where its stored outputs live
        env=[
            *_environment(cfg),
            m.EnvVar(name=IMAGE_VARIABLE, value=spec.image),
            *output_environment(step, stored),
            *(m.EnvVar(name=k, value=v) for k, v in launcher_environment(spec, step, cfg).items()),
        ],
        resources=_resources(step),
        retry_strategy=retry_strategy(step),
        node_selector=TRAINING_POOL if gpu else None,
        tolerations=[m.Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")] if gpu else None,
        labels={f"{LABEL}/step": step.name, f"{LABEL}/retry-class": step.retry.name},
        security_context=RESTRICTED_CONTAINER,
        metrics=template_metrics(spec, step, cfg, contracts),
    )


def _output_artifact(name: str, key: str | None) -> Artifact | S3Artifact:
    """An output artifact: packed where the repository's keyFormat puts it, or, when a TrainJob
    reads it, stored as the file it is at `key`."""
    if key is None:
        return Artifact(name=name, path=f"{OUT}/{name}")
    return S3Artifact(name=name, path=f"{OUT}/{name}", key=key, archive=m.ArchiveStrategy(none=m.NoneStrategy()))


def depends(step: Step) -> str | None:
    """`a.Succeeded && b.Succeeded`: run only after every upstream step succeeded. Not the legacy
    `dependencies`, under which a task whose upstream was skipped by its `when` still runs and
    evaluates its own `when`, which then names outputs the skipped task never made (register's
    `evaluate.passed` on a night drift held) and fails the workflow. Here it is Omitted instead."""
    return " && ".join(f"{name}.Succeeded" for name in step.upstream()) or None


def _when(step: Step) -> str | None:
    clauses = [
        f"{{{{tasks.{c.step}.outputs.parameters.{c.output}}}}} == {'true' if c.equals else 'false'}" for c in step.when
    ]
    return " && ".join(clauses) or None


def _sources(handoffs: dict[str, str]) -> set[str]:
    return {reference.split(".")[0] for reference in handoffs}


def _task(
    step: Step,
    template: Container,
    parameters: dict[str, Any],
    contracts: Contracts,
    key: str | None = None,
    written_by_trainjob: dict[str, str] | None = None,
) -> Task:
    arguments: list[Parameter | m.Artifact] = [
        Parameter(name=_argo_name(name), value=_value(value)) for name, value in parameters.items()
    ]
    if key is not None:
        arguments.append(Parameter(name="cache-key", value=key))
    for name, reference in step.inputs.items():
        source, output = reference.split(".")
        if is_parameter(contracts, reference) and written_by_trainjob and source in _sources(written_by_trainjob):
            # a TrainJob reports no parameters: the step checks the bytes against the metadata alone
            arguments.append(Parameter(name=_argo_name(name), value=""))
        elif is_parameter(contracts, reference):
            arguments.append(
                Parameter(name=_argo_name(name), value=f"{{{{tasks.{source}.outputs.parameters.{output}}}}}")
            )
        elif written_by_trainjob and reference in written_by_trainjob:
            # written by a TrainJob's rank 0, not by an Argo pod: fetched by its key
            arguments.append(m.Artifact(name=name, s3=m.S3Artifact(key=written_by_trainjob[reference])))
        else:
            arguments.append(m.Artifact(name=name, from_=f"{{{{tasks.{source}.outputs.artifacts.{output}}}}}"))
    return Task(name=step.name, template=template, arguments=arguments, depends=depends(step), when=_when(step))


def _workflow_arguments(cfg: PipelineConfig) -> list[Parameter]:
    defaults = RunInputs.on_cluster(cfg).as_dict()
    return [Parameter(name=_argo_name(name), value=_value(defaults[name])) for name in RunInputs.names()]


def _labels(cfg: PipelineConfig, spec: PipelineSpec, git_sha: str) -> dict[str, str]:
    labels = {f"{LABEL}/team": cfg.cluster.team, f"{LABEL}/pipeline": spec.name}
    if git_sha:
        labels[f"{LABEL}/git-sha"] = git_sha[:40]
    return labels


def workflow_template(declaration: PipelineDeclaration, cfg: PipelineConfig, *, git_sha: str = "") -> WorkflowTemplate:
    spec = sized(declaration.spec, cfg)  # config.yaml's resources, checked against admission and quota
    run = {name: f"{{{{workflow.parameters.{_argo_name(name)}}}}}" for name in RunInputs.names()} | {"run_id": RUN_ID}
    parameters = declaration.step_parameters(cfg, run)
    contracts = check(spec.steps, parameters)
    notice = ["--notice-out", f"{OUT}/notice", "--pipeline", spec.name, "--owner", cfg.owner,
              "--workflow", "{{workflow.name}}", "--status", "{{workflow.status}}",
              "--failures", "{{workflow.failures}}", "--namespace", cfg.cluster.namespace]  # fmt: skip
    failure_notice = Container(
        name="notify-failure",
        image=spec.image,
        command=["mlops", "step", "notify-failure"],
        args=notice,
        outputs=[Artifact(name="notice", path=f"{OUT}/notice")],
        env_from=PLATFORM_SETTINGS,
        env=_environment(cfg),
        resources=m.ResourceRequirements(limits={"cpu": m.Quantity("500m"), "memory": m.Quantity("512Mi")}),
        retry_strategy=m.RetryStrategy(limit=m.IntOrString(2), retry_policy="Always"),
        security_context=RESTRICTED_CONTAINER,
    )
    with WorkflowTemplate(
        name=spec.name,
        namespace=cfg.cluster.namespace,
        labels=_labels(cfg, spec, git_sha),
        annotations={"workflows.argoproj.io/description": spec.description},
        entrypoint="pipeline",
        on_exit="exit-handler",
        arguments=_workflow_arguments(cfg),
        service_account_name=cfg.cluster.service_account,
        artifact_repository_ref=m.ArtifactRepositoryRef(
            config_map="artifact-repositories", key=cfg.cluster.artifact_repository_key
        ),
        active_deadline_seconds=cfg.cluster.active_deadline_seconds,
        pod_gc=m.PodGC(strategy="OnPodSuccess", delete_delay_duration="10m"),
        ttl_strategy=m.TTLStrategy(seconds_after_success=7 * 86400, seconds_after_failure=14 * 86400),
        pod_metadata=m.Metadata(labels=_labels(cfg, spec, git_sha)),
        security_context=RESTRICTED_POD,
        # one run of a pipeline at a time, whoever started it (the nightly, a manual submit): the
        # second waits, then its drift step finds the night's retrain claimed and skips training
        synchronization=m.Synchronization(mutexes=[m.Mutex(name=f"{spec.name}-retrain")]),
        metrics=[run_failed_metric(spec.name)],
    ) as template:
        trainjobs = frozenset(step.name for step in spec.steps if distributed_train(cfg, step))
        # a TrainJob is not memoized, nor is a step that reads what it made (its key could not name the bytes)
        keys = {
            step.name: None if step.name in trainjobs else cache_key(spec, step, parameters, contracts, trainjobs)
            for step in spec.steps
        }
        handoffs = trainjob_handoffs(spec, cfg, keys) | team_handoffs(spec)
        written = {ref: key for ref, key in handoffs.items() if ref.split(".")[0] in trainjobs}
        templates: dict[str, Container | Resource] = {
            step.name: argo_resource_template(spec, step, cfg, handoffs, retry_strategy(step))
            if step.name in trainjobs
            else _container(
                spec,
                step,
                parameters[step.name],
                cfg,
                contracts,
                memoized=keys[step.name] is not None,
                stored=stored_outputs(step, handoffs, keys[step.name] is not None),
            )
            for step in spec.steps
        }
        with DAG(name="pipeline"):
            for step in spec.steps:
                template_of = templates[step.name]
                if isinstance(template_of, Resource):
                    argo_task(step, template_of, handoffs, depends=depends(step), when=_when(step))
                else:
                    _task(step, template_of, parameters[step.name], contracts, keys[step.name], written)
        with DAG(name="exit-handler"):
            Task(name="notify-failure", template=failure_notice, when="{{workflow.status}} != Succeeded")
    return template


def workflow(
    declaration: PipelineDeclaration,
    cfg: PipelineConfig,
    *,
    git_sha: str = "",
    parameters: dict[str, str] | None = None,
) -> Workflow:
    """A run of the WorkflowTemplate by reference; parameters override the template's defaults.
    A run with a logical date (`logical-date`, checked here) is labelled with its day, so
    `argo list -l mlops.private-platform.io/logical-date=2026-12-04` finds a date's runs."""
    spec = declaration.spec
    labels = _labels(cfg, spec, git_sha)
    day = logical_date((parameters or {}).get(_argo_name("logical_date"), ""), step="submit")
    if day is not None:
        labels[f"{LABEL}/logical-date"] = day.isoformat()
    return Workflow(
        generate_name=f"{spec.name}-",
        namespace=cfg.cluster.namespace,
        labels=labels,
        workflow_template_ref=m.WorkflowTemplateRef(name=spec.name),
        arguments=[Parameter(name=name, value=value) for name, value in sorted((parameters or {}).items())] or None,
    )


SCHEDULED_TIME = "{{workflow.scheduledTime}}"
"""Argo's variable for a CronWorkflow's scheduled time (RFC 3339), set on each workflow it creates."""


def cron_workflow(
    declaration: PipelineDeclaration,
    cfg: PipelineConfig,
    *,
    git_sha: str = "",
    cron: str | None = None,
    timezone: str | None = None,
) -> CronWorkflow:
    spec, schedule = declaration.spec, cfg.cluster.schedule
    return CronWorkflow(
        name=f"{spec.name}-nightly",
        namespace=cfg.cluster.namespace,
        labels=_labels(cfg, spec, git_sha),
        schedules=[cron or schedule.cron],
        timezone=timezone or schedule.timezone,
        concurrency_policy="Forbid",
        starting_deadline_seconds=schedule.starting_deadline_seconds,
        successful_jobs_history_limit=schedule.successful_history,
        failed_jobs_history_limit=schedule.failed_history,
        workflow_template_ref=m.WorkflowTemplateRef(name=spec.name),
        # the run's logical date is the time it was scheduled for, which Argo's cron controller
        # substitutes (it also reruns a missed night with that night's time): a dated raw_data
        # reads that day's extract (components/dated_inputs.py)
        arguments=[Parameter(name=_argo_name("logical_date"), value=SCHEDULED_TIME)],
    )


def render(declaration: PipelineDeclaration, cfg: PipelineConfig, *, git_sha: str = "") -> dict[str, dict[str, Any]]:
    """The three objects as plain dicts, keyed by kind."""
    return {
        "WorkflowTemplate": workflow_template(declaration, cfg, git_sha=git_sha).to_dict(),
        "Workflow": workflow(declaration, cfg, git_sha=git_sha).to_dict(),
        "CronWorkflow": cron_workflow(declaration, cfg, git_sha=git_sha).to_dict(),
    }
