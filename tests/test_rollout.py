"""`mlops promote` / `mlops history`: the canary lifecycle against a real MLflow registry (embedded
store), the platform's Gatekeeper policies on the real OPA engine, and the KServe CRD schema.
The only stand-in is the Kubernetes API (no cluster here): tests/kubernetes_api_stand_in.py, an
HTTP server that speaks the calls promote makes and admits each body as the real server does
(mlops lint's strict checker), reached through the real kubernetes client; tests using it say so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.errors import ComponentError
from components.platform import model_registry
from mlops import lint
from mlops.cli import main
from tests.conftest import train_evaluate_register, write_kubeconfig
from tests.kubernetes_api_stand_in import InferenceServiceApi
from tests.loopback_http import serving

MODEL = "fraud-detector"


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory: pytest.TempPathFactory, materialized: dict[str, Any]) -> dict[str, Any]:
    """Three registered versions of one model (different boosting rounds, so different bytes)."""
    home = tmp_path_factory.mktemp("rollout")
    for rounds in (20, 30, 40):
        train_evaluate_register(
            materialized, home / f"r{rounds}", home, model_name=MODEL, params={"num_boost_round": rounds}
        )
    uri = f"sqlite:///{home}/mlflow.db"
    return {"home": home, "uri": uri}


@pytest.fixture()
def lifecycle(three_versions: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh history for each test: the registry is shared, the history tags are cleared."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", three_versions["uri"])
    monkeypatch.setenv("MLOPS_SERVING_ROOT", (tmp_path / "serving").as_uri())
    monkeypatch.setenv("MLOPS_USER", "alice@bank.internal")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    mlflow = model_registry.client()
    _forget(mlflow)
    return {"mlflow": mlflow, "gitops": tmp_path / "gitops", "tmp": tmp_path}


def _forget(mlflow: Any) -> None:
    """No history and no serving aliases: the model as registered, before any promotion."""
    for key in list(mlflow.get_registered_model(MODEL).tags):
        if key.startswith(model_registry.HISTORY_PREFIX):
            mlflow.delete_registered_model_tag(MODEL, key)
    for alias in (model_registry.CHAMPION, model_registry.CANARY):
        if alias in model_registry.aliases(mlflow, MODEL):
            mlflow.delete_registered_model_alias(MODEL, alias)


def _promote(lifecycle: dict[str, Any], *flags: str, capsys: pytest.CaptureFixture[str] | None = None) -> int:
    return main(["promote", MODEL, "--out", str(lifecycle["gitops"]), *flags])


def _manifest(lifecycle: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (lifecycle["gitops"] / "fraud" / f"{MODEL}.inferenceservice.yaml").read_text()
    )
    return loaded


def _served(manifest: dict[str, Any]) -> tuple[int, int]:
    """(version, share) of a Serverless service: the rendered version's canaryTrafficPercent."""
    return int(manifest["metadata"]["labels"]["mlops.private-platform.io/model-version"]), int(
        manifest["spec"]["predictor"]["canaryTrafficPercent"]
    )


def _standard(manifest: dict[str, Any]) -> tuple[int, list[tuple[int, int]]]:
    """(stable version, [(canary version, trafficPercent)]) of a Standard-mode service, each version
    read from its predictor's storageUri (v<version>-<sha12>) and checked against its name."""
    from components.steps.promote_canary import canary_entries

    def version_of(predictor: dict[str, Any]) -> int:
        number = int(predictor["model"]["storageUri"].split("/")[-1].split("-")[0].removeprefix("v"))
        assert predictor["name"] == f"v{number}" and "canaryTrafficPercent" not in predictor
        return number

    entries = [version_of(e["predictor"]) for e in manifest["spec"].get("canary", [])]
    shares = [share for _, share in canary_entries(manifest)]
    return version_of(manifest["spec"]["predictor"]), list(zip(entries, shares, strict=True))


MODES = ("Serverless", "RawDeployment")


