"""The fidelity run: the compiled WorkflowTemplate, executed the way Argo executes it, in real
containers of the component image, on the real services of `mlops dev up --tenancy`, as tenant
fraud.

Nothing is shared between steps but the platform: each task is its own podman container with
exactly the template's command, args and env. Its settings are the tenant's mlops-platform
ConfigMap as the cluster renders it (pipelines.cluster.cluster_settings("fraud") through
platform_configmap), each in-cluster Service address rewritten to the loopback port of the
service that plays it. Its credentials are the tenant's Secrets as the platform team creates
them, written out below as data: the tenant's prefix-scoped S3 key, its Redis ACL user, its
PostgreSQL role and its MLflow user (basic-auth on). Artifacts travel through S3 under the
artifact repository's keyFormat, with the tenant's key. Workflow parameters are set only as
`mlops submit -p` would.

The stand-in here is Argo's controller and executor (tests/integration/argo_controller_stand_in.py,
strict: missing outputs, undeclared inputs, retryPolicy, maxDuration, memoize keys, Argo's JSON
`{{workflow.failures}}`): no Kubernetes runs on this machine. Scenarios (one run each):
- happy path with a transient fault: MLflow is stopped before register and started again
  during its backoff (which ends as soon as MLflow answers); the retry strategy rides it out
  and yields exactly one version;
- the gate failing: notify runs, nothing is registered; materialize and train are memoized;
- a permanent fault: bad data stops the DAG at validate with exit 2, never retried, and the exit
  handler's notice, from Argo's JSON failures, names the failed step;
- the predictor's pull: KServe's storage initializer code (kserve-storage) downloads the
  promoted repository with the settings the rendered ServiceAccount and Secret give, and the
  local Triton scores a row from it;
- the same steps from the KFP IR through kfp.local's DockerRunner on podman's Docker API.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from components.environment import temporary_env
from components.serving.triton_config import tensor_contract
from devstack.stack import Stack
from devstack.tenants import Tenant, add_tenant, tenant_process_environment
from pipelines.cluster import cluster_settings, model_puller, secret_environment
from tests.conftest import REPO
from tests.integration.argo_controller_stand_in import ArgoControllerStandIn, Attempt, WorkflowRun
from tests.integration.fidelity_tenant import (
    RAW,
    TENANT,
    artifact_repository,
    loopback_configmap,
    storage_initializer_environment,
    tenant_secrets,
)
from tests.integration.podman_docker_api import podman_docker_service, removed_container_is_not_found

pytestmark = [pytest.mark.integration, pytest.mark.image]

ROWS = 20_000
GATE = "0.6"  # as `mlops submit -p gate-threshold=0.6`: the happy path must not hang on a near miss
SCHEDULED = "2026-12-04T02:00:00+01:00"
"""The happy run is the nightly of this time: its CronWorkflow hands it `{{workflow.scheduledTime}}`."""
DATED = "s3://feast-offline/fraud/raw/{date}/events.parquet"
"""The config's dated cluster.raw_data, which the night's pods fill with its date (2026-12-04)."""
FORK = {  # a fork changes configuration, not components: its own names on the shared test stack
    "register.model_name": "fraud-fidelity",
    "register.experiment": "fraud-fidelity",
    "materialize.project": "fraud_fidelity",
    "cluster.raw_data": DATED,
}


@pytest.fixture(scope="module")
def fidelity(
    tenancy_stack: Stack, component_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    from pipelines.argo import render
    from pipelines.fraud import pipeline as fraud
    from pipelines.fraud.data import generate

    stack = tenancy_stack
    # the notices' Pushgateway (what reaches it is checked here, so Alertmanager routes nowhere)
    stack.up_monitoring({"route": {"receiver": "none"}, "receivers": [{"name": "none"}]})
    tenant = add_tenant(stack, TENANT)  # as `mlops tenant add fraud` (idempotent: the tenancy tests share it)
    cfg = fraud.DECLARATION.config().with_overrides(FORK)
    rendered = render(fraud.DECLARATION, cfg)
    template = rendered["WorkflowTemplate"]
    data = tmp_path_factory.mktemp("fidelity-data")
    generate(ROWS, 5).to_parquet(data / "latest.parquet", index=False)
    bucket, _, key = RAW.removeprefix("s3://").partition("/")
    stack.s3_client().upload_file(str(data / "latest.parquet"), bucket, key)
    night = DATED.replace("{date}", SCHEDULED[:10]).removeprefix(f"s3://{bucket}/")
    stack.s3_client().upload_file(str(data / "latest.parquet"), bucket, night)  # the night's own extract
    configmap = loopback_configmap(stack, tenant)
    runner = ArgoControllerStandIn(
        template=template,
        images={fraud.DECLARATION.spec.image: component_image},
        configmaps={"mlops-platform": configmap},
        secrets=tenant_secrets(tenant),
        artifact_repository=artifact_repository(TENANT),
        s3_client=stack.s3_client(tenant.access_key, tenant.secret_key),
        namespace=TENANT,
    )
    try:
        yield {
            "cfg": cfg, "harness": runner, "configmap": configmap, "tenant": tenant, "stack": stack,
            "bucket": bucket, "key": key, "data": data, "cron": rendered["CronWorkflow"], "night": night,
        }  # fmt: skip
    finally:
        stack.monitoring_services().down()
        stack.monitoring = False
        stack.save()


def versions(fidelity: dict[str, Any], model: str) -> list[Any]:
    """The model's versions, read as the tenant (MLflow's basic-auth app is on)."""
    from mlflow import MlflowClient

    tenant: Tenant = fidelity["tenant"]
    with temporary_env({"MLFLOW_TRACKING_USERNAME": tenant.name, "MLFLOW_TRACKING_PASSWORD": tenant.password}):
        client = MlflowClient(tracking_uri=fidelity["stack"].tracking_uri)
        return list(client.search_model_versions(f"name='{model}'"))


def run_tags(fidelity: dict[str, Any], run_id: str) -> dict[str, str]:
    """The training run's tags (the lineage's), read as the tenant."""
    from mlflow import MlflowClient

    tenant: Tenant = fidelity["tenant"]
    with temporary_env({"MLFLOW_TRACKING_USERNAME": tenant.name, "MLFLOW_TRACKING_PASSWORD": tenant.password}):
        return dict(MlflowClient(tracking_uri=fidelity["stack"].tracking_uri).get_run(run_id).data.tags)


@pytest.fixture(scope="module")
def happy_run(fidelity: dict[str, Any]) -> Iterator[WorkflowRun]:
    """One run, MLflow stopped before register's first attempt and started during its backoff."""
    stack: Stack = fidelity["stack"]
    restarted: list[threading.Thread] = []

    def outage(task: str, attempt: int, result: Attempt | None) -> None:
        if task != "register":
            return
        if attempt == 1 and result is None:
            stack.down(("mlflow",))
        elif attempt == 1 and result is not None:
            thread = threading.Thread(target=stack.up, args=(("mlflow",),))
            thread.start()
            restarted.append(thread)

    def backoff(seconds: float) -> None:
        """Argo's backoff, cut short once the restarted MLflow answers: the next attempt then meets
        the server as it would after the whole wait, and no backoff is ever longer than Argo's.
        Idling on past the outage proved nothing and cost up to a backoff per retry."""
        started = time.monotonic()
        deadline = started + seconds
        for thread in restarted:
            thread.join(timeout=max(deadline - time.monotonic(), 0.0))
        if not restarted or any(thread.is_alive() for thread in restarted):
            time.sleep(max(deadline - time.monotonic(), 0.0))
        print(f"backoff {seconds:.0f} s, waited {time.monotonic() - started:.1f} s", flush=True)

    harness: ArgoControllerStandIn = fidelity["harness"]
    harness.hook, harness.sleep = outage, backoff
    try:
        try:
            # the nightly, as `argo submit --from cronworkflow/fraud-nightly --scheduled-time ... -p gate-threshold=...`
            run = harness.run_scheduled(fidelity["cron"], SCHEDULED, {"gate-threshold": GATE})
        finally:
            harness.sleep = time.sleep  # the module's later runs wait Argo's whole backoff
        yield run
    finally:
        harness.hook = None
        for thread in restarted:
            thread.join()
        stack.up(("mlflow",))


