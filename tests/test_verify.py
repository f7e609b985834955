"""`mlops verify` (issue 34 item 4) on a local MLflow registry (sqlite under tmp) with two versions made by the
real steps: v1 registered with its lineage (the raw data copied under tmp, so the test can change it) and
published by promote's own publish_repository to a serving root under tmp, with a serving-history entry;
v2 trained again with other parameters. The untouched registry is whole (exit 0); then one artifact is
corrupted and another deleted, and both are named with their fixes (exit 1); data that is gone is NOT
RETAINED, data that changed is CORRUPT; an unknown model is refused (2), an unreachable registry is 75;
`--push` sends the result to a Pushgateway stand-in as the nightly CronWorkflow does."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FEATURE_REPO, MATERIALIZE_SETTINGS, register_into, train_evaluate_register
from tests.loopback_http import QuietHandler, serving

MODEL = "fraud-verify"


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory,
    raw_dataset: Path,
    materialized: dict[str, Any],
    trained: dict[str, Path],
    evaluated: dict[str, Path],
) -> Iterator[dict[str, Any]]:
    from components.platform import model_registry
    from components.steps.materialize import materialize
    from components.steps.promote import publish_repository

    root = tmp_path_factory.mktemp("verify")
    home, raw, lineage = root / "registry", root / "data" / "transactions.parquet", root / "lineage.json"
    raw.parent.mkdir()
    shutil.copyfile(raw_dataset, raw)
    materialize(str(raw), str(FEATURE_REPO), str(root / "train.parquet"), str(root / "holdout.parquet"),
                store_dir=str(root / "store"), settings=MATERIALIZE_SETTINGS, lineage_out=str(lineage))  # fmt: skip
    register_into(root / "v1", home, trained["model"], trained["metadata"], evaluated["metrics"], model_name=MODEL,
                  lineage=str(lineage))  # fmt: skip
    train_evaluate_register(materialized, root / "v2", home, model_name=MODEL, params={"num_boost_round": 15})
    uri = f"sqlite:///{home}/mlflow.db"
    serving_root = root / "serving"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow = model_registry.client()
        registration, model_bytes = model_registry.load_registration(mlflow, MODEL, 1)
        publish_repository(registration, model_bytes, str(serving_root), gpu=False)
        model_registry.append_history(mlflow, MODEL, model_registry.HistoryEntry(
            action="promote", to_version=1, from_version=None, traffic_percent=100, who="alice"))  # fmt: skip
        artifacts = {}
        for version in (1, 2):
            run = mlflow.get_run(str(mlflow.get_model_version(MODEL, str(version)).run_id))
            artifacts[version] = Path(run.info.artifact_uri.removeprefix("file://")) / "model" / "model.json"
        yield {"uri": uri, "serving": serving_root, "raw": raw, "artifacts": artifacts, "v1": registration}


@pytest.fixture
def env(registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry["uri"])
    monkeypatch.setenv("MLOPS_SERVING_ROOT", registry["serving"].as_uri())
    monkeypatch.delenv("MLOPS_PUSHGATEWAY_URL", raising=False)
    return registry


def mlops(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from mlops.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _statuses(out: str) -> dict[int, dict[str, str]]:
    document = json.loads(out)
    return {
        v["version"]: {c["what"]: c["status"] for c in v["checks"]} | {"": v["status"]} for v in document["versions"]
    }


@pytest.fixture
def tampered(env: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """v1's artifact rewritten (one byte appended), v2's deleted; put back afterwards."""
    kept = {version: path.read_bytes() for version, path in env["artifacts"].items()}
    env["artifacts"][1].write_bytes(kept[1] + b" ")
    env["artifacts"][2].unlink()
    yield env
    for version, data in kept.items():
        env["artifacts"][version].write_bytes(data)


def test_an_untouched_registry_is_whole(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = mlops(capsys, "verify", MODEL, "--json")
    assert code == 0, out + err
    found = _statuses(out)
    assert found[1] == {"": "OK", "artifact": "OK", "serving copy": "OK", "dataset raw": "OK",
                        "dataset training": "OK", "dataset holdout": "OK"}  # fmt: skip
    assert found[2][""] == "OK" and found[2]["artifact"] == "OK"
    assert found[2]["serving copy"] == "NOT PUBLISHED"  # never rolled out: nothing to check, not a failure
    assert found[2]["lineage"] == "NOT RECORDED"  # registered without a lineage record: nothing to check
    code, out, _ = mlops(capsys, "verify")  # every model in the registry
    assert code == 0 and out.strip().splitlines()[-1] == "2 versions checked: 2 OK, 0 MISSING, 0 CORRUPT"


def test_a_corrupted_and_a_deleted_artifact_are_named_with_their_fixes(
    tampered: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = mlops(capsys, "verify", MODEL)
    assert code == 1, out + err
    v1 = out.split(f"{MODEL} v2")[0]
    v2 = out.split(f"{MODEL} v2")[1]
    assert f"{MODEL} v1  CORRUPT" in v1 and tampered["v1"]["artifact_sha256"] in v1
    assert str(tampered["artifacts"][1]) in v1 and "changed after registration" in v1
    assert "  MISSING" in v2.splitlines()[0] and f"{tampered['artifacts'][2]} is gone" in v2
    assert v1.count("fix: restore the object (its previous object version, or a copy; docs/recovery.md)") == 1
    assert "fix: restore the object" in v2 and "retrain and register it again (mlops run <pipeline>)" in v2
    assert out.strip().splitlines()[-1] == "2 versions checked: 0 OK, 1 MISSING, 1 CORRUPT"
    code, out, _ = mlops(capsys, "verify", MODEL, "--json")
    found = _statuses(out)
    assert code == 1 and found[1]["artifact"] == "CORRUPT" and found[2]["artifact"] == "MISSING"
    assert found[1]["serving copy"] == "OK"  # the published copy is still the registered bytes


def test_a_changed_serving_copy_is_corrupt(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    sha = env["v1"]["artifact_sha256"]
    copy = env["serving"] / MODEL / f"v1-{sha[:12]}" / MODEL / "1" / "xgboost.json"
    kept = copy.read_bytes()
    copy.write_bytes(kept.replace(b"[", b"[ ", 1))
    try:
        code, out, _ = mlops(capsys, "verify", MODEL)
    finally:
        copy.write_bytes(kept)
    assert code == 1 and f"{MODEL} v1  CORRUPT" in out and "serving copy     CORRUPT" in out
    assert f"fix: delete {env['serving'].as_uri()}/{MODEL}/v1-{sha[:12]}/ and publish it again" in out


def test_a_served_version_without_its_serving_copy_is_missing(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """v1 was promoted (its serving history says so): its copy must be there; v2 never was, and needs none."""
    sha = env["v1"]["artifact_sha256"]
    published = env["serving"] / MODEL / f"v1-{sha[:12]}"
    shutil.move(published, tmp_path / "kept")
    try:
        code, out, _ = mlops(capsys, "verify", MODEL, "--json")
    finally:
        shutil.move(tmp_path / "kept", published)
    found = json.loads(out)["versions"][0]
    serving = next(check for check in found["checks"] if check["what"] == "serving copy")
    assert code == 1 and found["status"] == "MISSING" and serving["status"] == "MISSING"
    assert "the serving history rolled v1 out" in serving["detail"]
    assert f"mlops promote {MODEL} --version 1" in serving["fix"]


def test_verify_looks_where_promote_publishes(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One spelling of the published location (triton_repository.published_location): v2 published by
    promote's own publish_repository into a fresh serving root is found there, OK; v1, which the serving
    history rolled out but which is not in this root, is MISSING (the negative control)."""
    from components.platform import model_registry
    from components.steps.promote import publish_repository
    from components.steps.triton_repository import published_location

    root = (tmp_path / "other-serving").as_uri()
    registration, model_bytes = model_registry.load_registration(model_registry.client(), MODEL, 2)
    storage_uri = publish_repository(registration, model_bytes, root, gpu=False)
    assert storage_uri == published_location(root, MODEL, 2, registration["artifact_sha256"])
    monkeypatch.setenv("MLOPS_SERVING_ROOT", root)
    code, out, err = mlops(capsys, "verify", MODEL, "--json")
    found = json.loads(out)["versions"]
    serving = {v["version"]: next(c for c in v["checks"] if c["what"] == "serving copy") for v in found}
    assert serving[2]["status"] == "OK" and serving[2]["detail"].startswith(storage_uri + "/"), out + err
    assert code == 1 and serving[1]["status"] == "MISSING" and root in serving[1]["detail"]


