"""`mlops serve`: a real tritonserver (nvidia-pytriton's, python backend, CPU) serving registered
versions out of an MLflow registry, queried with tritonclient over HTTP and gRPC. Scores must
equal the in-process prediction of the same artifact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.errors import ComponentError
from components.steps.model_formats import load_predictor
from devstack.process import free_port_base
from devstack.triton import LocalTriton, serve_registered
from tests.conftest import FEATURES, REPO, train_evaluate_register

pytestmark = pytest.mark.integration


def scaled_logistic_regression() -> Any:
    """A team's scikit-learn Pipeline, named by import path in train.params.estimator (issue 31)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory: pytest.TempPathFactory, materialized: dict[str, Any]) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("serving-registry")
    xgb = train_evaluate_register(
        materialized, home / "xgb", home, model_name="fraud-xgb", params={"num_boost_round": 60}
    )
    mlp = train_evaluate_register(
        materialized, home / "mlp", home, model_name="fraud-mlp", model_type="pytorch_mlp", params={"epochs": 3},
        threshold=0.5,
    )  # fmt: skip
    lgbm = train_evaluate_register(
        materialized, home / "lgbm", home, model_name="fraud-lgbm", model_type="lightgbm",
        params={"num_boost_round": 40}, threshold=0.5,
    )  # fmt: skip
    pipeline = f"{__name__}:scaled_logistic_regression"
    sklearn = train_evaluate_register(
        materialized, home / "sklearn", home, model_name="fraud-sklearn", model_type="sklearn",
        params={"estimator": pipeline}, threshold=0.5,
    )  # fmt: skip
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"
    models = {"fraud-xgb": xgb, "fraud-mlp": mlp, "fraud-lgbm": lgbm, "fraud-sklearn": sklearn}
    holdout = pd.read_parquet(materialized["holdout"])[FEATURES].to_numpy(dtype=np.float32)[:200]
    yield {
        "home": home,
        "registrations": {name: model["registration"] for name, model in models.items()},
        "holdout": holdout,
        "models": models,
    }
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


@pytest.fixture(scope="module", params=["fraud-xgb", "fraud-mlp", "fraud-lgbm", "fraud-sklearn"])
def served(
    request: pytest.FixtureRequest, registry_home: dict[str, Any]
) -> Iterator[tuple[LocalTriton, dict[str, Any]]]:
    name = request.param
    server, registration = serve_registered(
        name,
        root=registry_home["home"] / f"serve-{name}",
        alias="challenger",
        port_base=free_port_base(3),
        max_queue_delay_us=100,
    )
    try:
        yield server, registration
    finally:
        server.stop()


def _expected(registry_home: dict[str, Any], name: str, rows: np.ndarray) -> np.ndarray:
    model = registry_home["models"][name]
    metadata = json.loads(Path(model["metadata"]).read_text())
    return load_predictor(model["model"], metadata)(rows).astype(np.float32)


def _published(registry_home: dict[str, Any], registration: dict[str, Any]) -> Any:
    """The config promote publishes for the cluster (FIL for XGBoost and LightGBM, libtorch for
    TorchScript, onnxruntime for ONNX), written from the registered artifact as promote writes it."""
    from components.serving.triton_config import parse_config
    from components.steps.triton_repository import write_repository

    name = registration["model_name"]
    folder = write_repository(registry_home["home"] / "published" / name, name, registration["version"],
                              registration["model_format"], Path(registry_home["models"][name]["model"]).read_bytes(),
                              registration["features"], gpu=True,
                              regression=registration["objective"] == "regression")  # fmt: skip
    return parse_config((folder / "config.pbtxt").read_text())