def test_happy_path_rides_out_a_tracking_server_outage_with_one_version(
    fidelity: dict[str, Any], happy_run: WorkflowRun
) -> None:
    nodes = happy_run.nodes
    assert happy_run.phase == "Succeeded", {
        n: (v.phase, v.message, [a.stderr_tail[-800:] for a in v.attempts]) for n, v in nodes.items()
    }
    assert {name: node.phase for name, node in nodes.items()} == {
        "validate": "Succeeded",
        "materialize": "Succeeded",
        "drift": "Succeeded",  # no champion yet: train one
        "hold": "Skipped",  # its `when` (retrain == false) was false
        "train": "Succeeded",
        "evaluate": "Succeeded",
        "register": "Succeeded",
        "promote": "Succeeded",
        "notify": "Skipped",
    }
    register = nodes["register"]
    codes = [attempt.exit_code for attempt in register.attempts]
    assert codes[0] == 75 and codes[-1] == 0 and all(code == 75 for code in codes[:-1]), codes
    assert "failure: transient (exit 75" in register.attempts[0].stderr_tail
    assert all(len(node.attempts) == 1 for name, node in nodes.items() if name not in ("register", "notify", "hold"))
    assert nodes["drift"].parameters["retrain"] == "true"
    assert nodes["drift"].parameters["reason"].startswith("no champion yet")
    assert happy_run.exit_handler is not None and happy_run.exit_handler.phase == "Skipped"
    model = fidelity["cfg"].register_.model_name
    (version,) = versions(fidelity, model)
    assert version.source.startswith(f"s3://mlflow-artifacts/{TENANT}/"), version.source
    # the night read its own extract: the dated URI filled in the pods, recorded with the day
    tags = run_tags(fidelity, version.run_id)
    assert tags["mlops.lineage.data_source"] == f"s3://{fidelity['bucket']}/{fidelity['night']}", tags
    assert tags["mlops.lineage.logical_date"] == SCHEDULED[:10]