def test_data_no_longer_retained_is_reported_and_changed_data_is_corrupt(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    raw: Path = env["raw"]
    kept = raw.read_bytes()
    raw.unlink()
    try:
        code, out, _ = mlops(capsys, "verify", MODEL, "--json")
        assert code == 0 and _statuses(out)[1]["dataset raw"] == "NOT RETAINED"  # gone is not corrupt
        raw.write_bytes(kept + b"\0")
        code, out, _ = mlops(capsys, "verify", MODEL, "--json")
        assert code == 1 and _statuses(out)[1]["dataset raw"] == "CORRUPT"
    finally:
        raw.write_bytes(kept)


def test_an_unknown_model_is_refused_and_an_unreachable_registry_is_transient(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = mlops(capsys, "verify", "no-such-model")
    assert code == 2 and "no registered model 'no-such-model'" in err
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    code, _, err = mlops(capsys, "verify")
    assert code == 75, err


def test_push_sends_each_failed_version_and_the_end_of_the_walk(
    tampered: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[tuple[str, str, str]] = []

    class Gateway(QuietHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            received.append(("PUT", self.path, body))
            self.send_response(200)
            self.end_headers()

    with serving(Gateway) as server:
        monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", f"http://127.0.0.1:{server.server_address[1]}")
        code, out, err = mlops(capsys, "verify", MODEL, "--push")
    assert code == 1, out + err
    [(_, path, body)] = received
    assert path == "/metrics/job/mlops-notice/kind/registry-verify"  # one group, replaced by each run
    assert f'mlops_registry_verify_failed{{model="{MODEL}",status="CORRUPT",version="1"}} 1.0' in body
    assert f'mlops_registry_verify_failed{{model="{MODEL}",status="MISSING",version="2"}} 1.0' in body
    assert "mlops_registry_verify_completed_timestamp_seconds " in body and "namespace" not in body


def test_the_alerts_read_what_verify_pushes() -> None:
    """The rules read notify.py's families (the one source); their promtool cases are the "recovery" group."""
    import yaml

    from components.steps import notify
    from tests.conftest import REPO

    rules = yaml.safe_load((REPO / "manifests" / "monitoring" / "prometheus-rules.yaml").read_text())
    expr = {rule["alert"]: rule["expr"] for group in rules["spec"]["groups"] for rule in group["rules"]}
    assert f"{notify.VERIFY_FAILED}{{" in expr["RegistryVerifyFailed"]
    assert f"{notify.VERIFY_COMPLETED}{{" in expr["RegistryVerifyStale"]


def test_artifacts_behind_a_proxied_store_are_refused_not_reported_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A tracking server that serves artifacts itself (`mlflow-artifacts:/`) is not where verify reads bytes:
    saying MISSING would page for bytes that may well be there. The control: a file store's version is read."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri, uri)
    for name, location in (("proxied", "mlflow-artifacts:/proxied"), ("filed", (tmp_path / "artifacts").as_uri())):
        run = client.create_run(client.create_experiment(name, artifact_location=location)).info.run_id
        client.create_registered_model(name)
        client.create_model_version(name, f"runs:/{run}/model", run_id=run, tags={"artifact_sha256": "a" * 64})
    code, _, err = mlops(capsys, "verify", "proxied")
    assert code == 2 and "mlflow-artifacts:/proxied" in err and "--no-serve-artifacts" in err
    code, out, _ = mlops(capsys, "verify", "filed")
    assert code == 1 and "filed v1  MISSING" in out and "model/metadata.json is gone" in out
