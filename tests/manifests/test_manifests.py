"""The platform manifests: every overlay renders and validates, and carries the design's settings."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.lint import lint
from pipelines.tenancy import load as load_tenants
from tests.conftest import REGISTRATION, REPO
from tests.pod_security import restricted_violations
from tests.rendered_manifests import render

MANIFESTS = REPO / "manifests"
LABEL = "mlops.private-platform.io"
ALERTS = {
    "DecisionLogDropping",
    "DecisionLogSpilling",
    "RequestLogDropping",
    "ModelPerformanceDegraded",
    "PipelineGateFailed",
    "PipelineRunFailed",
    "ModelDriftDetected",
    "DriftMetricsMissing",
    "DriftMetricsAbsent",
    "DriftPValueNaN",
    "KServeHighErrorRate",
    "KServeLatencyOverSLO",
    "GPUMemoryNearLimit",
    "ArgoWorkflowFailed",
    "CronWorkflowMissedSchedule",
    "FeastMaterializationStale",
    "MLflowServerErrors",
    "PostgresBackupStale",
    "RegistryVerifyFailed",
    "RegistryVerifyStale",
}


@pytest.fixture(scope="module")
def overlays(schemas_dir: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: render(MANIFESTS / "overlays" / name) for name in ("dev", "prod")}


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_every_overlay_renders_and_validates_with_no_findings(schemas_dir: Path) -> None:
    skipped: list[str] = []
    checked, findings = lint(MANIFESTS, report=skipped.append)
    assert findings == [] and checked > 80
    # Only the kinds lint-exceptions.yaml names (each with how it is checked instead), nothing else
    assert skipped and all("ClusterStorageContainer/-/default" in line for line in skipped), skipped


def test_the_serving_runtime_is_validated_against_kserves_crd(schemas_dir: Path, tmp_path: Path) -> None:
    """The ClusterServingRuntime exception is gone: a typo in the runtime is a finding."""
    runtime = (MANIFESTS / "base" / "serving" / "triton-runtime.yaml").read_text()
    (tmp_path / "kustomization.yaml").write_text("resources: [runtime.yaml]\n")
    (tmp_path / "runtime.yaml").write_text(runtime)
    assert lint(tmp_path, report=lambda line: None)[1] == []  # positive control: the shipped runtime is valid
    (tmp_path / "runtime.yaml").write_text(runtime.replace("protocolVersions:", "protocolVersions: 2\n  x:"))
    _checked, findings = lint(tmp_path, report=lambda line: None)
    assert any("ClusterServingRuntime" in f.obj and "protocolVersions" in f.problem for f in findings), findings


def runtime_ports(runtime: dict[str, Any]) -> dict[str, Any]:
    """The ports a ClusterServingRuntime's server listens on (its --http-port and --grpc-port) and declares
    (KServe takes the first declared port as the predictor's HTTP port)."""
    [container] = runtime["spec"]["containers"]
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in container["args"] if arg.startswith("--"))
    declared = [port["containerPort"] for port in container.get("ports", [])]
    return {"http": int(flags["http-port"]), "grpc": int(flags["grpc-port"]), "declared": declared}


def test_tritons_ports_are_the_ones_promote_renders_the_service_for() -> None:
    """Promote renders the predictor's probe on TRITON_HTTP_PORT and the transformer's --predictor_host on
    TRITON_GRPC_PORT; the runtime's server must listen there (helper-93: written twice, compared nowhere)."""
    from components.steps.promote import TRITON_GRPC_PORT, TRITON_HTTP_PORT

    runtime = yaml.safe_load((MANIFESTS / "base" / "serving" / "triton-runtime.yaml").read_text())
    expected = {"http": TRITON_HTTP_PORT, "grpc": TRITON_GRPC_PORT, "declared": [TRITON_HTTP_PORT]}
    assert runtime_ports(runtime) == expected
    moved = copy.deepcopy(runtime)  # the comparison sees a drift of either port
    args = moved["spec"]["containers"][0]["args"]
    args[args.index(f"--grpc-port={TRITON_GRPC_PORT}")] = f"--grpc-port={TRITON_GRPC_PORT + 1}"
    assert runtime_ports(moved) != expected
    undeclared = copy.deepcopy(runtime)
    undeclared["spec"]["containers"][0]["ports"][0]["containerPort"] = TRITON_HTTP_PORT + 1
    assert runtime_ports(undeclared) != expected


