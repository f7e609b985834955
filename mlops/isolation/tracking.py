"""Isolation probes on the tracking server (MLflow with basic auth): runs, models, aliases, tags, names.

The target owns an experiment named after it, a run with an artifact, and a registered model
`<target>-probe` whose `champion` alias points at a version. Each probe tries one MLflow call
as the attacker; the server's permission layer (components/platform/tracking_auth) must refuse it, or
filter the target's objects out of a search.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mlops.isolation.outcomes import Denied
from mlops.isolation.scene import mlflow_client

if TYPE_CHECKING:
    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.scene import Scene

__all__ = ["OWN", "PROBES"]


def own_runs(stack: Stack, tenant: Tenant) -> str:
    """Positive control: a run created, logged to and deleted in the tenant's own experiment."""
    client = mlflow_client(stack)
    experiment = client.get_experiment_by_name(tenant.name)
    if experiment is None:
        raise RuntimeError(f"its own experiment {tenant.name} is not visible")
    run = client.create_run(experiment.experiment_id, tags={"isolation": "control"})
    client.log_metric(run.info.run_id, "control", 1.0)
    client.delete_run(run.info.run_id)
    return f"created, logged to and deleted a run in experiment {tenant.name}"


def get_run(scene: Scene) -> str:
    run = scene.mlflow.get_run(scene.planted["run_id"])
    return f"read run {run.info.run_id} of experiment {run.info.experiment_id}"


def search_runs(scene: Scene) -> str:
    runs = scene.mlflow.search_runs([scene.planted["experiment_id"]])
    if not runs:
        raise Denied("search answered with none of the target's runs")
    return f"search returned {len(runs)} of the target's runs"


def log_to_run(scene: Scene) -> str:
    scene.mlflow.log_metric(scene.planted["run_id"], "tampered", 1.0)
    return "logged a metric into the target's run"


def read_model(scene: Scene) -> str:
    model = scene.mlflow.get_registered_model(scene.planted["model"])
    return f"read registered model {model.name}"


def move_alias(scene: Scene) -> str:
    scene.mlflow.set_registered_model_alias(scene.planted["model"], "champion", scene.planted["version"])
    return "moved the target's champion alias"


def get_by_alias(scene: Scene) -> str:
    version = scene.mlflow.get_model_version_by_alias(scene.planted["model"], "champion")
    return f"resolved the target's champion alias to version {version.version}"


def search_models(scene: Scene) -> str:
    names = [m.name for m in scene.mlflow.search_registered_models(f"name = '{scene.planted['model']}'")]
    if not names:
        raise Denied("the search answered without the target's model")
    return f"registered-model search listed {names}"


def search_versions(scene: Scene) -> str:
    found = scene.mlflow.search_model_versions(f"name = '{scene.planted['model']}'")
    if not found:
        raise Denied("the version search answered without the target's versions")
    return f"version search listed {len(found)} of the target's versions"


def search_experiments(scene: Scene) -> str:
    names = [e.name for e in scene.mlflow.search_experiments(filter_string=f"name = '{scene.target.name}'")]
    if not names:
        raise Denied("the experiment search answered without the target's experiment")
    return f"experiment search listed {names}"


def forge_history(scene: Scene) -> str:
    """A forged promotion record on the target's model (what `mlops history` reads)."""
    scene.mlflow.set_registered_model_tag(scene.planted["model"], "mlops.history.9999999999", "forged promotion")
    return "wrote a mlops.history tag on the target's registered model"


def forge_version_tag(scene: Scene) -> str:
    scene.mlflow.set_model_version_tag(scene.planted["model"], scene.planted["version"], "artifact_sha256", "0" * 64)
    return "rewrote the target version's artifact_sha256 tag"


def delete_alias(scene: Scene) -> str:
    scene.mlflow.delete_registered_model_alias(scene.planted["model"], "champion")
    return "deleted the target's champion alias"


def rename_model(scene: Scene) -> str:
    model = scene.planted["model"]
    scene.mlflow.rename_registered_model(model, f"{model}-renamed-by-{scene.attacker.name}")
    return "renamed the target's registered model"


def squat_model_name(scene: Scene) -> str:
    """A registered model in the target's namespace: its creator gets MANAGE, and the target's
    own register then fails on it with 403 (name squatting)."""
    name = f"{scene.target.name}-squatted-by-{scene.attacker.name}-{int(time.time())}"
    scene.mlflow.create_registered_model(name)
    scene.mlflow.delete_registered_model(name)
    return f"created (then deleted) registered model {name!r} in the target's namespace"


def squat_experiment_name(scene: Scene) -> str:
    name = f"{scene.target.name}-squatted-by-{scene.attacker.name}-{int(time.time())}"
    experiment_id = scene.mlflow.create_experiment(name)
    scene.mlflow.delete_experiment(experiment_id)
    return f"created experiment {name!r} in the target's namespace"


def delete_version(scene: Scene) -> str:
    scene.mlflow.delete_model_version(scene.planted["model"], scene.planted["version"])
    return "deleted the target's model version"


def delete_run(scene: Scene) -> str:
    scene.mlflow.delete_run(scene.planted["run_id"])
    return "deleted the target's run"


def confused_deputy(scene: Scene) -> str:
    """A version of A's own model whose source is B's prefix, then the server's artifact download.

    The tracking server reads artifacts with its own S3 key; if it holds one that reaches B's
    prefix, it streams B's object to anyone who may read A's model (a confused deputy).
    """
    import requests

    attacker = scene.attacker
    name = f"{attacker.name}-deputy-probe"
    if not scene.mlflow.search_registered_models(f"name = '{name}'"):
        scene.mlflow.create_registered_model(name)
    directory, _, file = scene.planted["key"].rpartition("/")
    version = scene.mlflow.create_model_version(name, source=f"s3://models/{directory}")
    response = requests.get(
        f"{scene.stack.tracking_uri}/model-versions/get-artifact",
        params={"name": name, "version": version.version, "path": file},
        auth=(attacker.name, attacker.password),
        timeout=30,
    )
    if response.status_code == 200 and response.content == b"target's model bytes":
        return f"the tracking server streamed s3://models/{scene.planted['key']} through version {version.version}"
    raise Denied(f"the tracking server answered HTTP {response.status_code} without the target's bytes")


OWN = (("own: mlflow runs in own experiment", own_runs),)
PROBES = (
    ("mlflow get target run", get_run),
    ("mlflow search target runs", search_runs),
    ("mlflow log to target run", log_to_run),
    ("mlflow read target model", read_model),
    ("mlflow move target alias", move_alias),
    ("mlflow get target model by alias", get_by_alias),
    ("mlflow search registered models", search_models),
    ("mlflow search model versions", search_versions),
    ("mlflow search experiments", search_experiments),
    ("mlflow forge target history tag", forge_history),
    ("mlflow rewrite target version tag", forge_version_tag),
    ("mlflow delete target alias", delete_alias),
    ("mlflow squat a model name in target's namespace", squat_model_name),
    ("mlflow squat an experiment name in target's namespace", squat_experiment_name),
    ("mlflow rename target model", rename_model),
    ("mlflow delete target version", delete_version),
    ("mlflow delete target run", delete_run),
    ("mlflow artifact via own version (deputy)", confused_deputy),
)
