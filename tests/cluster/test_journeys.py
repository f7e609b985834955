"""Every journey of tests/cluster/journeys.py, through each check a real cluster would make, in order.

A journey's request is authorized by RBAC (tests/cluster/rbac_evaluator_without_apiserver.py, on
the rendered manifests of each overlay with every tenant); an object it creates is admitted by the
installed Gatekeeper policies on the real OPA engine (mlops.admission) and validated against its
upstream schema as strictly as `mlops lint` does (mlops.lint.check); a hop its pod makes is allowed
by the rendered NetworkPolicies (tests/manifests/networkpolicy_evaluator_without_cni.py). A
failure names the check that refused it: RBAC, admission, schema or network.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.journeys import (
    README_TOKEN,
    REPO,
    Journey,
    argo_server_requests,
    client_journeys,
    denial_rows,
    identities,
    readme_token_identity,
    runner_rows,
)
from tests.cluster.rbac_evaluator_without_apiserver import Identity, Request, service_account
from tests.cluster.rendered_platform import TENANTS, Platform, closed, refusal

README = (REPO / "README.md").read_text()
ROLE = "mlops.private-platform.io/role"


# --- the member's Argo traffic, recorded from the real CLI ------------------------------------------
@pytest.fixture(scope="module")
def argo_traffic(schemas_dir: Path) -> Iterator[list[dict[str, Any]]]:
    """What `mlops submit --install-template` (twice: create, then update), `submit --wait`,
    `status` and `schedule` (twice) send to the Argo server, per tenant namespace, recorded by the
    contract tests' stand-in (which validates each body against Argo's schema)."""
    import json

    from mlops.cli import main
    from tests.loopback_http import serving
    from tests.test_argo_submit_contract import TOKEN, FakeArgo, _handler

    state = FakeArgo(json.loads((schemas_dir / "argo-workflows-v4.1.2.intorstring.schema.json").read_text()))
    state.namespaces = set(TENANTS)
    patch = pytest.MonkeyPatch()
    with serving(_handler(state)) as server:
        patch.setenv("ARGO_SERVER", f"http://127.0.0.1:{server.server_address[1]}")
        patch.setenv("ARGO_TOKEN", TOKEN)
        try:
            for tenant in TENANTS:
                state.phases = ["Succeeded"]
                state.templates.clear()
                state.crons.clear()
                ns = ["--namespace", tenant]
                for argv in (
                    ["submit", "fraud", "--install-template", *ns],
                    ["submit", "fraud", "--install-template", "--wait", "--poll-seconds", "0", *ns],
                    ["status", "fraud-x7k2p", *ns],
                    ["schedule", "fraud", *ns],
                    ["schedule", "fraud", *ns],
                ):
                    assert main(argv) == 0, f"mlops {' '.join(argv)} failed against the recording Argo server"
            yield state.requests
        finally:
            patch.undo()


def artifact_secret(platform: Platform, tenant: str) -> str:
    """The credentials Secret of the tenant's default artifact repository (what the server's driver reads)."""
    config = next(
        o
        for o in platform.objects
        if o["kind"] == "ConfigMap"
        and o["metadata"]["name"] == "artifact-repositories"
        and o["metadata"].get("namespace") == tenant
    )
    key = config["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"]
    return str(yaml.safe_load(config["data"][key])["s3"]["accessKeySecret"]["name"])


def in_namespace(obj: dict[str, Any] | None, namespace: str) -> dict[str, Any] | None:
    if obj is None:
        return None
    placed = copy.deepcopy(obj)
    placed.setdefault("metadata", {})["namespace"] = namespace
    if "generateName" in placed["metadata"] and "name" not in placed["metadata"]:
        placed["metadata"]["name"] = placed["metadata"]["generateName"] + "x7k2p"
    return placed


def member_argo_journeys(platform: Platform, traffic: list[dict[str, Any]], tenant: str) -> list[Journey]:
    from tests.cluster.journeys import ARGO_UI_CALLS

    secret = artifact_secret(platform, tenant)
    calls = [(r["method"], r["path"], r["body"], "mlops submit|status|schedule") for r in traffic]
    calls += [(method, "/" + path.format(ns=tenant), None, why) for method, path, why in ARGO_UI_CALLS]
    rows = []
    for method, path, body, why in calls:
        if f"/{tenant}" not in path:
            continue
        for request, created in argo_server_requests(method, path, body, secret):
            if request.namespace != tenant:
                continue
            obj = in_namespace(created, tenant)
            rows.append(Journey("token", request, f"{why}: {method} {path.split('?')[0]}", creates=obj))
    return rows


def trainjob_of(tenant: str) -> dict[str, Any]:
    """The TrainJob the runner creates for a distributed train step (pipelines/trainer.py renders it
    for Argo's resource template and for the launcher alike), in the tenant's namespace."""
    from pipelines.fraud.pipeline import DECLARATION
    from pipelines.trainer import train_job

    cfg = DECLARATION.config().with_overrides({"train.distributed": {"workers": 2, "runtime": "xgboost-distributed"}})
    spec = DECLARATION.spec
    uris = {"train_set": "s3://staging/t.parquet", "model_out": "s3://staging/m", "metadata_out": "s3://staging/m.json"}
    return train_job(spec, spec.step("train"), cfg, name="fraud-train", namespace=tenant, features="a,b", **uris)


def rayjob_of(tenant: str) -> dict[str, Any]:
    """The RayJob the runner creates for a materialize step under engine ray (pipelines/rayjob.py)."""
    from pipelines.fraud.pipeline import DECLARATION
    from pipelines.rayjob import ray_job

    cfg = DECLARATION.config().with_overrides({"materialize.engine": "ray"})
    return ray_job(
        DECLARATION.spec, DECLARATION.spec.step("materialize"), cfg, name="fraud-materialize", namespace=tenant
    )


def promote_objects(tenant: str) -> list[dict[str, Any]]:
    """What `mlops promote` applies in the tenant's namespace: the InferenceService, its
    AuthorizationPolicy and its NetworkPolicy (components.steps.serving_authorization.serving_objects)."""
    from components.config import transformer_settings
    from components.steps.promote import render_inference_service
    from components.steps.serving_authorization import serving_objects
    from pipelines.local import declaration
    from tests.conftest import REGISTRATION

    pipeline = declaration("fraud")
    cfg = pipeline.config()
    settings = cfg.promote.model_copy(update={"namespace": tenant})
    transformer = transformer_settings(cfg, pipeline.spec.image)
    service = render_inference_service(
        dict(REGISTRATION),  # type: ignore[arg-type]
        storage_uri="s3://models/x",
        settings=settings,
        canary_percent=10,
        transformer=transformer,
    )
    return serving_objects(service, settings, transformer)


def runner_name(traffic: list[dict[str, Any]]) -> str:
    template = next(r["body"]["template"] for r in traffic if r["path"].startswith("/api/v1/workflow-templates/"))
    return str(template["spec"]["serviceAccountName"])


def runner_journeys(namespace: str) -> list[Journey]:
    """The runner as the TrainJob launcher (its source's client calls), Argo's executor and resource
    template (runner_rows), and refused every Secret."""
    trainjob = trainjob_of(namespace)
    rows = []
    launcher = client_journeys(
        REPO / "components" / "steps" / "trainjob.py", "runner", namespace, "the TrainJob launcher", None
    )
    for row in launcher:
        creates = trainjob if row.api.verb == "create" else None
        rows.append(Journey(row.who, row.request, row.why, creates=creates, hop=("pipeline-pod", "api-server")))
    rayjob = rayjob_of(namespace)
    for row in client_journeys(REPO / "components" / "steps" / "materialize_ray.py", "runner", namespace,
                               "the RayJob launcher (materialize.engine: ray)", None):  # fmt: skip
        creates = rayjob if row.api.verb == "create" else None
        rows.append(Journey(row.who, row.request, row.why, creates=creates, hop=("pipeline-pod", "api-server")))
    rows += runner_rows(namespace, trainjob)
    rows += [
        Journey("runner", Request(verb, "secrets", namespace=namespace, name=name), "the runner reads no Secret", False)
        for verb, name in (
            ("get", "tenant-s3-credentials"),
            ("get", "mlops-s3-credentials"),
            ("list", ""),
            ("watch", ""),
        )
    ]
    return rows


def journeys(
    platform: Platform, traffic: list[dict[str, Any]], tenant: str, readme: str = README
) -> tuple[dict[str, Identity], list[Journey]]:
    who = identities(tenant, runner_name(traffic))
    who["token"], minting = readme_token_identity(readme, tenant, who["member"])
    rows = minting + member_argo_journeys(platform, traffic, tenant)
    from mlops.kube import PLURALS

    applied = {PLURALS[obj["kind"]]: obj for obj in promote_objects(tenant)}  # issue 29: and who may call it
    for row in client_journeys(REPO / "mlops" / "kube.py", "member", tenant, "mlops promote / rollback", None):
        if not row.api.namespace and row.api.resource == "validatingwebhookconfigurations":
            # only --admission cluster reads it, which runs as the canary analyst (pipelines/canary_cron.py);
            # a member's promote admits against the policy folder and holds nothing cluster-wide
            rows.append(replace(row, why=f"a member reads no cluster object: {row.why}", allowed=False))
            continue
        creates = applied.get(row.api.resource) if row.api.verb in ("create", "update") else None
        rows.append(Journey(row.who, row.request, row.why, creates=creates, tolerated=row.tolerated))
    rows += runner_journeys(tenant)
    other = next(t for t in TENANTS if t != tenant)
    platform_namespaces = sorted(
        {ns for ns, labels in platform.namespaces.items() if ns not in TENANTS} - {"kube-system"}
    )
    allowed_member = [
        Journey("member", r.request, r.why) for r in rows if r.who in ("member", "token") and r.allowed
    ]  # what the member does directly or through the Argo server: refused in another tenant
    rows += denial_rows(tenant, other, platform_namespaces, allowed_member)
    return who, list(dict.fromkeys(rows))  # one row per distinct request


@pytest.mark.parametrize("tenant", TENANTS)
def test_every_journey_passes_every_check_and_every_denial_is_refused(
    platform: Platform, argo_traffic: list[dict[str, Any]], tenant: str
) -> None:
    """issue 28: the README's submit recipe was refused (a member may not mint the runner's token,
    and the runner may not create Workflows), and members could not promote through a kubeconfig
    (no rights on InferenceServices). Each row says which check refuses it."""
    who, rows = journeys(platform, argo_traffic, tenant)
    failures = []
    for journey in rows:
        refused = refusal(platform, who[journey.who], journey, tenant)
        if journey.allowed and refused and not journey.tolerated:
            failures.append(f"{journey}\n    refused by {refused}")
        elif not journey.allowed and refused is None:
            failures.append(f"{journey}\n    must be refused, and every check lets it through")
    assert not failures, f"{platform.overlay}, tenant {tenant}:\n" + "\n".join(failures)
    verbs = {(j.who, j.api.verb, j.api.resource) for j in rows if j.allowed}
    for needed in (
        ("token", "create", "workflows"),
        ("token", "update", "workflowtemplates"),
        ("token", "create", "cronworkflows"),
        ("token", "get", "pods"),
        ("member", "update", "inferenceservices"),
        ("member", "create", "authorizationpolicies"),
        ("member", "update", "networkpolicies"),
        ("runner", "create", "trainjobs"),
        ("runner", "create", "rayjobs"),
        ("runner", "get", "rayjobs"),
    ):
        assert needed in verbs, f"the journeys lost {needed}: the derivation broke"


def test_the_checks_name_the_one_that_refuses(platform: Platform, argo_traffic: list[dict[str, Any]]) -> None:
    """Broken on purpose, one check at a time: each refusal names its check."""
    tenant = TENANTS[0]
    who, rows = journeys(platform, argo_traffic, tenant)
    submit = next(j for j in rows if j.who == "token" and j.api.verb == "create" and j.api.resource == "workflows")
    assert refusal(platform, who["token"], submit, tenant) is None, "positive control"
    stranger = Identity("mallory", frozenset({"system:authenticated"}))
    assert (refusal(platform, stranger, submit, tenant) or "").startswith("RBAC:")
    assert submit.creates is not None
    foreign = copy.deepcopy(submit.creates)
    templates = foreign["spec"].get("templates") or [{"name": "x", "container": {}}]
    foreign["spec"]["templates"] = templates
    templates[0]["container"] = {**templates[0].get("container", {}), "image": "docker.io/evil/miner:latest"}
    broken = Journey("token", submit.request, "a foreign image", creates=foreign)
    assert (refusal(platform, who["token"], broken, tenant) or "").startswith("admission:")
    unknown = copy.deepcopy(submit.creates)
    unknown["spec"]["serviceAcountName"] = "typo"
    assert (
        refusal(platform, who["token"], Journey("token", submit.request, "typo", creates=unknown), tenant) or ""
    ).startswith("schema:")
    report = next(j for j in rows if j.who == "runner" and j.api.resource == "workflowtaskresults")
    assert refusal(platform, who["runner"], report, tenant) is None
    assert (refusal(closed(platform, tenant), who["runner"], report, tenant) or "").startswith("network:")


def pipelines_namespaces(platform: Platform) -> list[str]:
    return sorted(ns for ns, labels in platform.namespaces.items() if labels.get(ROLE) == "pipelines")


def test_the_runner_does_its_job_in_every_pipelines_namespace_and_holds_nothing_more(
    platform: Platform, argo_traffic: list[dict[str, Any]]
) -> None:
    """issue 28: the runner does what Argo's executor and the TrainJob launcher do, in each tenant's
    namespace and the shared one, and every rule bound to it is one a journey needs (the shared
    namespace's runner could create no TrainJob, and held the pod rights Argo < 3.4 needed)."""
    runner = runner_name(argo_traffic)
    namespaces = pipelines_namespaces(platform)
    assert set(TENANTS) < set(namespaces)
    failures = []
    for namespace in namespaces:
        who = service_account(namespace, runner)
        rows = runner_journeys(namespace)
        for journey in rows:
            refused = refusal(platform, who, journey, namespace)
            if journey.allowed and refused:
                failures.append(f"{namespace}: {journey}\n    refused by {refused}")
            elif not journey.allowed and refused is None:
                failures.append(f"{namespace}: {journey}\n    must be refused, and every check lets it through")
        needed = [j.request for j in rows if j.allowed and j.request is not None]
        for rule in bound_rules(platform, who, namespace):
            for verb in rule.get("verbs", []):
                for resource in rule.get("resources", []):
                    name, _, sub = resource.partition("/")
                    used = any(
                        r.verb == verb and r.resource == name and r.subresource == sub and r.group in rule["apiGroups"]
                        for r in needed
                    )
                    if not used:
                        failures.append(f"{namespace}: the runner may {verb} {resource}, which no journey needs")
    assert not failures, f"{platform.overlay}:\n" + "\n".join(failures)


def bound_rules(platform: Platform, who: Identity, namespace: str) -> list[dict[str, Any]]:
    """Every rule of every Role or ClusterRole bound to `who` in `namespace` (the bootstrap roles aside)."""
    rules = []
    for binding in platform.rbac.role_bindings:
        if binding["metadata"].get("namespace") != namespace:
            continue
        if any(platform.rbac._subject_matches(s, who, namespace) for s in binding.get("subjects") or []):
            ref = binding["roleRef"]
            if ref["kind"] == "Role":
                rules += platform.rbac.roles.get((namespace, ref["name"]), [])
            else:
                rules += platform.rbac.cluster_role_rules(ref["name"])
    return rules


def test_a_refusal_the_code_tolerates_is_the_one_it_falls_back_from(monkeypatch: pytest.MonkeyPatch) -> None:
    """The only tolerated row: promote reads KServe's default deployment mode, which members may not
    (kserve's namespace is the operator's); refused, it uses the mode the service renders."""
    from kubernetes.client import ApiClient, CoreV1Api
    from kubernetes.client.exceptions import ApiException

    from mlops.kube import Cluster
    from tests.cluster.journeys import client_calls

    caught = [(c.verb, c.resource, c.namespace, c.name) for c in client_calls(REPO / "mlops" / "kube.py") if c.caught]
    assert caught == [("get", "configmaps", "kserve", "inferenceservice-config")]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ApiException(status=403, reason="Forbidden")

    monkeypatch.setattr(CoreV1Api, "read_namespaced_config_map", refuse)
    assert Cluster(api=ApiClient(), context="test").default_deployment_mode() is None


def test_the_derivations_read_what_the_code_calls(tmp_path: Path) -> None:
    """client_calls on known source, and an Argo route nobody described fails instead of passing."""
    from tests.cluster.journeys import argo_server_requests, client_calls

    module = tmp_path / "calls.py"
    module.write_text(
        'GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"\n'
        'NS = "kserve"\n'
        "def f(api, core, ns, name):\n"
        "    api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {})\n"
        "    api.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, {})\n"
        "    core.read_namespaced_pod_log(name, ns)\n"
        "    try:\n"
        '        core.read_namespaced_secret("s", NS)\n'
        "    except ApiException:\n"
        "        return None\n"
        "    api.get_something_else()\n"
    )
    found = [(c.verb, c.group, c.resource, c.subresource, c.namespace, c.name, c.caught) for c in client_calls(module)]
    assert found == [
        ("create", "serving.kserve.io", "inferenceservices", "", None, None, False),
        ("patch", "serving.kserve.io", "inferenceservices", "", None, None, False),
        ("get", "", "pods", "log", None, None, False),
        ("get", "", "secrets", "", "kserve", "s", True),
    ]
    with pytest.raises(AssertionError, match="ARGO_SERVER_ROUTES"):
        argo_server_requests("DELETE", "/api/v1/workflows/fraud/x", None, "s")
    made = argo_server_requests(
        "POST", "/api/v1/workflows/fraud", {"workflow": {"spec": {"workflowTemplateRef": {"name": "t"}}}}, "s"
    )
    assert [str(r) for r, _ in made] == [
        "get workflowtemplates.argoproj.io t in fraud",
        "create workflows.argoproj.io in fraud",
    ]


def test_the_readme_recipe_before_issue_28_is_refused_where_the_finding_says(
    platform: Platform, argo_traffic: list[dict[str, Any]]
) -> None:
    """issue 28: `kubectl -n fraud create token pipeline-runner` needs serviceaccounts/token, which
    members are not granted, and even with it the runner's token may not create a Workflow."""
    recipe = README_TOKEN.search(README)
    assert recipe, "the README sets no ARGO_TOKEN"
    before = README.replace(recipe.group(0), 'export ARGO_TOKEN="$(kubectl -n fraud create token pipeline-runner)"')
    tenant = "fraud" if "fraud" in TENANTS else TENANTS[0]
    who, rows = journeys(platform, argo_traffic, tenant, readme=before)
    assert who["token"].user == f"system:serviceaccount:{tenant}:pipeline-runner"
    refused = {
        (j.who, j.api.verb, j.api.resource, j.api.subresource): refusal(platform, who[j.who], j, tenant)
        for j in rows
        if j.allowed and j.request is not None
    }
    assert (refused[("member", "create", "serviceaccounts", "token")] or "").startswith("RBAC:")
    assert (refused[("token", "create", "workflows", "")] or "").startswith("RBAC:")
    assert refused[("member", "update", "inferenceservices", "")] is None, "promote is the member's own"