def test_lint_fails_on_a_typo_and_on_an_unknown_kind(schemas_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
    (tmp_path / "objects.yaml").write_text("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: x}
spec:
  replica: 2
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: c, image: registry.mlops.internal/x:1}]
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: x}
spec:
  containers:
    - name: c
      image: docker.io/library/python:3.11
      env: [{name: DB_PASSWORD, value: hunter2}]
      resources: {limits: {nvidia.com/gpu: "1"}}
""")
    _, findings = lint(tmp_path, report=lambda line: None)
    problems = [f.problem for f in findings]
    assert any("replica" in p for p in problems), problems
    assert any("unknown kind example.com/v1 Gadget" in p for p in problems)
    assert any("[internal-registry-only]" in p for p in problems)
    assert any("[credentials-from-secrets-only]" in p for p in problems)
    assert any("[gpu-workloads-set-memory-limits]" in p for p in problems)


def test_every_alert_has_its_runbook() -> None:
    rules = yaml.safe_load((MANIFESTS / "monitoring" / "prometheus-rules.yaml").read_text())
    alerts = {r["alert"]: r for group in rules["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == ALERTS
    for name, rule in alerts.items():
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks/{name}.md"
        text = (REPO / rule["annotations"]["runbook_url"]).read_text()
        for section in ("**Owner:**", "**Symptom:**", "**First checks**", "**Fix**"):
            assert section in text, (name, section)
        assert rule["labels"]["owner"] in ("platform", "model-owner")
    assert alerts["KServeHighErrorRate"]["for"] == "10m" and "0.05" in alerts["KServeHighErrorRate"]["expr"]


def test_redis_is_a_bounded_cache(overlays: dict[str, list[dict[str, Any]]]) -> None:
    for objects in overlays.values():
        config = find(objects, "ConfigMap", "redis")["data"]["redis.conf"]
        assert "maxmemory-policy allkeys-lru" in config and 'save ""' in config and "appendonly no" in config
        maxmemory = re.search(r"maxmemory (\d+)(mb|gb)", config)
        assert maxmemory
        bytes_max = int(maxmemory.group(1)) * (2**30 if maxmemory.group(2) == "gb" else 2**20)
        limit = find(objects, "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]["resources"][
            "limits"
        ]
        assert bytes_max < int(limit["memory"].removesuffix("Gi")) * 2**30


def test_mlflow_goes_through_pgbouncer_in_transaction_mode(overlays: dict[str, list[dict[str, Any]]]) -> None:
    objects = overlays["prod"]
    args = " ".join(find(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "@pgbouncer.mlops.svc:5432/mlflow" in args and "--no-serve-artifacts" in args
    assert "pool_mode = transaction" in find(objects, "ConfigMap", "pgbouncer")["data"]["pgbouncer.ini"]


def test_the_tracking_server_holds_no_s3_key(overlays: dict[str, list[dict[str, Any]]]) -> None:
    """In direct mode a key on the server only makes it a confused deputy (docs/tenancy.md)."""
    for name, objects in overlays.items():
        server = find(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
        variables = {env["name"]: env for env in server["env"]}
        assert "--no-serve-artifacts" in server["args"], name
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(variables), name
        assert not server.get("envFrom"), name
        assert variables["AWS_EC2_METADATA_DISABLED"]["value"] == "true", name


def test_every_pipelines_namespace_enforces_pod_security(overlays: dict[str, list[dict[str, Any]]]) -> None:
    """A team that can create Workflows must not get a privileged or host-namespace pod onto a node."""
    rendered = {**overlays, **{f"tenant {t}": render(MANIFESTS / "tenants" / t) for t in TENANTS}}
    for target, objects in rendered.items():
        namespaces = [
            o for o in objects
            if o["kind"] == "Namespace" and o["metadata"].get("labels", {}).get(f"{LABEL}/role") == "pipelines"
        ]  # fmt: skip
        assert namespaces, target
        for namespace in namespaces:
            labels = namespace["metadata"]["labels"]
            assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", (target, labels)
            assert labels.get("pod-security.kubernetes.io/warn") == "restricted", (target, labels)


def test_argos_artifact_repositories_are_where_trainjobs_hand_off(overlays: dict[str, list[dict[str, Any]]]) -> None:
    """Each artifact-repositories ConfigMap (the platform's and each tenant's) in every overlay names the
    bucket, endpoint and key prefix the TrainJob hand-offs derive (pipelines/trainer.py: repository_uri,
    artifact_key) and the platform settings' object store: written by hand in YAML, compared here."""
    from urllib.parse import urlsplit

    from components.platform.buckets import PIPELINE_ARTIFACTS
    from pipelines.cluster import cluster_settings
    from pipelines.trainer import artifact_key

    store = urlsplit(cluster_settings().s3_endpoint)
    tenant_base = [d for d in yaml.safe_load_all((MANIFESTS / "tenants" / "base" / "tenant.yaml").read_text()) if d]
    for overlay, objects in {**overlays, "tenants/base": tenant_base}.items():
        found = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "artifact-repositories"]
        assert len(found) == 1, overlay  # the platform's in each overlay, the tenants' in their base
        for configmap in found:
            s3 = yaml.safe_load(configmap["data"]["default-v1"])["s3"]
            where = (overlay, configmap["metadata"].get("namespace"))
            assert (s3["bucket"], s3["endpoint"], s3["insecure"]) == (
                PIPELINE_ARTIFACTS, store.netloc, store.scheme != "https"), where  # fmt: skip
            assert s3["keyFormat"].startswith(artifact_key("")), where