def test_the_local_server_exposes_the_clusters_tensors_exactly_standing_in_for_fil_and_libtorch(
    served: tuple[LocalTriton, dict[str, Any]], registry_home: dict[str, Any]
) -> None:
    """A client tested against `mlops serve` works against production: the python backend here
    stands in for FIL (XGBoost, LightGBM), libtorch (TorchScript) and onnxruntime (ONNX) behind
    the same names, dtypes, dims."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    server, registration = served
    http = httpclient.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready(server.model_name)
    assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready(server.model_name)
    metadata = http.get_model_metadata(server.model_name)
    assert metadata["versions"] == [str(registration["version"])]
    published = _published(registry_home, registration)

    def tensors(section: Any) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": "FP32", "shape": [-1, *t.dims]} for t in section]

    assert metadata["inputs"] == tensors(published.input) and metadata["outputs"] == tensors(published.output)
    grpc_metadata = grpc.get_model_metadata(server.model_name, as_json=True)
    assert [i["name"] for i in grpc_metadata["inputs"]] == [t.name for t in published.input]
    fil, libtorch = ("input__0", "output__0"), ("INPUT__0", "OUTPUT__0")
    expected_names = {
        "xgboost_json": fil,
        "lightgbm_text": fil,
        "torchscript": libtorch,
        "onnx": ("X", "probabilities"),
    }
    assert (published.input[0].name, published.output[0].name) == expected_names[registration["model_format"]]


def test_scores_equal_the_in_process_prediction(
    served: tuple[LocalTriton, dict[str, Any]], registry_home: dict[str, Any]
) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    from components.serving.triton_config import contract_of

    server, registration = served
    contract = contract_of(_published(registry_home, registration))
    rows: np.ndarray = registry_home["holdout"]
    expected = _expected(registry_home, server.model_name, rows)
    for module, url in ((httpclient, server.http_url), (grpcclient, server.grpc_url)):
        client = module.InferenceServerClient(url)
        for start, size in ((0, 1), (0, 64), (64, 64), (128, 37)):
            batch = rows[start : start + size]
            tensor = module.InferInput(contract.input, list(batch.shape), "FP32")
            tensor.set_data_from_numpy(batch)
            got = client.infer(server.model_name, [tensor]).as_numpy(contract.output)
            assert got.shape == (size, contract.output_width)
            np.testing.assert_allclose(contract.scores(got), expected[start : start + size], rtol=1e-6, atol=1e-7)
        oversized = module.InferInput(contract.input, [65, rows.shape[1]], "FP32")
        oversized.set_data_from_numpy(rows[:65])
        with pytest.raises(Exception, match="batch-size must be <= 64"):
            client.infer(server.model_name, [oversized])


def test_load_time_is_recorded_on_the_version(
    served: tuple[LocalTriton, dict[str, Any]], registry_home: dict[str, Any]
) -> None:
    from components.platform import model_registry

    server, registration = served
    record = model_registry.client().get_model_version(server.model_name, str(registration["version"]))
    assert 0 < float(record.tags[model_registry.LOAD_SECONDS_TAG]) < 120


def test_missing_alias_names_the_aliases_that_exist(registry_home: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match=r"no alias 'champion' \(aliases: challenger->v1\)"):
        serve_registered("fraud-xgb", root=tmp_path, alias="champion", port_base=free_port_base(3))


def test_missing_serving_environment_says_how_to_make_it(
    registry_home: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_SERVING_VENV", str(tmp_path / "nothing-here"))
    with pytest.raises(ComponentError, match="make serving-env"):
        serve_registered("fraud-xgb", root=tmp_path / "serve", port_base=free_port_base(3))


def test_cli_serve_detached_then_stop(registry_home: dict[str, Any], tmp_path: Path) -> None:
    import tritonclient.http as httpclient

    port = free_port_base(3)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{registry_home['home']}/mlflow.db"}
    command = [
        sys.executable,
        "-m",
        "mlops.cli",
        "serve",
        "fraud-xgb",
        "--version",
        "1",
        "--detach",
        "--port-base",
        str(port),
        "--dir",
        str(tmp_path / "srv"),
    ]
    started = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    try:
        assert started.returncode == 0, started.stderr
        assert "serving fraud-xgb v1 (xgboost_json" in started.stdout and f"127.0.0.1:{port}" in started.stdout
        assert httpclient.InferenceServerClient(f"127.0.0.1:{port}").is_model_ready("fraud-xgb")
        again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
        assert again.returncode == 2 and "already runs" in again.stderr
    finally:
        stop = subprocess.run(
            [sys.executable, "-m", "mlops.cli", "serve", "fraud-xgb", "--stop", "--dir", str(tmp_path / "srv")],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=120,
        )
    assert "stopped the server" in stop.stdout
    assert not (tmp_path / "srv" / "triton.pid").exists()
