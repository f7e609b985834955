"""Issue 29, "one tenant can fill the shared PgBouncer's client slots": each tenant's own PgBouncer
as the cluster renders it (pipelines/tenant_pooler.py), and who may reach which pooler.

The objects are read from the declaration and from the rendered manifests, never restated here;
the flows are evaluated on every overlay with every tenant by the test-side NetworkPolicy evaluator
(networkpolicy_evaluator_without_cni.py). Positive control first (each tenant's pods, Feast
CronJob and transformer reach their own pooler; the shared namespace the platform's), then the
forbidden paths (another tenant's pooler, the platform's), then each control broken on purpose.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from components.platform.readonly import reader_name
from components.platform.settings import CONFIGMAP
from components.platform.tenant_pool import CLIENTS_PER_POD, registry_database
from pipelines.cluster import PLATFORM_NAMESPACE, SHARED_PIPELINES_NAMESPACE, pgbouncer_config, postgres_roles
from pipelines.tenancy import load
from pipelines.tenant_pooler import (
    NAME_LABEL,
    PGBOUNCER_IMAGE,
    POOLER_APP,
    TENANT_LABEL,
    pooler_host,
    pooler_name,
    tenant_pooler,
)
from tests.manifests.network_platform import (
    MANIFESTS,
    TENANTS,
    Cluster,
    cluster,
    endpoints,
    named,
    pipelines_namespaces,
)
from tests.manifests.networkpolicy_evaluator_without_cni import Evaluator, Pod

DECLARED = {tenant.name: tenant for tenant in load(MANIFESTS).tenants}
PORT = 5432


@pytest.fixture(scope="module", params=["dev", "prod"])
def platform(request: pytest.FixtureRequest, schemas_dir: Path) -> Cluster:
    return cluster(request.param)


def find(objects: list[dict[str, Any]], kind: str, name: str, namespace: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and named(o) == (name, namespace)]
    return found


def ini_sections(ini: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    for line in ini.splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        elif line:
            current.append(line)
    return sections


def test_each_tenant_has_a_pooler_of_its_own_sized_from_its_declaration(platform: Cluster) -> None:
    """issue 29: one tenant can fill the shared PgBouncer's client slots. Each tenant's registry URL
    names its own pooler, which routes its registry only, admits its role only (the password of the
    Secret CloudNativePG sets the role from) and has quota.pods x CLIENTS_PER_POD client slots."""
    assert set(TENANTS) == set(DECLARED)
    roles = {role["name"]: role for role in postgres_roles(list(TENANTS))["spec"]["managed"]["roles"]}
    for tenant in TENANTS:
        configmap = find(platform.objects, "ConfigMap", CONFIGMAP, tenant)
        url = urlsplit(configmap["data"]["MLOPS_FEAST_REGISTRY_URL"])
        assert (url.hostname, url.port, url.username) == (pooler_host(tenant), PORT, tenant)
        name = pooler_name(tenant)
        assert pooler_host(tenant).startswith(f"{name}.{PLATFORM_NAMESPACE}.svc")
        ini = ini_sections(find(platform.objects, "ConfigMap", name, PLATFORM_NAMESPACE)["data"]["pgbouncer.ini"])
        assert [line.split(" = ")[0] for line in ini["databases"]] == [registry_database(tenant)]
        assert url.path.lstrip("/") == registry_database(tenant)
        settings = dict(line.split(" = ", 1) for line in ini["pgbouncer"])
        assert int(settings["max_client_conn"]) == DECLARED[tenant].quota.pods * CLIENTS_PER_POD
        assert settings["pool_mode"] == "transaction"
        assert [line.split(" = ")[0] for line in ini["users"]] == [tenant]
        pod = find(platform.objects, "Deployment", name, PLATFORM_NAMESPACE)["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        env = {e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"] for e in init["env"]}
        for user, variable in ((env["TENANT"], "PGPASSWORD"), (env["READER"], "READER_PASSWORD")):
            assert env[variable] == {"name": roles[user]["passwordSecret"]["name"], "key": "password"}
        assert (env["TENANT"], env["READER"]) == (tenant, reader_name(tenant))  # the transformer's role too
        (container,) = pod["containers"]
        assert container["image"] == PGBOUNCER_IMAGE
        service = find(platform.objects, "Service", name, PLATFORM_NAMESPACE)
        assert service["spec"]["selector"] == {NAME_LABEL: POOLER_APP, TENANT_LABEL: tenant}
        # the pooler's ingress names the tenant by its Namespace's label, which the platform sets
        assert find(platform.objects, "Namespace", tenant, "")["metadata"]["labels"][TENANT_LABEL] == tenant
    platform_pool = find(platform.objects, "Deployment", "pgbouncer", PLATFORM_NAMESPACE)
    assert platform_pool["spec"]["template"]["spec"]["containers"][0]["image"] == PGBOUNCER_IMAGE


def test_the_pooler_writes_a_userlist_of_its_tenant_and_reader_only(tmp_path: Path) -> None:
    """The init container's script, run as rendered (its path moved into tmp_path): one line per
    role, each with the password of its Secret, nothing else."""
    configmap, deployment = tenant_pooler("fraud", 3)[:2]
    script = configmap["data"]["write-userlist.sh"].replace("/etc/pgbouncer/userlist", str(tmp_path))
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e.get("value", f"secret-of-{e['name']}") for e in init["env"]}
    subprocess.run(["sh", "-c", script], env=env, check=True)
    written = (tmp_path / "userlist.txt").read_text()
    assert written == '"fraud" "secret-of-PGPASSWORD"\n"fraud_reader" "secret-of-READER_PASSWORD"\n'
    assert stat.S_IMODE((tmp_path / "userlist.txt").stat().st_mode) == 0o600


def test_the_platforms_pgbouncer_routes_the_platforms_databases_only() -> None:
    """The platform's PgBouncer (MLflow, Katib, Argo's archive, mlops-pipelines) no longer routes or
    caps any tenant: a tenant's sockets belong on its own pooler."""
    ini = ini_sections(pgbouncer_config()["data"]["pgbouncer.ini"])
    routed = {line.split(" = ")[0] for line in ini["databases"]}
    assert not {registry_database(tenant) for tenant in TENANTS} & routed
    assert "users" not in ini
    assert tenant_pooler("payments", 3)[0]["data"]["pgbouncer.ini"].count("max_client_conn = 6") == 1


