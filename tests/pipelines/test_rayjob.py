"""The RayJob of `materialize.engine: ray` (pipelines/rayjob.py), held to KubeRay's CRD and to every
admission policy the overlays install; its sizes derived from the config, not written twice.

The whole platform's positive control (tests/policies/test_platform_admits_itself.py) reviews this
RayJob and what KubeRay makes of it too; here, each policy is shown to look inside it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mlops import admission, lint
from pipelines.fraud import pipeline as fraud
from pipelines.rayjob import NODE_LABELS, SUBMITTER_LABELS, launcher_template, ray_job, ray_materialize
from tests.policies.kuberay_objects_without_a_cluster import kuberay_objects
from tests.policies.platform_objects import overlay_objects

SPEC = fraud.DECLARATION.spec
STEP = SPEC.step("materialize")


def _job(**overrides: Any) -> dict[str, Any]:
    cfg = fraud.DECLARATION.config().with_overrides({"materialize.engine": "ray", **overrides})
    return ray_job(SPEC, STEP, cfg, name="fraud-materialize-x1", namespace=cfg.cluster.namespace)


def _pods(job: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = job["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [group["template"]["spec"] for group in groups] + [job["spec"]["submitterPodTemplate"]["spec"]]


def test_the_rayjob_is_valid_against_kuberays_crd(schemas_dir: Path) -> None:
    job = _job()
    schema = lint.crd_schema(job["apiVersion"], job["kind"])
    assert lint.schema_problem(job, schema) is None and lint.unknown_field_paths(job, schema) == []
    launched = launcher_template(SPEC, STEP, fraud.DECLARATION.config().with_overrides({"materialize.engine": "ray"}))
    assert (
        launched["metadata"]["generateName"] == "fraud-materialize-" and lint.schema_problem(launched, schema) is None
    )
    misspelt = copy.deepcopy(job)
    misspelt["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replica"] = 3
    assert lint.unknown_field_paths(misspelt, schema) == [("spec", "rayClusterSpec", "workerGroupSpecs", 0, "replica")]
    wrong = copy.deepcopy(job)
    wrong["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert lint.schema_problem(wrong, schema) is not None


def test_sizes_come_from_the_config_one_declaration_for_head_and_workers() -> None:
    job = _job(**{"materialize.ray": {"workers": 5}, "resources": {"materialize": {"cpu": "6", "memory": "48Gi"}}})
    (workers,) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert workers["replicas"] == workers["minReplicas"] == workers["maxReplicas"] == 5
    head, worker, _submitter = _pods(job)
    for pod in (head, worker):
        assert pod["containers"][0]["resources"]["limits"] == {"cpu": "6", "memory": "48Gi"}
        assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "48Gi"}}]
        assert pod["containers"][0]["image"] == SPEC.image
    assert job["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert job["spec"]["submitterPodTemplate"]["metadata"]["labels"].items() >= SUBMITTER_LABELS.items()


def test_only_an_engine_ray_materialize_step_renders_one() -> None:
    cfg = fraud.DECLARATION.config()
    assert not ray_materialize(cfg, STEP) and not ray_materialize(cfg.with_overrides({"materialize.engine": "ray"}),
                                                                  SPEC.step("train"))  # fmt: skip
    with pytest.raises(ValueError, match=r"materialize\.engine: ray"):
        ray_job(SPEC, STEP, cfg, name="x", namespace="fraud")


@pytest.fixture(scope="module")
def installed() -> dict[str, admission.PolicySet]:
    return {name: admission.PolicySet(policies=admission.policies_of(objects, f"overlay {name}"))
            for name, objects in overlay_objects().items()}  # fmt: skip


def test_every_installed_policy_admits_the_rayjob_and_what_kuberay_makes_of_it(
    installed: dict[str, admission.PolicySet],
) -> None:
    job = _job()
    made = kuberay_objects(job)
    assert {m.obj["kind"] for m in made} == {"RayCluster", "Pod", "Job"}
    assert all(m.obj["metadata"]["labels"].items() >= NODE_LABELS.items() for m in made[1:4]), "head and workers"
    runner = "system:serviceaccount:fraud:pipeline-runner"
    for overlay, policies in installed.items():
        matching = {p.name for p in policies.policies if p.matches(job)}
        assert {"no-node-access", "internal-registry-only", "credentials-from-secrets-only"} <= matching, overlay
        assert policies.violations(job, user=runner) == [], overlay
        for m in made:
            assert policies.violations(m.obj, user=m.user) == [], (overlay, m.obj["kind"], m.obj["metadata"]["name"])


@pytest.mark.parametrize("pod", ["head", "worker", "submitter"])
def test_a_rayjob_with_a_forbidden_pod_is_refused_wherever_the_pod_is(
    pod: str, installed: dict[str, admission.PolicySet]
) -> None:
    job = _job()
    spec = dict(zip(("head", "worker", "submitter"), _pods(job), strict=True))[pod]
    spec["hostNetwork"] = True
    spec["containers"][0]["image"] = "docker.io/attacker/miner:latest"
    spec["containers"][0]["securityContext"] = {"privileged": True}
    for overlay, policies in installed.items():
        refused = " ".join(policies.violations(job, user="system:serviceaccount:fraud:pipeline-runner"))
        for expected in ("sets hostNetwork", "runs privileged", "docker.io/attacker/miner:latest"):
            assert expected in refused, (overlay, pod, expected, refused)


def test_the_argo_and_kfp_materialize_tasks_carry_the_rayjob_under_engine_ray_only(tmp_path: Path) -> None:
    """On the cluster the materialize task launches the RayJob it carries (components/steps/materialize_ray.py),
    in both renderings; a pipeline on the single-node engine carries none."""
    import json

    import yaml

    from components.steps import materialize_ray
    from pipelines.argo import render
    from pipelines.kfp import compile_ir

    def carried(overrides: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        cfg = fraud.DECLARATION.config().with_overrides(overrides)
        argo = {t["name"]: {e["name"]: e.get("value", "") for e in t.get("container", {}).get("env", [])}
                for t in render(fraud.DECLARATION, cfg)["WorkflowTemplate"]["spec"]["templates"]}  # fmt: skip
        compile_ir(fraud.DECLARATION, cfg, str(tmp_path / "ir.yaml"))
        executors = next(yaml.safe_load_all((tmp_path / "ir.yaml").read_text()))["deploymentSpec"]["executors"]
        kfp = {label: {e["name"]: e["value"] for e in executor["container"].get("env", [])}
               for label, executor in executors.items()}  # fmt: skip
        name = materialize_ray.TEMPLATE_VARIABLE
        return ({k: v[name] for k, v in argo.items() if name in v}, {k: v[name] for k, v in kfp.items() if name in v})

    argo, kfp = carried({"materialize.engine": "ray"})
    assert list(argo) == ["materialize"] and list(kfp) == ["exec-materialize"]
    for text in (argo["materialize"], kfp["exec-materialize"]):
        job = json.loads(text)
        assert job["metadata"]["generateName"] == "fraud-materialize-" and job["kind"] == "RayJob"
        assert materialize_ray.ARGUMENTS in job["spec"]["entrypoint"]
    assert carried({}) == ({}, {})