def test_happy_path_stored_exactly_the_declared_artifacts_under_the_keyformat(
    fidelity: dict[str, Any], happy_run: WorkflowRun
) -> None:
    """issue 28: the harness skipped a missing output artifact; now every step that ran stored
    exactly the artifacts its template declares, each where the repository's keyFormat says."""
    templates = {t["name"]: t for t in fidelity["harness"].template["spec"]["templates"]}
    ran = {name: node for name, node in happy_run.nodes.items() if node.phase == "Succeeded"}
    for name, node in ran.items():
        declared = {a["name"] for a in templates[node.template].get("outputs", {}).get("artifacts", [])}
        assert set(node.artifact_keys) == declared, name
    expected = {
        f"{TENANT}/{happy_run.name}/{node.pod}/{artifact}.tgz"
        for node in ran.values()
        for artifact in node.artifact_keys
    }
    assert {key for node in ran.values() for key in node.artifact_keys.values()} == expected
    admin = fidelity["stack"].s3_client()
    pages = admin.get_paginator("list_objects_v2").paginate(
        Bucket="pipeline-artifacts", Prefix=f"{TENANT}/{happy_run.name}/"
    )
    assert {item["Key"] for page in pages for item in page.get("Contents", [])} == expected


def test_happy_path_left_features_in_redis_the_model_in_s3_and_the_repository_under_the_serving_root(
    fidelity: dict[str, Any], happy_run: WorkflowRun, tmp_path: Path
) -> None:
    import hashlib

    cfg = fidelity["cfg"]
    stack: Stack = fidelity["stack"]
    admin = stack.s3_client()
    # the offline store: the validated data, keyed by project and by the digest of its bytes
    offline = admin.list_objects_v2(Bucket="feast-offline", Prefix=f"{TENANT}/{cfg.materialize.project}/")
    digest = hashlib.sha256((fidelity["data"] / "latest.parquet").read_bytes()).hexdigest()
    assert [item["Key"] for item in offline.get("Contents", [])] == [
        f"{TENANT}/{cfg.materialize.project}/sha256-{digest}/{cfg.materialize.project}_events.parquet"
    ]
    # the online store, read as the tenant's scoring service would, from a process with an empty MLOPS_HOME
    users = pd.read_parquet(fidelity["data"] / "latest.parquet")["user_id"].drop_duplicates().head(10).tolist()
    code = (
        "import json, sys; from components.steps.materialize import online_features;"
        "print(json.dumps(online_features(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))"
    )
    env = {**tenant_process_environment(stack, fidelity["tenant"], os.environ), "MLOPS_HOME": str(tmp_path / "empty")}
    read = subprocess.run(
        [sys.executable, "-c", code, cfg.materialize.project, cfg.materialize.feature_service,
         json.dumps([{"user_id": int(u)} for u in users])],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert read.returncode == 0, read.stderr[-2000:]
    features = json.loads(read.stdout.strip().splitlines()[-1])
    assert all(value is not None for value in features["txn_count_24h"])
    # the model's bytes in S3, the version's sha256
    (version,) = versions(fidelity, cfg.register_.model_name)
    source_key = version.source.removeprefix("s3://mlflow-artifacts/") + "/model.json"
    body = admin.get_object(Bucket="mlflow-artifacts", Key=source_key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == version.tags["artifact_sha256"]
    # the serving repository under the tenant's serving root
    served = admin.list_objects_v2(Bucket="models", Prefix=f"{TENANT}/{cfg.register_.model_name}/")
    keys = [item["Key"] for item in served.get("Contents", [])]
    assert any(key.endswith(f"/{cfg.register_.model_name}/config.pbtxt") for key in keys), keys
    assert all(node.pod.startswith(happy_run.name) for node in happy_run.nodes.values() if node.pod)


def test_the_gate_failing_runs_notify_and_registers_nothing(fidelity: dict[str, Any], happy_run: WorkflowRun) -> None:
    model = fidelity["cfg"].register_.model_name
    before = len(versions(fidelity, model))
    # the same night again (as a backfill of its date would), forced: the happy run claimed tonight's
    # retrain, so the drift step would hold otherwise
    again = {"gate-threshold": "0.999", "force-retrain": "true"}
    run = fidelity["harness"].run_scheduled(fidelity["cron"], SCHEDULED, again)
    phases = {name: node.phase for name, node in run.nodes.items()}
    assert phases["evaluate"] == "Succeeded" and run.nodes["evaluate"].parameters["passed"] == "false", run.nodes[
        "evaluate"
    ].message
    # the same date, data, commit and arguments: Argo's cache gives materialize's and train's outputs, no pod
    assert run.nodes["materialize"].memoized and run.nodes["train"].memoized
    assert not run.nodes["evaluate"].memoized  # its key holds the gate threshold
    assert phases["register"] == "Skipped"  # its when: the gate failed
    assert phases["promote"] == "Omitted"  # it depends on register.Succeeded
    assert phases["notify"] == "Succeeded" and run.phase == "Succeeded"
    assert len(versions(fidelity, model)) == before


def test_bad_data_stops_at_validate_with_exit_2_and_the_owner_is_told_which_step(fidelity: dict[str, Any]) -> None:
    """issue 28: {{workflow.failures}} was passed comma-joined, so notify's parsing of Argo's JSON
    never ran; now the exit handler gets Argo's JSON and its notice names the failed step."""
    frame = pd.read_parquet(fidelity["data"] / "latest.parquet")
    frame["is_fraud"] = frame["is_fraud"].astype(float)
    frame.loc[frame.index[:7], "is_fraud"] = None
    frame.to_parquet(fidelity["data"] / "bad.parquet", index=False)
    bad_key = fidelity["key"].replace("latest", "bad")
    fidelity["stack"].s3_client().upload_file(str(fidelity["data"] / "bad.parquet"), fidelity["bucket"], bad_key)
    run = fidelity["harness"].run({"raw-data": f"s3://{fidelity['bucket']}/{bad_key}"})
    validate = run.nodes["validate"]
    assert validate.phase == "Failed" and [a.exit_code for a in validate.attempts] == [2]
    assert validate.message == "retryStrategy.expression evaluated to false"
    assert "expect_column_values_to_not_be_null on column 'is_fraud'" in validate.attempts[0].stderr_tail
    assert all(run.nodes[name].phase == "Omitted" for name in ("materialize", "drift", "train", "evaluate"))
    assert run.phase == "Failed"
    handler = run.exit_handler
    assert handler is not None and handler.phase == "Succeeded", handler and handler.attempts[-1].stderr_tail
    notice = json.loads(_artifact_text(fidelity, handler.artifact_keys["notice"]))
    assert notice["status"] == "Failed" and notice["workflow"] == run.name
    failed = {(step["displayName"], step["templateName"], step["phase"]) for step in notice["failed_steps"]}
    assert ("validate", "validate", "Failed") in failed, notice["failed_steps"]
    # and it reached the tenant's Pushgateway, labelled with the step
    import requests

    pushed = requests.get(fidelity["configmap"]["MLOPS_PUSHGATEWAY_URL"] + "/metrics", timeout=10).text
    line = next(row for row in pushed.splitlines() if f'workflow="{run.name}"' in row and not row.startswith("#"))
    assert re.search(r'failed_steps="[^"]*\bvalidate\b', line), line


# --- the predictor pulls its model ------------------------------------------------------------------


STORAGE_INITIALIZER = REPO / ".venv-storage-initializer" / "bin" / "python"


def test_the_predictor_pulls_the_promoted_model_with_its_service_account_and_triton_scores_it(
    fidelity: dict[str, Any], happy_run: WorkflowRun, tmp_path: Path
) -> None:
    import numpy as np
    import tritonclient.http as triton_http
    import xgboost as xgb

    from components.steps.triton_repository import write_python_repository
    from devstack import process
    from devstack.triton import LocalTriton

    if not STORAGE_INITIALIZER.exists():
        pytest.fail("no storage initializer environment: run `make storage-initializer-env` (make test does)")
    cfg = fidelity["cfg"]
    stack: Stack = fidelity["stack"]
    service = yaml.safe_load(_artifact_text(fidelity, happy_run.nodes["promote"].artifact_keys["inference_service"]))
    predictor = service["spec"]["predictor"]
    # the tenant's puller objects as rendered, with the loopback S3 the ConfigMap's rewrite names
    settings = cluster_settings(TENANT).model_copy(update={"s3_endpoint": fidelity["configmap"]["AWS_ENDPOINT_URL"]})
    account = next(o for o in model_puller(TENANT, settings) if o["kind"] == "ServiceAccount")
    assert predictor["serviceAccountName"] == account["metadata"]["name"]
    (secret_name,) = [entry["name"] for entry in account["secrets"]]
    secret = next(o for o in model_puller(TENANT, settings) if o["metadata"]["name"] == secret_name)
    keys = {"AWS_ACCESS_KEY_ID": stack.puller_access_key, "AWS_SECRET_ACCESS_KEY": stack.puller_secret_key}
    puller = stack.s3_client(stack.puller_access_key, stack.puller_secret_key)
    with pytest.raises(Exception, match=r"AccessDenied|403"):  # read-only: the puller cannot write
        puller.put_object(Bucket="models", Key=f"{TENANT}/forged/config.pbtxt", Body=b"x")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **storage_initializer_environment(secret, keys)}
    storage_uri = predictor["model"]["storageUri"]
    download = subprocess.run(
        [str(STORAGE_INITIALIZER), "-c",
         "import sys; from kserve_storage import Storage; print(Storage.download(sys.argv[1], sys.argv[2]))",
         storage_uri, str(tmp_path / "mnt-models")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert download.returncode == 0, download.stderr[-3000:]
    model = cfg.register_.model_name
    downloaded = tmp_path / "mnt-models" / model
    assert (downloaded / "config.pbtxt").is_file()
    model_file = next(p for p in (downloaded / "1").iterdir() if p.is_file())
    (version,) = versions(fidelity, model)
    import hashlib

    assert hashlib.sha256(model_file.read_bytes()).hexdigest() == version.tags["artifact_sha256"]

    # The local Triton (python backend, standing in for FIL here) serves exactly those bytes.
    registration = json.loads(_artifact_text(fidelity, happy_run.nodes["register"].artifact_keys["registration"]))
    repository = tmp_path / "repository"
    write_python_repository(repository, model, 1, registration["model_format"], model_file.read_bytes(),
                            registration["features"], objective=registration["objective"])  # fmt: skip
    base = process.free_port_base(3)
    server = LocalTriton(root=tmp_path / "triton", repository=repository, http_port=base, grpc_port=base + 1,
                         metrics_port=base + 2, model_name=model)  # fmt: skip
    server.start()
    try:
        frame = pd.read_parquet(fidelity["data"] / "latest.parquet")
        row = frame[registration["features"]].astype("float32").to_numpy()[:1]
        client = triton_http.InferenceServerClient(server.http_url)
        tensors = tensor_contract(registration["model_format"], regression=registration["objective"] == "regression")
        tensor = triton_http.InferInput(tensors.input, list(row.shape), "FP32")
        tensor.set_data_from_numpy(row)
        scored = tensors.scores(client.infer(model, [tensor]).as_numpy(tensors.output))
        booster = xgb.Booster()
        booster.load_model(bytearray(model_file.read_bytes()))
        expected = booster.inplace_predict(row)
        assert np.allclose(np.ravel(scored), np.ravel(expected), atol=1e-6)
    finally:
        server.stop()


def _artifact_text(fidelity: dict[str, Any], key: str) -> str:
    import io
    import tarfile

    body = fidelity["harness"].s3_client.get_object(Bucket="pipeline-artifacts", Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        member = next(m for m in archive.getmembers() if m.isfile())
        extracted = archive.extractfile(member)
        assert extracted is not None
        return extracted.read().decode()


# --- the same steps from the KFP IR --------------------------------------------------------------


@pytest.fixture(scope="module")
def podman_docker_api(fidelity: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """podman's Docker-compatible API for kfp.local's DockerRunner. kfp.local ignores the IR's
    Kubernetes platform spec (configMapAsEnv, secretAsEnv), which a kubelet would apply; here the
    engine applies it instead: the service's containers.conf gives every container the ConfigMap's
    and the Secrets' variables, and the task's own env (MLOPS_STEP_RETRY) comes on top."""
    variables = {**fidelity["harness"].configmaps["mlops-platform"]}
    for ref in secret_environment(fidelity["cfg"]):
        variables[ref.env] = fidelity["harness"].secrets[ref.secret][ref.key]
    with podman_docker_service(tmp_path_factory.mktemp("podman-api"), variables) as docker_host:
        yield docker_host


def test_the_kfp_ir_runs_through_kfp_locals_docker_runner_on_podman(
    fidelity: dict[str, Any],
    happy_run: WorkflowRun,
    podman_docker_api: str,
    component_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kfp import components, local

    from pipelines.fraud import pipeline as fraud
    from pipelines.kfp import compile_ir

    cfg = fidelity["cfg"]
    ir = tmp_path / "fraud-ir.yaml"
    compile_ir(fraud.DECLARATION, cfg, str(ir), cluster=True)
    subprocess.run(["podman", "tag", component_image, fraud.DECLARATION.spec.image], check=True)  # the registry mirror
    monkeypatch.setenv("DOCKER_HOST", podman_docker_api)
    removed_container_is_not_found(monkeypatch)  # podman's 500 "no such container" read as Docker's 404
    root = tmp_path / "pipeline-root"
    root.mkdir()
    root.chmod(0o777)  # DockerRunner mounts it into the containers, which run as 65532
    local.init(runner=local.DockerRunner(network_mode="host"), pipeline_root=str(root), raise_on_error=True)
    pipeline = components.load_component_from_file(str(ir))
    started = time.monotonic()
    # the tenant's copy of the night's data; forced, as the happy run claimed tonight's retrain
    pipeline(gate_threshold=float(GATE), force_retrain=True, raw_data=RAW)
    print(f"\nKFP IR through DockerRunner on podman: {time.monotonic() - started:.1f} s")
    (run_dir,) = [p for p in root.iterdir() if p.is_dir()]
    registration = json.loads((run_dir / "register" / "registration").read_text())
    (version,) = versions(fidelity, cfg.register_.model_name)
    assert registration["version"] == int(version.version) and registration["reused"] is True, (
        "the same data and seed give the same artifact: the KFP run reuses the Argo run's version"
    )
    assert not (run_dir / "notify").exists()