@pytest.mark.parametrize("mode", MODES)
def test_full_lifecycle_manifests_aliases_and_history(
    lifecycle: dict[str, Any], schemas_dir: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    """The lifecycle in both KServe modes: Serverless splits with canaryTrafficPercent (a rollback keeps
    the canary's revision at 0%); Standard (RawDeployment) with a spec.canary entry beside the champion's
    predictor (kserve PR #5672): promotion retargets spec.predictor to the canary's, rollback removes it.
    Every manifest is held to the KServe CRD strictly (mlops lint); aliases and history are the same."""
    mlflow = lifecycle["mlflow"]
    serverless = mode == "Serverless"
    config = ("--config", str(_config(lifecycle["tmp"], deployment_mode=mode)))

    def step(*flags: str) -> int:
        return _promote(lifecycle, *flags, *config)

    assert step("--canary", "10", "--version", "2") == 2  # nothing serves yet
    assert "needs a previous revision" in capsys.readouterr().err

    assert step("--promote", "--version", "1", "--reason", "first rollout") == 0
    first = _manifest(lifecycle)
    assert lint.check(first) is None  # mlops lint's strict checker: the KServe CRD, unknown fields too
    for kind in ("authorizationpolicy", "networkpolicy"):  # issue 29: who may call it, beside it for Argo CD
        beside = yaml.safe_load((lifecycle["gitops"] / "fraud" / f"{MODEL}-callers.{kind}.yaml").read_text())
        assert beside["kind"].lower() == kind and lint.check(beside) is None
    assert (_served(first) == (1, 100)) if serverless else (_standard(first) == (1, []))
    assert model_registry.aliases(mlflow, MODEL)[model_registry.CHAMPION] == 1

    assert step("--canary", "10", "--version", "2") == 0
    canary = _manifest(lifecycle)
    assert lint.check(canary) is None  # mlops lint's strict checker: the KServe CRD, unknown fields too
    annotations = canary["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == mode
    assert canary["metadata"]["labels"]["mlops.private-platform.io/model-version"] == "2"  # what admission judged
    if serverless:
        assert _served(canary) == (2, 10) and annotations["serving.knative.dev/minScale"] == "1"
        assert canary["spec"]["predictor"]["model"]["storageUri"].split("/")[-1].startswith("v2-")
        new = canary["spec"]["predictor"]
    else:
        assert _standard(canary) == (1, [(2, 10)]) and "serving.knative.dev/minScale" not in annotations
        assert canary["spec"]["predictor"] == _manifest_predictor(first), "the champion's predictor is unchanged"
        new = canary["spec"]["canary"][0]["predictor"]
    assert new["containerConcurrency"] == 8
    # The scoring transformer fronts the predictor and reaches it over gRPC (h2c), where it is probed too.
    assert new["model"]["readinessProbe"]["grpc"] == {"port": 9000}
    assert new["model"]["ports"] == [{"name": "h2c", "containerPort": 9000, "protocol": "TCP"}]
    assert "--feature-service=fraud_model_v1" in canary["spec"]["transformer"]["containers"][0]["args"]
    assert model_registry.aliases(mlflow, MODEL) == {
        model_registry.CANARY: 2,
        model_registry.CHAMPION: 1,
        model_registry.CHALLENGER: 3,
    }
    assert "v1 serves 90%, canary v2 10%" in capsys.readouterr().out

    assert step("--canary", "10", "--version", "3") == 2
    assert "v2 is already in canary at 10%" in capsys.readouterr().err
    assert step("--canary", "50", "--version", "2") == 0  # ramp the same canary
    ramped = _manifest(lifecycle)
    assert (_served(ramped) == (2, 50)) if serverless else (_standard(ramped) == (1, [(2, 50)]))

    assert step("--rollback", "--reason", "p99 up 40%") == 0
    rolled = _manifest(lifecycle)
    assert lint.check(rolled) is None  # mlops lint's strict checker: the KServe CRD, unknown fields too
    if serverless:  # the canary's revision keeps 0%: all traffic on v1's, which never stopped
        assert _served(rolled) == (2, 0)
    else:  # the entry is removed; v1's predictor never stopped
        assert _standard(rolled) == (1, []) and rolled["spec"]["predictor"] == _manifest_predictor(first)
    assert model_registry.CANARY not in model_registry.aliases(mlflow, MODEL)
    assert model_registry.aliases(mlflow, MODEL)[model_registry.CHAMPION] == 1

    assert step("--canary", "10", "--version", "2") == 0
    entry = _manifest(lifecycle)["spec"].get("canary", [{}])[0].get("predictor")
    assert step("--promote") == 0  # promotes the canary
    promoted = _manifest(lifecycle)
    if serverless:
        assert _served(promoted) == (2, 100)
    else:  # retargeted: the canary's own predictor (same name, same spec: KServe keeps its pods)
        assert _standard(promoted) == (2, []) and promoted["spec"]["predictor"] == entry
    assert lint.check(promoted) is None
    assert model_registry.aliases(mlflow, MODEL)[
        model_registry.CHAMPION
    ] == 2 and model_registry.CANARY not in model_registry.aliases(mlflow, MODEL)

    assert step("--rollback", "--reason", "complaints") == 0  # after a promotion
    back = _manifest(lifecycle)
    assert (_served(back) == (1, 100)) if serverless else (_standard(back) == (1, []))
    assert model_registry.aliases(mlflow, MODEL)[model_registry.CHAMPION] == 1

    assert step("--rollback") == 2
    assert "nothing to roll back to" in capsys.readouterr().err

    entries = model_registry.history(mlflow, MODEL)
    assert [(e.action, e.from_version, e.to_version, e.traffic_percent) for e in entries] == [
        ("promote", None, 1, 100),
        ("canary", 1, 2, 10),
        ("canary", 1, 2, 50),
        ("rollback", 2, 1, 100),
        ("canary", 1, 2, 10),
        ("promote", 1, 2, 100),
        ("rollback", 2, 1, 100),
    ]
    assert {e.who for e in entries} == {"alice@bank.internal"}
    assert entries[3].reason == "p99 up 40%" and entries[0].applied.startswith("gitops:")
    capsys.readouterr()
    assert main(["history", MODEL]) == 0
    shown = capsys.readouterr().out
    assert shown.count("\n") == len(entries) + 2 and "p99 up 40%" in shown and shown.strip().endswith("now: v1 serves")


def _manifest_predictor(manifest: dict[str, Any]) -> dict[str, Any]:
    predictor: dict[str, Any] = manifest["spec"]["predictor"]
    return predictor


def test_standard_mode_canary_entries_are_checked_by_the_crd_negative_control(lifecycle: dict[str, Any]) -> None:
    """The CRD check the lifecycle relies on sees a broken spec.canary: an entry without its required
    trafficPercent, a share over 100, a field the CRD does not declare (control: the rendered one passes)."""
    from components.steps.promote_canary import with_canary

    base = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": MODEL, "namespace": "fraud"}}  # fmt: skip
    predictor = {"model": {"modelFormat": {"name": "triton"}, "storageUri": "s3://models/fraud/v1-abc"}}
    champion = {**base, "spec": {"predictor": predictor}}
    canary = {**base, "spec": {"predictor": {**predictor, "canaryTrafficPercent": 10}}}
    good = with_canary(champion, canary, champion_version=1, canary_version=2, percent=10)
    assert lint.check(good) is None and "canaryTrafficPercent" not in json.dumps(good)
    for broken, said in (
        ({"predictor": good["spec"]["canary"][0]["predictor"]}, "trafficPercent"),
        ({**good["spec"]["canary"][0], "trafficPercent": 101}, "101"),
        ({**good["spec"]["canary"][0], "weight": 5}, "weight"),
    ):
        problem = lint.check({**good, "spec": {**good["spec"], "canary": [broken]}})
        assert problem is not None and said in problem, problem
    with pytest.raises(ComponentError, match=r"canary percent must be 1\.\.99"):
        with_canary(champion, canary, champion_version=1, canary_version=2, percent=100)


def test_a_runtime_without_the_models_backend_is_refused_before_anything_is_published(
    lifecycle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 31: `mlops promote` published the Triton repository without checking promote.runtime
    against the config's backend (only the pipeline step did), so a runtime that cannot load the
    model was found only when the predictor failed to start."""
    config = _config(tmp_path, runtime="kserve-sklearnserver")
    assert _promote(lifecycle, "--promote", "--version", "1", "--config", str(config)) == 2
    error = capsys.readouterr().err
    assert "promote.runtime 'kserve-sklearnserver' cannot serve this xgboost_json model" in error
    assert "set promote.runtime: triton-fil" in error
    assert not (tmp_path / "serving").exists() and not lifecycle["gitops"].exists()
    assert model_registry.history(lifecycle["mlflow"], MODEL) == []
    # the control: the shipped runtime publishes
    assert _promote(lifecycle, "--promote", "--version", "1", "--config", str(_config(tmp_path))) == 0
    assert (tmp_path / "serving").exists()


def _config(tmp_path: Path, **promote: Any) -> Path:
    from pipelines.fraud.pipeline import DECLARATION

    document = yaml.safe_load((DECLARATION.folder / "config.yaml").read_text())
    document["promote"].update(promote)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_promote_takes_the_canary_share_from_the_pipeline_config_unless_a_flag_overrides_it(
    lifecycle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 28: promote.canary_percent was never read by mlops promote, which required --canary N, so
    the ModelDriftDetected runbook's `mlops promote <model> --version N` failed."""
    from pipelines.fraud.pipeline import DECLARATION

    share = DECLARATION.config().promote.canary_percent
    assert _promote(lifecycle, "--promote", "--version", "1") == 0
    assert _promote(lifecycle, "--version", "2") == 0  # the runbook's line
    assert _served(_manifest(lifecycle)) == (2, share)
    assert f"canary share {share}%: promote.canary_percent of pipeline fraud" in capsys.readouterr().err
    ramped = _config(tmp_path, canary_percent=share + 15)
    assert _promote(lifecycle, "--version", "2", "--config", str(ramped)) == 0  # another config's share
    assert _served(_manifest(lifecycle)) == (2, share + 15)
    assert _promote(lifecycle, "--canary", "40") == 0  # the flag overrides; no --version ramps the live canary
    assert _served(_manifest(lifecycle)) == (2, 40)
    entries = model_registry.history(lifecycle["mlflow"], MODEL)
    assert [(e.action, e.to_version, e.traffic_percent) for e in entries] == [
        ("promote", 1, 100), ("canary", 2, share), ("canary", 2, share + 15), ("canary", 2, 40)
    ]  # fmt: skip
    capsys.readouterr()
    assert _promote(lifecycle, "--version", "2", "--config", str(_config(tmp_path, canary_percent=100))) == 2
    assert "canary percent must be 1..99, got 100" in capsys.readouterr().err
    assert _promote(lifecycle, "--canary", "10", "--promote") == 2
    assert "choose at most one of --canary N, --promote, --rollback" in capsys.readouterr().err


def test_admission_stops_bad_production_promotions_before_anything_changes(
    lifecycle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops.admission import POLICY_DIR

    # The small test set's models score AUC ~0.8; a copy of the policies with a lower bar lets the
    # other rules be seen one at a time. The shipped bar (0.85) is exercised last.
    lenient = tmp_path / "policies"
    lenient.mkdir()
    for file in POLICY_DIR.glob("*.yaml"):
        (lenient / file.name).write_text(file.read_text().replace("minHoldoutAuc: 0.85", "minHoldoutAuc: 0.5"))
    production = ("--stage", "production", "--policies", str(lenient))
    assert _promote(lifecycle, "--promote", "--version", "1", *production, "--signed-off-by", "bob") == 0
    state = (
        model_registry.history(lifecycle["mlflow"], MODEL),
        model_registry.aliases(lifecycle["mlflow"], MODEL),
        _manifest(lifecycle),
    )
    capsys.readouterr()

    assert _promote(lifecycle, "--canary", "10", "--version", "2", *production, "--signed-off-by", "") == 2
    error = capsys.readouterr().err
    assert "admission would deny InferenceService fraud/fraud-detector (v2)" in error
    assert (
        "[production-promotion-evidence] promotion blocked: missing annotation mlops.private-platform.io/signed-off-by"
    ) in error

    no_memory = _config(tmp_path, memory_limit="")
    assert (
        _promote(
            lifecycle,
            "--canary",
            "10",
            "--version",
            "2",
            *production,
            "--signed-off-by",
            "bob",
            "--config",
            str(no_memory),
        )
        == 2
    )
    assert (
        "[gpu-workloads-set-memory-limits] predictor.model requests nvidia.com/gpu but sets no memory"
        in capsys.readouterr().err
    )

    assert (
        _promote(lifecycle, "--canary", "10", "--version", "2", "--stage", "production", "--signed-off-by", "bob") == 2
    )
    error = capsys.readouterr().err
    assert "promotion blocked: holdout AUC 0." in error and "is below the required 0.85" in error

    assert (
        model_registry.history(lifecycle["mlflow"], MODEL),
        model_registry.aliases(lifecycle["mlflow"], MODEL),
        _manifest(lifecycle),
    ) == state
    assert _promote(lifecycle, "--canary", "10", "--version", "2", *production, "--signed-off-by", "bob") == 0
    assert _served(_manifest(lifecycle)) == (2, 10)


def test_dry_run_renders_and_admits_but_changes_nothing(
    lifecycle: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 29: promote rendered and applied the InferenceService alone, never who may call it; the
    dry run prints the three documents promote applies, the service first."""
    from components.steps.serving_authorization import ISVC_LABEL

    assert main(["promote", MODEL, "--promote", "--version", "1", "--dry-run"]) == 0
    captured = capsys.readouterr()
    documents = list(yaml.safe_load_all(captured.out))
    assert [d["kind"] for d in documents] == ["InferenceService", "AuthorizationPolicy", "NetworkPolicy"]
    for document in documents[1:]:
        assert document["metadata"]["namespace"] == "fraud"
        assert lint.check(document) is None, document["kind"]  # the Istio CRD / Kubernetes' schema, strictly
    assert documents[1]["spec"]["selector"]["matchLabels"] == {ISVC_LABEL: MODEL}
    assert documents[2]["spec"]["podSelector"]["matchLabels"] == {ISVC_LABEL: MODEL}
    assert "nothing applied, recorded or moved" in captured.err
    assert model_registry.history(lifecycle["mlflow"], MODEL) == []
    assert model_registry.CHAMPION not in model_registry.aliases(lifecycle["mlflow"], MODEL)


def test_without_a_cluster_or_out_folder_promote_says_what_to_do(
    lifecycle: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["promote", MODEL, "--promote", "--version", "1"]) == 2
    assert "no kubeconfig" in capsys.readouterr().err
    assert main(["promote", "no-such-model", "--promote", "--out", str(lifecycle["gitops"])]) == 2
    assert "no registered model 'no-such-model'" in capsys.readouterr().err


@pytest.fixture()
def cluster_stand_in(tmp_path: Path, schemas_dir: Path) -> Iterator[tuple[Path, type[InferenceServiceApi]]]:
    """The API server stand-in (tests/kubernetes_api_stand_in.py) behind a kubeconfig."""
    InferenceServiceApi.reset()
    with serving(InferenceServiceApi) as server:
        yield write_kubeconfig(tmp_path / "kubeconfig", server.server_port), InferenceServiceApi


PATH = "/apis/serving.kserve.io/v1beta1/namespaces/fraud/inferenceservices"
AUTHORIZATION = "/apis/security.istio.io/v1/namespaces/fraud/authorizationpolicies"
NETWORK = "/apis/networking.k8s.io/v1/namespaces/fraud/networkpolicies"


def test_applies_through_the_kubernetes_client_against_a_api_server_stand_in(
    lifecycle: dict[str, Any],
    cluster_stand_in: tuple[Path, type[InferenceServiceApi]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """issue 29: promote applied the InferenceService alone; now its AuthorizationPolicy and
    NetworkPolicy go first (a new service never runs without them), created, then replaced."""
    kubeconfig, api = cluster_stand_in
    assert main(["promote", MODEL, "--promote", "--version", "1", "--kubeconfig", str(kubeconfig)]) == 0
    assert f"POST {PATH}" in api.calls and api.objects[f"{PATH}/{MODEL}"]["metadata"]["resourceVersion"] == "1"
    writes = [c for c in api.calls if c.startswith(("POST", "PUT"))]
    assert writes == [f"POST {AUTHORIZATION}", f"POST {NETWORK}", f"POST {PATH}"]
    policy = api.objects[f"{AUTHORIZATION}/{MODEL}-callers"]
    assert policy["spec"]["action"] == "ALLOW" and policy["spec"]["rules"][0]["from"][0]["source"]["namespaces"][0] == (
        "fraud"
    )
    assert api.objects[f"{NETWORK}/{MODEL}-callers"]["spec"]["policyTypes"] == ["Ingress"]
    assert main(["promote", MODEL, "--canary", "25", "--version", "2", "--kubeconfig", str(kubeconfig)]) == 0
    assert f"PUT {PATH}/{MODEL}" in api.calls
    assert f"PUT {AUTHORIZATION}/{MODEL}-callers" in api.calls and f"PUT {NETWORK}/{MODEL}-callers" in api.calls
    assert api.objects[f"{NETWORK}/{MODEL}-callers"]["metadata"]["resourceVersion"] == "2"
    live = api.objects[f"{PATH}/{MODEL}"]
    assert _served(live) == (2, 25) and live["metadata"]["resourceVersion"] == "2"
    entries = model_registry.history(lifecycle["mlflow"], MODEL)
    assert [e.applied for e in entries] == ["kubernetes:onprem:created", "kubernetes:onprem:replaced"]


def test_cluster_in_raw_deployment_mode_gets_a_spec_canary_api_server_stand_in(
    lifecycle: dict[str, Any],
    cluster_stand_in: tuple[Path, type[InferenceServiceApi]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The mode is the cluster's (inferenceservice-config): in RawDeployment the canary goes in as a
    spec.canary entry the stand-in admits against the CRD strictly; a mode promote does not know is
    refused with nothing applied or recorded (the negative case)."""
    kubeconfig, api = cluster_stand_in
    api.deploy_config = {"defaultDeploymentMode": "RawDeployment"}
    assert main(["promote", MODEL, "--promote", "--version", "1", "--kubeconfig", str(kubeconfig)]) == 0
    live = api.objects[f"{PATH}/{MODEL}"]
    assert live["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert main(["promote", MODEL, "--canary", "10", "--version", "2", "--kubeconfig", str(kubeconfig)]) == 0
    live = api.objects[f"{PATH}/{MODEL}"]
    assert _standard(live) == (1, [(2, 10)]) and live["metadata"]["resourceVersion"] == "2"
    api.reset()
    api.deploy_config = {"defaultDeploymentMode": "ModelMesh"}
    assert main(["promote", MODEL, "--rollback", "--kubeconfig", str(kubeconfig)]) == 2
    assert "unknown deployment mode 'ModelMesh'" in capsys.readouterr().err
    assert not [c for c in api.calls if c.startswith(("POST", "PUT"))]
    assert len(model_registry.history(lifecycle["mlflow"], MODEL)) == 2


def test_drift_between_cluster_and_history_is_refused_api_server_stand_in(
    lifecycle: dict[str, Any],
    cluster_stand_in: tuple[Path, type[InferenceServiceApi]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    kubeconfig, api = cluster_stand_in
    assert main(["promote", MODEL, "--promote", "--version", "1", "--kubeconfig", str(kubeconfig)]) == 0
    api.objects[f"{PATH}/{MODEL}"]["metadata"]["labels"]["mlops.private-platform.io/model-version"] = (
        "3"  # kubectl edit
    )
    assert main(["promote", MODEL, "--canary", "10", "--version", "2", "--kubeconfig", str(kubeconfig)]) == 2
    assert "the cluster serves fraud-detector v3, but the registry history says v1" in capsys.readouterr().err


def test_history_of_an_unknown_model_is_a_clear_error(
    lifecycle: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ComponentError, match="no registered model"):
        model_registry.history(lifecycle["mlflow"], "nope")
    assert main(["history", "nope"]) == 2


def test_a_promotion_that_lands_between_the_check_and_the_apply_is_refused_not_overwritten_api_server_stand_in(
    lifecycle: dict[str, Any],
    cluster_stand_in: tuple[Path, type[InferenceServiceApi]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Also: the authorization objects promote applies before the service are put back as they were,
    so the old service keeps the callers it had (here an extra caller the live policy admitted, which
    the new rendering drops: without the put-back, the refused promotion had changed who may call)."""
    kubeconfig, api = cluster_stand_in
    assert main(["promote", MODEL, "--promote", "--version", "1", "--kubeconfig", str(kubeconfig)]) == 0
    history = len(model_registry.history(lifecycle["mlflow"], MODEL))
    callers, network = api.objects[f"{AUTHORIZATION}/{MODEL}-callers"], api.objects[f"{NETWORK}/{MODEL}-callers"]
    callers["spec"]["rules"].append({"from": [{"source": {"principals": ["cluster.local/ns/fraud/sa/old-caller"]}}]})
    before = {"callers": json.dumps(callers["spec"]), "network": json.dumps(network["spec"])}
    api.edits_after_read = 1  # a concurrent edit right after promote reads the live service
    assert main(["promote", MODEL, "--canary", "10", "--version", "2", "--kubeconfig", str(kubeconfig)]) == 2
    error = capsys.readouterr().err
    assert "changed after it was checked" in error
    assert f"AuthorizationPolicy fraud/{MODEL}-callers was put back as it was" in error, error
    live = api.objects[f"{PATH}/{MODEL}"]
    assert live["metadata"]["labels"]["mlops.private-platform.io/model-version"] == "1"
    assert live["metadata"]["resourceVersion"] == "2", "the concurrent write survives; ours was refused"
    assert len(model_registry.history(lifecycle["mlflow"], MODEL)) == history, "nothing recorded"
    after = api.objects[f"{AUTHORIZATION}/{MODEL}-callers"], api.objects[f"{NETWORK}/{MODEL}-callers"]
    assert {"callers": json.dumps(after[0]["spec"]), "network": json.dumps(after[1]["spec"])} == before
    assert int(after[0]["metadata"]["resourceVersion"]) > int(callers["metadata"]["resourceVersion"])  # it was written


def test_the_stand_in_validates_what_it_is_sent_against_the_crd_api_server_stand_in(
    cluster_stand_in: tuple[Path, type[InferenceServiceApi]],
) -> None:
    """Positive control above (every rendered service is accepted); here a body the CRD refuses."""
    from mlops.kube import Cluster

    kubeconfig, api = cluster_stand_in
    broken = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": MODEL, "namespace": "fraud"},
        "spec": {"predictor": {"minReplicas": "one", "model": {"modelFormat": {"name": "triton"}}}},
    }
    with pytest.raises(ComponentError, match=r"422 Unprocessable Entity: .*spec\.predictor\.minReplicas"):
        Cluster.from_kubeconfig(kubeconfig).apply(broken, None)
    assert f"{PATH}/{MODEL}" not in api.objects


def test_a_field_the_crd_does_not_declare_is_refused_not_stored_api_server_stand_in(
    lifecycle: dict[str, Any], cluster_stand_in: tuple[Path, type[InferenceServiceApi]]
) -> None:
    """issue 28: the stand-in validated with plain jsonschema, so an unknown field passed and was
    stored. A real API server prunes it (the default, fieldValidation=Warn) or, as mlops promote now
    asks, refuses it (Strict). Control: the same service without the field is created."""
    from mlops.kube import Cluster

    kubeconfig, api = cluster_stand_in
    assert main(["promote", MODEL, "--promote", "--version", "1", "--dry-run", "--out", str(lifecycle["tmp"])]) == 0
    service = yaml.safe_load((lifecycle["tmp"] / f"{MODEL}.inferenceservice.yaml").read_text())
    misspelt = json.loads(json.dumps(service))
    misspelt["spec"]["predictor"]["model"]["storageUrl"] = "s3://elsewhere/model"
    refusal = r'strict decoding error: unknown field "spec\.predictor\.model\.storageUrl"'
    with pytest.raises(ComponentError, match=refusal):
        Cluster.from_kubeconfig(kubeconfig).apply(misspelt, None)
    assert f"{PATH}/{MODEL}" not in api.objects and api.calls == [f"POST {PATH}"]
    assert Cluster.from_kubeconfig(kubeconfig).apply(service, None) == "created"
    assert api.objects[f"{PATH}/{MODEL}"]["spec"] == service["spec"]


def test_a_refused_authorization_leaves_the_service_unapplied_and_nothing_recorded_api_server_stand_in(
    lifecycle: dict[str, Any],
    cluster_stand_in: tuple[Path, type[InferenceServiceApi]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """issue 29: the model must never serve without who may call it. Where the caller's RBAC does not
    cover AuthorizationPolicies, promote stops before the InferenceService, exit 2 naming the Role;
    the control: the same promotion with the rights goes through."""
    kubeconfig, api = cluster_stand_in
    api.forbidden = {"AuthorizationPolicy"}
    assert main(["promote", MODEL, "--promote", "--version", "1", "--kubeconfig", str(kubeconfig)]) == 2
    error = capsys.readouterr().err
    assert f"refused to read AuthorizationPolicy fraud/{MODEL}-callers: 403" in error
    assert "may get/create/update authorizationpolicies there (the tenant's pipeline-submitter Role" in error
    assert not [c for c in api.calls if c.startswith(("POST", "PUT"))] and api.objects == {}
    assert model_registry.history(lifecycle["mlflow"], MODEL) == []
    api.forbidden = set()
    assert main(["promote", MODEL, "--promote", "--version", "1", "--kubeconfig", str(kubeconfig)]) == 0
    assert f"{PATH}/{MODEL}" in api.objects and len(model_registry.history(lifecycle["mlflow"], MODEL)) == 1


@pytest.mark.parametrize(
    ("path", "kind", "said"),
    [
        (f"{PATH}/{MODEL}", "InferenceService", f"InferenceService fraud/{MODEL} changed after it was checked"),
        (f"{AUTHORIZATION}/{MODEL}-callers", "AuthorizationPolicy", f"AuthorizationPolicy fraud/{MODEL}-callers "
         "changed while promote applied it"),
        (f"{NETWORK}/{MODEL}-callers", "NetworkPolicy", f"NetworkPolicy fraud/{MODEL}-callers changed while "
         "promote applied it"),
    ],
)  # fmt: skip
def test_an_object_created_between_the_read_and_the_create_is_refused_not_overwritten_api_server_stand_in(
    lifecycle: dict[str, Any],
    cluster_stand_in: tuple[Path, type[InferenceServiceApi]],
    capsys: pytest.CaptureFixture[str],
    path: str,
    kind: str,
    said: str,
) -> None:
    """promote reads each object, finds none and creates it; another writer's create in between makes
    the real API server answer 409 AlreadyExists (the stand-in overwrote it). mlops/kube.py's 409
    branch then stops the promotion, a permanent failure (exit 2, no retry), and the other writer's
    object stays as it was; nothing is recorded. Control: the same promotion, no one in between."""
    kubeconfig, api = cluster_stand_in
    theirs = {"apiVersion": "x/v1", "kind": kind, "metadata": {"name": path.rpartition("/")[2], "namespace": "fraud",
              "labels": {"written-by": "someone-else"}}, "spec": {}}  # fmt: skip
    api.created_after_read = {path: theirs}
    assert main(["promote", MODEL, "--promote", "--version", "1", "--kubeconfig", str(kubeconfig)]) == 2
    error = capsys.readouterr().err
    assert f"{said} (Conflict): another promotion or an edit landed in between" in error
    assert "failure: permanent (exit 2" in error and f"POST {path.rpartition('/')[0]}" in api.calls
    if kind == "InferenceService":  # its policies went first and stay: the message must not say nothing was applied
        assert "the service was not applied, nothing recorded or moved" in error
        assert f"{AUTHORIZATION}/{MODEL}-callers" in api.objects and f"{NETWORK}/{MODEL}-callers" in api.objects
    assert api.objects[path]["metadata"]["labels"] == {"written-by": "someone-else"}, "theirs, not overwritten"
    assert f"{PATH}/{MODEL}" not in api.objects or kind == "InferenceService", "the service waits for its policies"
    assert model_registry.history(lifecycle["mlflow"], MODEL) == []
    api.reset()
    assert main(["promote", MODEL, "--promote", "--version", "1", "--kubeconfig", str(kubeconfig)]) == 0
    assert api.objects[f"{PATH}/{MODEL}"]["metadata"]["resourceVersion"] == "1"


def _with_old_caller(api: type[InferenceServiceApi]) -> dict[str, Any]:
    """The live AuthorizationPolicy admits an extra caller the new rendering drops: a put-back is visible."""
    callers = api.objects[f"{AUTHORIZATION}/{MODEL}-callers"]
    callers["spec"]["rules"].append({"from": [{"source": {"principals": ["cluster.local/ns/fraud/sa/old-caller"]}}]})
    return json.loads(json.dumps(callers["spec"]))


def test_a_put_back_replaces_what_promote_wrote_never_a_later_writers_change_api_server_stand_in(
    lifecycle: dict[str, Any],
    cluster_stand_in: tuple[Path, type[InferenceServiceApi]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The attacker's read: the put-back replaced the policies blindly, so a writer who changed one after
    promote wrote it lost their change. Now it replaces the version promote stored: theirs is a 409, kept
    and reported; the NetworkPolicy no one touched is put back. Then the put-back broken on purpose (the
    old blind one, re-reading first): the same checks see their change overwritten."""
    from mlops.kube import UNREAD
    from mlops.rollout_target import Target

    kubeconfig, api = cluster_stand_in
    canary = ["promote", MODEL, "--canary", "10", "--version", "2", "--kubeconfig", str(kubeconfig)]
    put_back = Target._put_back

    for blind in (False, True):
        api.reset()
        _forget(lifecycle["mlflow"])
        assert main(["promote", MODEL, "--promote", "--version", "1", "--kubeconfig", str(kubeconfig)]) == 0
        history = len(model_registry.history(lifecycle["mlflow"], MODEL))
        theirs = _with_old_caller(api)
        theirs["rules"].append({"from": [{"source": {"principals": ["cluster.local/ns/fraud/sa/their-caller"]}}]})
        network = json.dumps(api.objects[f"{NETWORK}/{MODEL}-callers"]["spec"])
        api.edits_after_read = 1  # the service changes under promote: its apply is refused, 409
        api.edits_after_write = {f"{AUTHORIZATION}/{MODEL}-callers": theirs}  # their edit, right after ours
        if blind:
            monkeypatch.setattr(Target, "_put_back", lambda self, a, b, w: put_back(self, a, b, [UNREAD] * len(w)))
        assert main(canary) == 2
        error = capsys.readouterr().err
        assert "changed after it was checked" in error and "failure: permanent (exit 2" in error
        kept = api.objects[f"{AUTHORIZATION}/{MODEL}-callers"]["spec"] == theirs
        assert json.dumps(api.objects[f"{NETWORK}/{MODEL}-callers"]["spec"]) == network, error
        assert len(model_registry.history(lifecycle["mlflow"], MODEL)) == history
        if blind:
            assert not kept, "the blind put-back overwrote their change: the check above must see it"
            continue
        assert kept, "their change stays, not overwritten"
        assert f"AuthorizationPolicy fraud/{MODEL}-callers was NOT put back: another writer changed it" in error
        assert f"NetworkPolicy fraud/{MODEL}-callers was put back as it was" in error


@pytest.mark.parametrize("lost", ["InferenceService", "NetworkPolicy"])
def test_after_a_write_of_unknown_outcome_nothing_is_put_back_api_server_stand_in(
    lifecycle: dict[str, Any],
    cluster_stand_in: tuple[Path, type[InferenceServiceApi]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    lost: str,
) -> None:
    """The attacker's read: the put-back ran after a timeout too, where the service may have been stored,
    leaving the new service behind the old callers. A write whose answer is lost (stored, answered 504):
    nothing is touched, the error says what holds the new rendering, exit 75; the policies promote wrote
    keep the new rendering (no old caller). Broken on purpose (every failure taken as a refusal): the
    old caller comes back, and the same check sees it."""
    from mlops import rollout_target

    kubeconfig, api = cluster_stand_in
    address = f"{PATH}/{MODEL}" if lost == "InferenceService" else f"{NETWORK}/{MODEL}-callers"
    for broken in (False, True):
        api.reset()
        _forget(lifecycle["mlflow"])
        assert main(["promote", MODEL, "--promote", "--version", "1", "--kubeconfig", str(kubeconfig)]) == 0
        history = len(model_registry.history(lifecycle["mlflow"], MODEL))
        _with_old_caller(api)
        api.lost_answers = {address: 504}
        if broken:
            monkeypatch.setattr(rollout_target, "refused_outright", lambda error: True)
        assert main(["promote", MODEL, "--canary", "10", "--version", "2", "--kubeconfig", str(kubeconfig)]) == 75
        error = capsys.readouterr().err
        assert "504" in error and len(model_registry.history(lifecycle["mlflow"], MODEL)) == history
        rules = json.dumps(api.objects[f"{AUTHORIZATION}/{MODEL}-callers"]["spec"]["rules"])
        if broken:
            assert "old-caller" in rules, "put back after a lost answer: the check below must see it"
            continue
        assert "old-caller" not in rules, "the policy promote wrote was put back after a lost answer"
        assert f"{lost} fraud/{MODEL}" in error and "may or may not have been stored and nothing was put back" in error
        assert f"AuthorizationPolicy fraud/{MODEL}-callers" in error.split("nothing was put back")[1]
        version = api.objects[f"{PATH}/{MODEL}"]["metadata"]["labels"]["mlops.private-platform.io/model-version"]
        assert version == ("2" if lost == "InferenceService" else "1"), "the lost write was stored; the other not sent"


def test_a_policy_refused_after_another_was_written_puts_that_one_back_api_server_stand_in(
    lifecycle: dict[str, Any],
    cluster_stand_in: tuple[Path, type[InferenceServiceApi]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The attacker's read: a NetworkPolicy refused after the AuthorizationPolicy was written left the new
    AuthorizationPolicy behind the old service. Refused (Gatekeeper denies it, 403: nothing stored), the
    AuthorizationPolicy promote wrote is put back as it was; the service is never sent; exit 2."""
    kubeconfig, api = cluster_stand_in
    assert main(["promote", MODEL, "--promote", "--version", "1", "--kubeconfig", str(kubeconfig)]) == 0
    before = _with_old_caller(api)
    refuse = ["[no-network-edits] refused on purpose"]
    api.webhooks = [lambda obj, user: refuse if obj["kind"] == "NetworkPolicy" else []]
    api.calls.clear()
    assert main(["promote", MODEL, "--canary", "10", "--version", "2", "--kubeconfig", str(kubeconfig)]) == 2
    error = capsys.readouterr().err
    assert f"refused to apply NetworkPolicy fraud/{MODEL}-callers: 403" in error and "no-network-edits" in error
    assert f"AuthorizationPolicy fraud/{MODEL}-callers was put back as it was" in error, error
    assert api.objects[f"{AUTHORIZATION}/{MODEL}-callers"]["spec"] == before
    assert [c for c in api.calls if c.startswith("PUT")] == [f"PUT {AUTHORIZATION}/{MODEL}-callers",
           f"PUT {NETWORK}/{MODEL}-callers", f"PUT {AUTHORIZATION}/{MODEL}-callers"]  # fmt: skip
    assert len(model_registry.history(lifecycle["mlflow"], MODEL)) == 1


def test_gatekeepers_configuration_is_read_by_its_one_name_with_the_analysts_rule_api_server_stand_in(
    cluster_stand_in: tuple[Path, type[InferenceServiceApi]],
) -> None:
    """--admission cluster reads Gatekeeper's ValidatingWebhookConfiguration (mlops/kube.py) as the stand-in
    serves it, strict as RBAC: with the rendered ClusterRole's rule it is read (None when Gatekeeper is not
    installed, 404); with the rule naming another object, or none, the 403 is a permanent failure naming the
    ClusterRole that grants it."""
    from components.errors import TransientError
    from mlops.admission_control import GATEKEEPER_CONFIGURATION
    from mlops.kube import Cluster

    kubeconfig, api = cluster_stand_in
    cluster = Cluster.from_kubeconfig(kubeconfig)
    assert cluster.gatekeeper_webhooks() is None  # not installed
    api.install_gatekeeper(lambda obj, user: [])
    found = cluster.gatekeeper_webhooks()
    assert found is not None and found["metadata"]["name"] == GATEKEEPER_CONFIGURATION
    assert [w["failurePolicy"] for w in found["webhooks"]] == ["Fail", "Fail"]
    other = [{**rule, "resourceNames": ["another-configuration"]} for rule in api.cluster_rules]
    for rules in (other, []):
        api.cluster_rules = rules
        with pytest.raises(ComponentError) as refused:
            cluster.gatekeeper_webhooks()
        assert not isinstance(refused.value, TransientError) and "403 Forbidden" in refused.value.problem
        assert f"validatingwebhookconfigurations named {GATEKEEPER_CONFIGURATION}" in refused.value.fix
        assert "canary-analyst ClusterRole" in refused.value.fix
