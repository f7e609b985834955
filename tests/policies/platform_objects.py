"""Every object with a pod template that the platform renders, from its renderers and goldens.

Nothing here is written by hand: both overlays and each tenant's folder (kustomize), the
reference pipelines' Argo goldens, the TrainJob the Argo rendering and the Kubeflow Pipelines
train task create for a distributed train step (each runtime), the RayJob a materialize task
launches under `materialize.engine: ray`, the Katib Experiment of
`mlops tune --katib`, the InferenceService `mlops promote` renders (staging and signed-off
production, with the scoring transformer), and what the cluster's controllers make of those
(controller_objects_without_a_cluster). Each comes with where it came from and the user whose
request creates it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from mlops.admission import WORKLOAD_KINDS
from tests.conftest import REGISTRATION, REPO
from tests.policies import controller_objects_without_a_cluster as controllers
from tests.policies.kuberay_objects_without_a_cluster import kuberay_objects

MANIFESTS = REPO / "manifests"
OVERLAYS = ("dev", "prod")
PLATFORM_ENGINEER = "platform-admin@bank.internal"  # kubectl apply -k, server-side


@dataclass(frozen=True)
class Rendered:
    """One object the platform renders or makes, where it came from, and who creates it."""

    source: str
    obj: dict[str, Any]
    user: str

    @property
    def name(self) -> str:
        metadata = self.obj.get("metadata", {})
        ident = metadata.get("name") or metadata.get("generateName", "")
        return f"{self.obj['kind']} {metadata.get('namespace', '-')}/{ident} ({self.source})"


def _rendered_once(render: Callable[[], list[Rendered]]) -> Callable[[], list[Rendered]]:
    """`render` runs once per test session (rendering is most of these tests' time); each caller
    gets its own copy to edit."""
    cached = functools.cache(render)

    @functools.wraps(render)
    def fresh() -> list[Rendered]:
        return copy.deepcopy(cached())

    return fresh


def has_pod_template(obj: dict[str, Any]) -> bool:
    """Whether lib.workloads reads pod specs out of `obj` (its kind is in WORKLOAD_KINDS)."""
    api_version = obj.get("apiVersion", "")
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return any(group in entry["apiGroups"] and obj.get("kind") in entry["kinds"] for entry in WORKLOAD_KINDS)


def overlay_objects() -> dict[str, list[dict[str, Any]]]:
    from tests.rendered_manifests import render

    return {name: render(MANIFESTS / "overlays" / name) for name in OVERLAYS}


def tenant_objects() -> dict[str, list[dict[str, Any]]]:
    """Each tenant's folder (the folders with a Namespace of their own), rendered."""
    from tests.rendered_manifests import render

    folders = sorted(p.parent for p in (MANIFESTS / "tenants").glob("*/namespace.yaml"))
    return {folder.name: render(folder) for folder in folders}


def _pipelines() -> list[Any]:
    from pipelines.golden import reference_pipelines
    from pipelines.local import declaration

    return [declaration(name) for name in reference_pipelines()]


@_rendered_once
def golden_objects() -> list[Rendered]:
    from pipelines.golden import golden_dir

    found = []
    for pipeline in _pipelines():
        for file in sorted(golden_dir(pipeline.name).glob("*.yaml")):
            for doc in yaml.safe_load_all(file.read_text()):
                if doc and has_pod_template(doc):
                    found.append(Rendered(f"golden {file.relative_to(REPO)}", doc, controllers.ARGO_CONTROLLER))
    return found


@_rendered_once
def train_jobs() -> list[Rendered]:
    """The TrainJob each reference pipeline's WorkflowTemplate creates (a resource template) when
    its config trains distributed, in the pipeline's namespace: each model type on its runtime;
    and the one its Kubeflow Pipelines train task launches (pipelines/trainer.py)."""
    from components.config import RUNTIME_OF_MODEL
    from pipelines.argo import render
    from pipelines.trainer import launcher_template

    found = []
    for pipeline in _pipelines():
        for model_type, runtime in sorted(RUNTIME_OF_MODEL.items()):
            overrides = {"train.model_type": model_type, "train.distributed": {"workers": 2, "runtime": runtime}}
            cfg = pipeline.config().with_overrides(overrides)
            template = render(pipeline, cfg)["WorkflowTemplate"]
            for step in template["spec"]["templates"]:
                manifest = step.get("resource", {}).get("manifest")
                if manifest:
                    job = yaml.safe_load(manifest.replace("{{workflow.namespace}}", cfg.cluster.namespace))
                    source = f"argo {pipeline.name} {step['name']} ({runtime})"
                    found.append(Rendered(source, job, controllers.ARGO_CONTROLLER))
            # a Kubeflow Pipelines train task creates it from inside the step, as the runner
            launched = launcher_template(pipeline.spec, pipeline.spec.step("train"), cfg)
            launched["metadata"]["namespace"] = cfg.cluster.namespace
            runner = f"system:serviceaccount:{cfg.cluster.namespace}:{cfg.cluster.service_account}"
            found.append(Rendered(f"kfp {pipeline.name} train ({runtime})", launched, runner))
    return found


@_rendered_once
def ray_jobs() -> list[Rendered]:
    """The RayJob each reference pipeline's materialize task launches under `materialize.engine: ray`
    (pipelines/rayjob.py), in the pipeline's namespace, created by the runner."""
    from pipelines.rayjob import launcher_template

    found = []
    for pipeline in _pipelines():
        cfg = pipeline.config().with_overrides({"materialize.engine": "ray"})
        launched = launcher_template(pipeline.spec, pipeline.spec.step("materialize"), cfg)
        launched["metadata"]["namespace"] = cfg.cluster.namespace
        runner = f"system:serviceaccount:{cfg.cluster.namespace}:{cfg.cluster.service_account}"
        found.append(Rendered(f"materialize {pipeline.name} (engine ray)", launched, runner))
    return found


@_rendered_once
def experiments() -> list[Rendered]:
    """The Katib Experiment `mlops tune --katib` renders for each reference pipeline that declares
    a search space (one without has nothing to tune)."""
    from pipelines.katib import experiment

    found = []
    for pipeline in _pipelines():
        cfg = pipeline.config()
        if not cfg.tune.space:
            continue
        document = experiment(pipeline.spec, cfg, name=f"{cfg.pipeline}-tune", train_set="s3://staging/t/train.parquet",
                              holdout_set="s3://staging/t/holdout.parquet")  # fmt: skip
        found.append(Rendered(f"mlops tune --katib {pipeline.name}", document, PLATFORM_ENGINEER))
    return found


def _promoted(settings: Any, transformer: Any, version: int, percent: int | None) -> dict[str, Any]:
    """The InferenceService `mlops promote` renders for `version` (REGISTRATION's otherwise)."""
    from components.steps.promote import render_inference_service

    return render_inference_service(
        dict(REGISTRATION, version=version),  # type: ignore[arg-type]
        storage_uri=f"s3://models/{settings.namespace}/x/{version}",
        settings=settings,
        canary_percent=percent,
        transformer=transformer,
        trained_by="carol@bank.internal",  # not who signs it off (the promotion guard)
    )


@_rendered_once
def inference_services() -> list[Rendered]:
    """What `mlops promote` renders for each reference pipeline: staging, and production signed
    off by the tenant member who applies it, each with the scoring transformer; and in Standard
    (RawDeployment) mode a canary, v2 in a spec.canary entry beside v1's predictor
    (components/steps/promote_canary.py, issue 32)."""
    from components.config import transformer_settings
    from components.steps.promote_canary import standard_service

    found = []
    for pipeline in _pipelines():
        cfg = pipeline.config()
        transformer = transformer_settings(cfg, pipeline.spec.image)
        for stage in ("staging", "production"):
            user = f"{cfg.promote.namespace}-member"  # applies it, so signs it off as themselves (the guard)
            settings = cfg.promote.model_copy(update={"stage": stage, "signed_off_by": user})
            service = _promoted(settings, transformer, int(str(REGISTRATION["version"])), cfg.promote.canary_percent)
            found.append(Rendered(f"mlops promote {pipeline.name} ({stage})", service, user))
            standard = settings.model_copy(update={"deployment_mode": "RawDeployment"})
            render = functools.partial(_promoted, standard, transformer)
            canary = standard_service(render, "canary", 2, 1, 10)
            found.append(Rendered(f"mlops promote {pipeline.name} --canary 10 ({stage}, Standard mode)", canary, user))
    return found


def platform_objects(overlays: dict[str, list[dict[str, Any]]]) -> list[Rendered]:
    """Everything above (`overlays`: overlay_objects()), and what the controllers make of it."""
    found = [Rendered(f"overlay {name}", o, PLATFORM_ENGINEER) for name, objects in overlays.items() for o in objects]
    found += [Rendered(f"tenant {name}", o, PLATFORM_ENGINEER) for name, objects in tenant_objects().items()
              for o in objects]  # fmt: skip
    found += golden_objects()
    trainjobs, tuning, services = train_jobs(), experiments(), inference_services()
    found += trainjobs + tuning + services
    installed = overlays[OVERLAYS[-1]]
    runtimes = [o for o in installed if o["kind"] == "ClusterTrainingRuntime"]
    serving = [o for o in installed if o["kind"] == "ClusterServingRuntime"]
    (storage,) = [o for o in installed if o["kind"] == "ClusterStorageContainer"]
    made = [m for job in trainjobs for m in controllers.trainer_objects(job.obj, runtimes)]
    made += [m for e in tuning for m in controllers.katib_objects(e.obj)]
    rays = ray_jobs()
    found += rays
    made += [m for job in rays for m in kuberay_objects(job.obj)]
    made += [m for s in services for m in controllers.kserve_objects(s.obj, serving, storage)]
    found += [Rendered(f"made by {m.by}", m.obj, m.user) for m in made]
    return [r for r in found if has_pod_template(r.obj)]