def test_pgbouncer_listens_where_its_service_and_its_clients_point(overlays: dict[str, list[dict[str, Any]]]) -> None:
    """PgBouncer's listen_port (PGBOUNCER_SETTINGS, rendered into its pgbouncer.ini) is its container's
    port, its probe's and its Service's target, and the port Katib's DB manager is given: the URLs of the
    other clients are compared with the Service by the derived-flow checks, these were compared nowhere."""
    from pipelines.cluster import PGBOUNCER_SETTINGS

    listen = int(PGBOUNCER_SETTINGS["listen_port"])
    for overlay, objects in overlays.items():
        ini = find(objects, "ConfigMap", "pgbouncer")["data"]["pgbouncer.ini"]
        assert f"listen_port = {listen}" in ini.splitlines(), overlay
        [container] = find(objects, "Deployment", "pgbouncer")["spec"]["template"]["spec"]["containers"]
        assert [port["containerPort"] for port in container["ports"]] == [listen], overlay
        assert container["readinessProbe"]["tcpSocket"]["port"] == listen, overlay
        [service_port] = find(objects, "Service", "pgbouncer")["spec"]["ports"]
        assert service_port["targetPort"] == listen, overlay
        # Katib's DB manager, by its patch (manifests/katib: no overlay renders it, Katib's install does)
        patch = yaml.safe_load((MANIFESTS / "katib" / "db-manager-patch.yaml").read_text())
        katib = {e["name"]: e.get("value") for e in patch["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert int(katib["KATIB_POSTGRESQL_DB_PORT"]) == service_port["port"], overlay


def test_prod_is_highly_available_and_dev_is_small(overlays: dict[str, list[dict[str, Any]]]) -> None:
    prod, dev = overlays["prod"], overlays["dev"]
    assert find(prod, "Cluster", "mlops-postgres")["spec"]["instances"] == 3
    assert find(dev, "Cluster", "mlops-postgres")["spec"]["instances"] == 1
    assert find(prod, "Deployment", "mlflow")["spec"]["replicas"] == 3
    assert {o["metadata"]["name"] for o in prod if o["kind"] == "PodDisruptionBudget"} == {
        "minio",
        "mlflow",
        "pgbouncer",
        "redis",
        "mlops-postgres",
    }
    assert not [o for o in dev if o["kind"] == "PodDisruptionBudget"]


def test_gpu_failure_boundaries(overlays: dict[str, list[dict[str, Any]]]) -> None:
    objects = overlays["prod"]
    runtime = find(objects, "ClusterServingRuntime", "triton-fil")["spec"]
    assert runtime["nodeSelector"] == {"mlops.private-platform.io/pool": "inference-gpu"}
    assert {"key": "kserve-gpu", "operator": "Exists", "effect": "NoSchedule"} in runtime["tolerations"]
    assert runtime["containers"][0]["resources"]["limits"]["memory"]
    inference = find(objects, "PriorityClass", "production-inference")
    training = find(objects, "PriorityClass", "training-batch")
    assert inference["value"] > training["value"] and training["preemptionPolicy"] == "Never"


def test_artifact_repository_and_default_deny(overlays: dict[str, list[dict[str, Any]]]) -> None:
    objects = overlays["prod"]
    repository = yaml.safe_load(find(objects, "ConfigMap", "artifact-repositories")["data"]["default-v1"])
    assert "{{workflow.name}}" in repository["s3"]["keyFormat"]
    assert repository["s3"]["accessKeySecret"]["name"] == "mlops-s3-credentials"
    denies = {
        o["metadata"]["namespace"]
        for o in objects
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "default-deny"
    }
    assert denies == {"mlops", "storage", "mlops-pipelines"}


TENANTS = sorted(load_tenants(MANIFESTS).names)  # manifests/tenants/tenants.yaml
PROCESS_LOCAL = {
    "MLOPS_HOME": "the embedded profile's folder (a pod's is scratch: nothing is kept there)",
    "MLOPS_FEAST_SOURCE_URI": "set by materialize itself for the feature repo it imports",
    "MLOPS_FEAST_TIMESTAMP_FIELD": "set by materialize itself (materialize.timestamp_column) for the feature repo",
    "MLOPS_OUTPUT_URIS": "set on a team step's Argo template by the renderer (pipelines/team_steps.py), per step",
    "MLOPS_STEP_RETRY": "the step's retry policy, rendered per task on KFP",
    "MLOPS_IMAGE": "the component image, rendered per task on Argo and KFP for the lineage",
    "MLOPS_DUCKDB_MEMORY_LIMIT": "DuckDB's budget in a data step (components/duckdb_session.py; tests)",
    "MLOPS_DRIFT_THREADS": "an override of the drift step's parallel feature groups (benchmarks, tests)",
    "MLOPS_TRAINJOB_TEMPLATE": "the TrainJob a distributed train task launches, rendered per task on KFP",
    "MLOPS_RAYJOB_TEMPLATE": "the RayJob a materialize task launches under engine ray, rendered per task",
    "MLOPS_POD_NAMESPACE": "the pod's namespace from the downward API, rendered per task on KFP (require_namespace)",
    "MLOPS_USER": "who a CLI user is, for the serving history",
    "MLOPS_SERVING_THREADS": "the local Triton's python backend",
    "MLOPS_SERVING_VENV": "the local Triton's environment",
    "MLOPS_SCHEMAS_DIR": "mlops lint on a laptop",
    "MLOPS_SERVICES_DIR": "mlops dev on a laptop",
    "MLOPS_PROFILE": "read through the settings model like every ConfigMap key",
    # components.platform.settings.PUSHGATEWAY_CREDENTIALS: the cluster's per-namespace Pushgateway needs none
    "MLOPS_PUSHGATEWAY_USERNAME": "the tenant's loopback Pushgateway user (mlops tenant env)",
    "MLOPS_PUSHGATEWAY_PASSWORD": "the tenant's loopback Pushgateway password (mlops tenant env)",
    "MLOPS_WARM_DIR": "where a laptop's warm workers keep their sockets (pipelines/warm_worker.py; tests)",
    "MLOPS_WARM_PRELOAD": "what a laptop's warm worker imports (pipelines/warm_worker.py)",
    "MLOPS_WARM_IDLE_SECONDS": "how long a laptop's warm worker waits for a task (pipelines/warm_worker.py)",
    "MLOPS_WARM_COMPONENTS": "the components package a warm worker must find, set by its starter",
    "MLOPS_LOCAL_ENGINE": "which local engine `mlops run` uses on a laptop (warm or kfp-local)",
    "MLOPS_DOCTOR_POSTGRES_URL": "an operator's own database URL for `mlops doctor`",
    "AWS_CONFIG_FILE": "boto's own: `mlops doctor` reads a laptop's AWS config as boto would",
    "AWS_PROFILE": "boto's own: `mlops doctor` reads a laptop's AWS config as boto would",
}


def test_each_pipelines_namespace_gets_the_platform_configmap_with_exactly_the_keys_steps_read(
    overlays: dict[str, list[dict[str, Any]]],
) -> None:
    from components.platform.settings import CONFIGMAP, configmap_keys, environment
    from pipelines.cluster import cluster_settings

    rendered = {name: objects for name, objects in overlays.items()}
    rendered |= {f"tenant {t}": render(MANIFESTS / "tenants" / t) for t in TENANTS}
    for target, objects in rendered.items():
        namespaces = [
            o["metadata"]["name"]
            for o in objects
            if o["kind"] == "Namespace" and o["metadata"].get("labels", {}).get(f"{LABEL}/role") == "pipelines"
        ]
        assert namespaces, target
        for namespace in namespaces:
            configmap = next(
                o for o in objects
                if o["kind"] == "ConfigMap" and o["metadata"]["name"] == CONFIGMAP
                and o["metadata"]["namespace"] == namespace
            )  # fmt: skip
            assert set(configmap["data"]) == configmap_keys(), f"{target}/{namespace}"
            tenant = "" if namespace == "mlops-pipelines" else namespace
            assert configmap["data"] == environment(cluster_settings(tenant))
            assert configmap["data"]["MLOPS_PROFILE"] == "platform"
            if tenant:
                assert configmap["data"]["MLOPS_SERVING_ROOT"] == f"s3://models/{tenant}"
                assert configmap["data"]["MLOPS_OFFLINE_STORE_URI"] == f"s3://feast-offline/{tenant}"


def _without_all(source: str) -> str:
    """The source less its `__all__` list, whose strings name the module's constants, not variables it reads."""
    return re.sub(r"^__all__ = \[.*?\]$", "", source, flags=re.MULTILINE | re.DOTALL)


def test_every_variable_the_code_reads_is_a_configmap_key_a_secret_or_process_local() -> None:
    """A step cannot come to depend on a variable the cluster never sets: each name in the code is
    declared in the settings model (ConfigMap), in SECRET_VARIABLES, or here as process-local. The CLI
    too (mlops/): its canary analysis and registry check run in pods, and `mlops doctor` named
    settings' variables as literals that a rename would have left reading nothing (helper-93)."""
    from components.platform.readonly import READER_VARIABLES
    from components.platform.settings import SECRET_VARIABLES, configmap_keys

    named = re.compile(r"[\"'](MLOPS_[A-Z0-9_]+|MLFLOW_[A-Z0-9_]+|AWS_[A-Z0-9_]+)[\"']")
    found: dict[str, str] = {}
    for folder in ("components", "pipelines", "mlops"):  # the code that runs in a pod (devstack never does)
        for source in (REPO / folder).rglob("*.py"):
            for name in named.findall(_without_all(source.read_text())):
                found.setdefault(name, str(source.relative_to(REPO)))
    from components.steps.serving_decisions import decision_log_environment

    # the transformer's reader logs in with READER_VARIABLES, from its reader Secrets (components/platform/readonly.py);
    # its decision log is named by the variables promote renders into its container (issue 32)
    logged = {variable["name"] for variable in decision_log_environment("champion")}
    # the predictor's pinned sha256, which promote renders into its container (components/serving/served_bytes.py)
    from components.serving.served_bytes import EXPECTED_SHA256_ENV

    logged.add(EXPECTED_SHA256_ENV)
    known = configmap_keys() | set(SECRET_VARIABLES) | set(READER_VARIABLES) | set(PROCESS_LOCAL) | logged
    unknown = {name: where for name, where in found.items() if name not in known}
    assert unknown == {}, "declare these in components/platform/settings.py (ConfigMap or Secret) or PROCESS_LOCAL"


def test_generated_manifests_are_in_step_with_the_settings_model() -> None:
    from pipelines.golden import manifest_drift

    assert manifest_drift() == [], "run `make golden` and review the diff"


def test_bucket_setup_job_applies_the_declared_buckets(overlays: dict[str, list[dict[str, Any]]]) -> None:
    for objects in overlays.values():
        job = find(objects, "Job", "bucket-setup")
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["mlops", "buckets", "ensure"]


def test_each_tenant_has_the_predictors_service_account_with_an_annotated_secret() -> None:
    """KServe's storage initializer reads storageUri with the credentials of the predictor's
    ServiceAccount: the account promote renders must exist in the tenant's namespace, with a
    Secret annotated with the same endpoint the tenant's pods use, and no key in the manifest."""
    from components.config import load_config
    from pipelines.cluster import MODEL_PULLER_SECRET_KEYS

    for pipeline in ("fraud", "forecast"):
        cfg = load_config(REPO / "pipelines" / pipeline / "config.yaml")
        objects = render(MANIFESTS / "tenants" / cfg.promote.namespace)
        account = find(objects, "ServiceAccount", cfg.promote.service_account)
        (secret_name,) = [entry["name"] for entry in account["secrets"]]
        secret = find(objects, "Secret", secret_name)
        configmap = find(objects, "ConfigMap", "mlops-platform")
        notes = secret["metadata"]["annotations"]
        assert f"http://{notes['serving.kserve.io/s3-endpoint']}" == configmap["data"]["MLFLOW_S3_ENDPOINT_URL"]
        assert notes["serving.kserve.io/s3-usehttps"] == "0" and notes["serving.kserve.io/s3-region"]
        assert "data" not in secret and "stringData" not in secret
        assert all(key in notes["mlops.private-platform.io/keys"] for key in MODEL_PULLER_SECRET_KEYS)


def test_every_registry_url_names_a_managed_role_and_tenant_roles_have_a_connection_limit(
    overlays: dict[str, list[dict[str, Any]]],
) -> None:
    """A tenant's ConfigMap names role <tenant>; the Cluster must create it, with a cap on direct
    connections (PgBouncer's per-user cap does not see a psql that goes around it)."""
    from urllib.parse import urlsplit

    from components.platform.readonly import reader_name
    from components.platform.settings import CONFIGMAP, TENANT_CONNECTION_LIMIT, TENANT_SERVER_CONNECTIONS

    users, databases = {"feast"}, {"feast_registry"}
    # Katib's DB manager, by the names its patch gives it (manifests/katib/db-manager-patch.yaml)
    patch = yaml.safe_load((MANIFESTS / "katib" / "db-manager-patch.yaml").read_text())
    katib_env = {e["name"]: e.get("value") for e in patch["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert katib_env["KATIB_POSTGRESQL_DB_HOST"] == "pgbouncer.mlops.svc" and katib_env["DB_NAME"] == "postgres"
    users.add(katib_env["DB_USER"])
    databases.add(katib_env["KATIB_POSTGRESQL_DB_DATABASE"])
    # Argo's workflow archive, as the controller's config names it (the role is its Secret's <role>-db-credentials)
    archive = yaml.safe_load(find(overlays["dev"], "ConfigMap", "workflow-controller-configmap")["data"]["persistence"])
    users.add(archive["postgresql"]["userNameSecret"]["name"].removesuffix("-db-credentials"))
    databases.add(archive["postgresql"]["database"])
    platform_databases, pools = set(databases), {}
    for tenant in TENANTS:
        configmap = find(render(MANIFESTS / "tenants" / tenant), "ConfigMap", CONFIGMAP)
        url = urlsplit(configmap["data"]["MLOPS_FEAST_REGISTRY_URL"])
        users.add(url.username or "")
        databases.add(url.path.lstrip("/"))
        pools[tenant] = (str(url.hostname).split(".")[0], url.path.lstrip("/"))  # its own PgBouncer (issue 29)
    users |= {reader_name(tenant) for tenant in TENANTS}  # each tenant's transformer reads as its reader (issue 29)
    for name, objects in overlays.items():
        roles = {r["name"]: r for r in find(objects, "Cluster", "mlops-postgres")["spec"]["managed"]["roles"]}
        assert users == set(roles), name
        # PgBouncer routes only the databases it lists: the platform's the platform's, each
        # tenant's own its registry only, capping the tenant's server connections
        ini = find(objects, "ConfigMap", "pgbouncer")["data"]["pgbouncer.ini"]
        routed = {line.split(" = ")[0] for line in ini.split("[pgbouncer]")[0].splitlines()[1:]}
        assert platform_databases <= routed, (name, platform_databases - routed)
        assert not {database for _, database in pools.values()} & routed, name
        # Katib prepares statements: in transaction pooling PgBouncer must track them
        assert "max_prepared_statements = 200" in ini.split("[pgbouncer]")[1], name
        for tenant, (pool, database) in pools.items():
            pool_ini = find(objects, "ConfigMap", pool)["data"]["pgbouncer.ini"]
            assert {line.split(" = ")[0] for line in pool_ini.split("[pgbouncer]")[0].splitlines()[1:]} == {database}
            assert f"{tenant} = max_user_connections={TENANT_SERVER_CONNECTIONS}" in pool_ini.split("[users]")[1]
        for tenant in TENANTS:
            assert roles[tenant]["connectionLimit"] == TENANT_CONNECTION_LIMIT, (name, tenant)
            assert roles[tenant]["inherit"] is False
            assert roles[tenant]["passwordSecret"] == {"name": f"{tenant}-db-credentials"}


def test_tenant_pipelines_use_their_namespaces_own_secrets_and_members_cannot_read_secrets() -> None:
    """The platform's own Secrets (mlops-s3-credentials, ...) live in the platform's namespaces:
    a tenant's pods can mount only Secrets of their own namespace, and the tenant's objects and
    the rendered pipelines name only the tenant-* ones. Members read no Secret but their
    tenant's own S3 key, by name."""
    from pipelines.golden import golden_dir

    def secret_names(node: Any) -> set[str]:
        found: set[str] = set()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("secretKeyRef", "accessKeySecret", "secretKeySecret") and isinstance(value, dict):
                    found.add(value["name"])
                elif key == "secretName" and isinstance(value, str):
                    found.add(value)
                else:
                    found |= secret_names(value)
        elif isinstance(node, list):
            for item in node:
                found |= secret_names(item)
        return found

    rendered = [
        list(yaml.safe_load_all(path.read_text()))
        for name in ("fraud", "forecast")
        for path in golden_dir(name).glob("*.yaml")
    ]
    assert secret_names(rendered) == {
        "tenant-s3-credentials", "tenant-mlflow-credentials", "tenant-feast-credentials", "tenant-redis-credentials"
    }  # fmt: skip
    for tenant in TENANTS:
        objects = render(MANIFESTS / "tenants" / tenant)
        for document in objects:
            repository = document.get("data", {}).get("default-v1")
            names = secret_names(yaml.safe_load(repository) if repository else document)
            assert all(name.startswith(("tenant-", "model-puller")) for name in names), (tenant, names)
        for role in (o for o in objects if o["kind"] == "Role"):
            for rule in role["rules"]:
                if "secrets" not in rule.get("resources", []):
                    continue
                # issue 28: the one exception, the Argo server's artifact download reads the tenant's
                # own prefix-scoped S3 key as the member (tests/cluster/journeys.py); never list/watch
                grant = (role["metadata"]["name"], rule.get("resourceNames"), rule["verbs"])
                assert grant == ("pipeline-submitter", ["tenant-s3-credentials"], ["get"]), (tenant, grant)


def test_serving_pods_meet_pod_security_restricted(overlays: dict[str, list[dict[str, Any]]]) -> None:
    """Every pipelines namespace enforces restricted, and it also hosts the predictors (Triton plus
    KServe's storage initializer) and the tenant's Redis: each of them must pass it."""
    import kubernetes_validate

    from components.config import PromoteSettings
    from components.steps.promote import render_inference_service

    registration = dict(REGISTRATION)
    service = render_inference_service(
        registration, settings=PromoteSettings(namespace="fraud"), storage_uri="s3://models/x", canary_percent=10
    )
    predictor = service["spec"]["predictor"]
    storage = find(overlays["prod"], "ClusterStorageContainer", "default")["spec"]["container"]
    # KServe builds the predictor pod from the predictor's pod fields, the model container and
    # the storage initializer; the pod-level fields come from the predictor.
    pod = {key: value for key, value in predictor.items() if key in ("securityContext", "volumes")}
    assert restricted_violations(pod, [{**predictor["model"], "name": "kserve-container"}, storage]) == []
    wrapped = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [storage]}}
    kubernetes_validate.validate(wrapped, "1.31", strict=True)  # the container is a valid core/v1 Container
    for tenant in TENANTS:
        redis = find(render(MANIFESTS / "tenants" / tenant), "StatefulSet", "redis")["spec"]["template"]["spec"]
        assert restricted_violations(redis, redis["containers"] + redis["initContainers"]) == [], tenant
    # the check itself: a model container as KServe's runtime ships it fails
    assert restricted_violations({}, [{"name": "kserve-container"}])


def test_the_tracking_server_runs_the_auth_app_with_the_laptops_rules(
    overlays: dict[str, list[dict[str, Any]]],
) -> None:
    """Without the auth app every tenant read and wrote every other's runs and models on the cluster;
    with it as MLflow ships, READ by default and any name for anyone. The server runs from the
    component image because the name rule (components.platform.tracking_auth) is in it."""
    import configparser
    import importlib

    from components.platform.tracking_auth import AUTHORIZATION_FUNCTION, auth_config
    from pipelines.standard import IMAGE

    for name, objects in overlays.items():
        deployment = find(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]
        (server,) = deployment["containers"]
        assert server["image"] == IMAGE and "--app-name=basic-auth" in server["args"], name
        env = {variable["name"]: variable for variable in server["env"]}
        path = Path(env["MLFLOW_AUTH_CONFIG_PATH"]["value"])
        mount = next(m for m in server["volumeMounts"] if path.parent == Path(m["mountPath"]))
        volume = next(v for v in deployment["volumes"] if v["name"] == mount["name"])
        ini = find(objects, "ConfigMap", volume["configMap"]["name"])["data"][path.name]
        config = configparser.ConfigParser()
        config.read_string(ini)
        assert config["mlflow"]["default_permission"] == "NO_PERMISSIONS"
        assert config["mlflow"]["authorization_function"] == AUTHORIZATION_FUNCTION
        module, function = AUTHORIZATION_FUNCTION.split(":")
        assert callable(getattr(importlib.import_module(module), function))
        assert ini == auth_config(config["mlflow"]["database_uri"])  # the laptop's file, the same function
        assert ":" not in config["mlflow"]["database_uri"].split("//")[1].split("@")[0]  # no password in it
        for secret in ("PGPASSWORD", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):
            assert "secretKeyRef" in env[secret]["valueFrom"], secret
        ini_routed = find(objects, "ConfigMap", "pgbouncer")["data"]["pgbouncer.ini"]
        assert "\nmlflow_auth = " in ini_routed  # the auth database, through the pool