def pooler(namespaces: dict[str, dict[str, str]], tenant: str) -> Pod:
    return Pod(PLATFORM_NAMESPACE, {NAME_LABEL: POOLER_APP, TENANT_LABEL: tenant}, namespaces[PLATFORM_NAMESPACE])


def pooler_flows(evaluator: Evaluator, namespaces: dict[str, dict[str, str]]) -> dict[str, bool]:
    """Whether each pipelines namespace's pods (pipeline pod, Feast CronJob, transformer) reach each
    tenant's pooler and the platform's PgBouncer on 5432."""
    (platform_pool,) = endpoints("pgbouncer", namespaces)
    targets = {**{f"{t}'s pooler": pooler(namespaces, t) for t in TENANTS}, "the platform's": platform_pool}
    flows = {}
    for source_ns in pipelines_namespaces(namespaces):
        names = ["pipeline-pod", "transformer"] + (["feast-materialize"] if source_ns in TENANTS else [])
        for name in names:
            (source,) = endpoints(name, namespaces, source_ns)
            for target_name, target in targets.items():
                flows[f"{name}@{source_ns} -> {target_name}"] = evaluator.allowed(source, target, PORT)
    return flows


def expected(flow: str) -> bool:
    source_ns = flow.split("@")[1].split(" ->")[0]
    target = flow.split(" -> ")[1]
    return target == f"{source_ns}'s pooler" or (target == "the platform's" and source_ns == SHARED_PIPELINES_NAMESPACE)


def test_a_tenant_reaches_its_own_pooler_and_no_other(platform: Cluster) -> None:
    """issue 29: fraud's pods reach fraud's pooler (positive control), pricing's pods reach neither
    fraud's pooler nor the platform's PgBouncer, whose slots MLflow and Katib need."""
    flows = pooler_flows(platform.evaluator, platform.namespaces)
    assert flows["pipeline-pod@fraud -> fraud's pooler"] and flows["transformer@fraud -> fraud's pooler"]
    assert flows[f"pipeline-pod@{SHARED_PIPELINES_NAMESPACE} -> the platform's"]
    assert not flows["pipeline-pod@pricing -> fraud's pooler"]
    assert not flows["pipeline-pod@pricing -> the platform's"]
    assert {flow: allowed for flow, allowed in flows.items() if allowed != expected(flow)} == {}


def widened(evaluator: Evaluator, name: str, namespace: str, peer: dict[str, Any]) -> Evaluator:
    """The policies with the peers of `name`'s rules replaced by `peer` (a control broken on purpose)."""
    policies = []
    for policy in evaluator.policies:
        if named(policy) == (name, namespace):
            spec = yaml.safe_load(yaml.safe_dump(policy["spec"]))
            for rule in spec.get("ingress", []):
                rule["from"] = [peer]
            for rule in spec.get("egress", []):
                rule["to"] = [peer]
            policy = {**policy, "spec": spec}
        policies.append(policy)
    return Evaluator(policies)


def test_the_flow_check_sees_a_pooler_opened_to_every_tenant(platform: Cluster) -> None:
    """The controls broken on purpose. Two policies keep pricing off fraud's pooler: fraud's pooler
    admits fraud's namespace only, and pricing's pods may leave only for pricing's pooler. Opening
    either alone is still denied by the other; opening both is a flow the check reports. And the
    platform's PgBouncer admitting every pipelines namespace, as before the fix, is one too."""
    pipelines = {"namespaceSelector": {"matchLabels": {"mlops.private-platform.io/role": "pipelines"}}}
    every_pooler = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": PLATFORM_NAMESPACE}},
        "podSelector": {"matchLabels": {NAME_LABEL: POOLER_APP}},
    }
    ingress = widened(platform.evaluator, f"{pooler_name('fraud')}-from-its-tenant", PLATFORM_NAMESPACE, pipelines)
    assert not pooler_flows(ingress, platform.namespaces)["pipeline-pod@pricing -> fraud's pooler"]
    egress = widened(platform.evaluator, "allow-own-pgbouncer-egress", "pricing", every_pooler)
    assert not pooler_flows(egress, platform.namespaces)["pipeline-pod@pricing -> fraud's pooler"]
    both = widened(ingress, "allow-own-pgbouncer-egress", "pricing", every_pooler)
    flows = pooler_flows(both, platform.namespaces)
    assert flows["pipeline-pod@pricing -> fraud's pooler"] and flows["transformer@pricing -> fraud's pooler"]
    before = widened(platform.evaluator, "pgbouncer-from-clients", PLATFORM_NAMESPACE, pipelines)
    assert pooler_flows(before, platform.namespaces)["pipeline-pod@pricing -> the platform's"]
