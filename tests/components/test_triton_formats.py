"""issue 31 item 2: the models a team brings, served on Triton with the one tensor contract.

LightGBM text goes to FIL (model_type lightgbm, model.txt) and is checked with Treelite against
LightGBM's own predictions; a scikit-learn Pipeline converted to ONNX goes to the onnxruntime
backend under its graph's tensor names; a multiclass model answers k probabilities. The local
python-backend stub (what `mlops serve` runs) scores each format as the library does in process.
Small models (a few hundred rows, a few trees): seconds in all."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.serving.triton_config import (
    RepositoryError,
    config_pbtxt,
    contract_of,
    parse_config,
    tensor_contract,
)
from components.steps.triton_repository import (
    PYTHON_MODEL_SOURCE,
    check_fil_loadable,
    onnx_graph_names,
    write_python_repository,
    write_repository,
)

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "contract_days", "late_payments"]


def _data(classes: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=300, n_features=len(FEATURES), n_informative=4, n_redundant=0, n_classes=classes, random_state=0
    )
    return x.astype(np.float32), y


def _lightgbm(objective: str, classes: int = 2) -> bytes:
    import lightgbm as lgb

    x, y = _data(classes)
    params: dict[str, Any] = {"objective": objective, "num_leaves": 7, "verbose": -1, "num_threads": 1, "seed": 0}
    if objective == "multiclass":
        params["num_class"] = classes
    target = y.astype(np.float32) * 1.5 if objective == "regression" else y
    booster = lgb.train(params, lgb.Dataset(x, target), num_boost_round=8)
    return str(booster.model_to_string()).encode()


def _sklearn_pipeline_onnx(classes: int = 2) -> tuple[Any, bytes]:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _data(classes)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(x, y)
    onnx_model = to_onnx(pipeline, x[:1], options={id(pipeline): {"zipmap": False}}, target_opset=17)
    return pipeline, onnx_model.SerializeToString()


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    pipeline, onnx_bytes = _sklearn_pipeline_onnx()
    pipeline3, onnx3 = _sklearn_pipeline_onnx(classes=3)
    return {
        "pipeline_multiclass": pipeline3,
        "onnx_multiclass": onnx3,
        "lightgbm_binary": _lightgbm("binary"),
        "lightgbm_regression": _lightgbm("regression"),
        "lightgbm_multiclass": _lightgbm("multiclass", classes=3),
        "pipeline": pipeline,
        "onnx": onnx_bytes,
    }


def test_lightgbm_configs_go_to_fil_with_its_model_type_and_output_shapes() -> None:
    """issue 31: a LightGBM text model is served by FIL (model_type lightgbm), binary [2],
    regression [1], multiclass [k]."""
    binary = parse_config(config_pbtxt("churn", "lightgbm_text", FEATURES, gpu=True))
    assert binary.backend == "fil" and binary.parameters["model_type"].string_value == "lightgbm"
    assert list(binary.output[0].dims) == [2] and contract_of(binary) == tensor_contract("lightgbm_text")
    regressor = parse_config(config_pbtxt("ltv", "lightgbm_text", FEATURES, gpu=False, regression=True))
    assert list(regressor.output[0].dims) == [1]
    multiclass = parse_config(config_pbtxt("segment", "lightgbm_text", FEATURES, gpu=True, num_classes=4))
    assert list(multiclass.output[0].dims) == [4]
    assert multiclass.parameters["predict_proba"].string_value == "true"


def test_a_multiclass_fil_config_with_one_output_is_named() -> None:
    """issue 31: FIL with class probabilities needs [k >= 2]; with plain values [1]; both named."""
    text = config_pbtxt("segment", "lightgbm_text", FEATURES, gpu=True, num_classes=4)
    with pytest.raises(RepositoryError, match=r"must have dims \[2\] \(or \[k\]"):
        parse_config(text.replace("dims: [ 4 ]", "dims: [ 1 ]"))
    regressor = config_pbtxt("ltv", "lightgbm_text", FEATURES, gpu=True, regression=True)
    with pytest.raises(RepositoryError, match=r"must have dims \[1\]"):
        parse_config(regressor.replace("dims: [ 1 ]", "dims: [ 3 ]"))
    with pytest.raises(RepositoryError, match="a regressor has no classes"):
        tensor_contract("lightgbm_text", regression=True, num_classes=3)


def test_onnx_config_names_the_graphs_tensors_on_onnxruntime(models: dict[str, Any], tmp_path: Path) -> None:
    """issue 31: a scikit-learn Pipeline (ONNX via skl2onnx) is served by onnxruntime under the
    tensor names its graph has, both class probabilities out, and the file is model.onnx."""
    names = onnx_graph_names(models["onnx"], len(FEATURES))
    assert names[1] == "probabilities"
    folder = write_repository(tmp_path, "churn", 2, "onnx", models["onnx"], FEATURES, gpu=False)
    config = parse_config((folder / "config.pbtxt").read_text())
    assert config.backend == "onnxruntime"
    assert (config.input[0].name, config.output[0].name) == names and list(config.output[0].dims) == [2]
    assert (folder / "2" / "model.onnx").read_bytes() == models["onnx"]
    with pytest.raises(RepositoryError, match="named by its graph"):
        config_pbtxt("churn", "onnx", FEATURES, gpu=False)
    with pytest.raises(RepositoryError, match=f"expects {len(FEATURES)} features"):
        onnx_graph_names(models["onnx"], len(FEATURES) + 1)


def test_an_onnx_tensor_name_that_would_write_config_fields_is_refused(models: dict[str, Any]) -> None:
    """issue 31 (attacker's read): the graph's tensor names were written into config.pbtxt by f-string,
    so a name holding a quote and braces wrote fields of the model's choosing (e.g. a shared library
    for onnxruntime to load). A plain name is the control."""
    import onnx

    model = onnx.load_from_string(models["onnx"])
    output = model.graph.output[-1].name
    forged = 'probabilities" } ] model_operations { op_library_filename: "/tmp/x.so" } output [ { name: "p'
    for node in model.graph.node:
        node.output[:] = [forged if name == output else name for name in node.output]
    model.graph.output[-1].name = forged
    with pytest.raises(RepositoryError, match="is not letters, digits and"):
        onnx_graph_names(model.SerializeToString(), len(FEATURES))
    assert onnx_graph_names(models["onnx"], len(FEATURES))[1] == output


def test_an_onnx_classifier_with_zipmap_output_is_refused_with_the_fix() -> None:
    """issue 31: skl2onnx's default ZipMap output is not a tensor Triton can return: named, with the option."""
    from skl2onnx import to_onnx

    pipeline, _ = _sklearn_pipeline_onnx()
    x, _ = _data(2)
    zipmapped = to_onnx(pipeline, x[:1], target_opset=17).SerializeToString()
    with pytest.raises(RepositoryError, match="zipmap"):
        onnx_graph_names(zipmapped, len(FEATURES))


@pytest.mark.parametrize("model", ["lightgbm_binary", "lightgbm_regression", "lightgbm_multiclass"])
def test_lightgbm_models_load_in_treelite_and_score_as_lightgbm(models: dict[str, Any], model: str) -> None:
    """issue 31: FIL parses LightGBM with Treelite: its predictions equal LightGBM's own."""
    assert check_fil_loadable(models[model], "lightgbm_text", len(FEATURES)) < 1e-4


def test_a_lightgbm_model_treelite_refuses_or_misreads_stops_the_repository(
    models: dict[str, Any], tmp_path: Path
) -> None:
    """issue 31: a LightGBM file FIL could not parse, or one for other features, stops promote."""
    broken = models["lightgbm_binary"].replace(b"num_leaves=", b"num_leaves=x", 1)
    with pytest.raises(RepositoryError, match="FIL would refuse it"):
        write_repository(tmp_path, "churn", 1, "lightgbm_text", broken, FEATURES, gpu=True)
    assert not (tmp_path / "churn").exists()
    with pytest.raises(RepositoryError, match=f"expects {len(FEATURES)} features"):
        check_fil_loadable(models["lightgbm_binary"], "lightgbm_text", len(FEATURES) + 1)
    folder = write_repository(tmp_path, "churn", 1, "lightgbm_text", models["lightgbm_binary"], FEATURES, gpu=True)
    assert (folder / "1" / "model.txt").read_bytes() == models["lightgbm_binary"]


class _Tensor:
    def __init__(self, name: str, values: np.ndarray) -> None:
        self.name, self.values = name, values

    def as_numpy(self) -> np.ndarray:
        return self.values


@pytest.fixture
def stub_model() -> Iterator[Any]:
    """The stub module as Triton's python backend loads it, with the backend's utilities it imports."""
    utils = types.ModuleType("triton_python_backend_utils")
    utils.Tensor = _Tensor  # type: ignore[attr-defined]
    utils.InferenceResponse = lambda tensors: tensors  # type: ignore[attr-defined]
    utils.get_input_tensor_by_name = lambda request, name: request[name]  # type: ignore[attr-defined]
    sys.modules["triton_python_backend_utils"] = utils
    spec = importlib.util.spec_from_file_location("triton_stub_model_under_test", PYTHON_MODEL_SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    del sys.modules["triton_python_backend_utils"]


def _in_process(models: dict[str, Any], model: str, rows: np.ndarray, tmp_path: Path) -> np.ndarray:
    """What the model's kind predicts in process (components.model_kinds: load, then predict)."""
    from components.model_kinds import model_kind

    kind = model_kind("sklearn" if model.startswith("onnx") else "lightgbm")
    path = tmp_path / kind.model_file
    path.write_bytes(models[model])
    predicted = np.asarray(kind.predict(kind.load(path), rows)).reshape(len(rows), -1)
    if model.startswith("onnx"):  # the kind scores its ONNX file; scikit-learn's own answer agrees
        reference = models[model.replace("onnx", "pipeline")].predict_proba(rows)
        np.testing.assert_allclose(predicted, reference[:, 1:] if reference.shape[1] == 2 else reference, atol=1e-5)
    return predicted


@pytest.mark.parametrize(
    ("model", "model_format", "objective", "classes"),
    [
        ("lightgbm_binary", "lightgbm_text", "binary", None),
        ("lightgbm_regression", "lightgbm_text", "regression", None),
        ("lightgbm_multiclass", "lightgbm_text", "multiclass", 3),
        ("onnx", "onnx", "binary", None),
        ("onnx_multiclass", "onnx", "multiclass", None),
    ],
)
def test_the_stub_scores_each_format_as_the_library_does_behind_the_cluster_tensors(
    stub_model: Any,
    models: dict[str, Any],
    tmp_path: Path,
    model: str,
    model_format: str,
    objective: str,
    classes: int | None,
) -> None:
    """issue 31: `mlops serve` answers LightGBM and ONNX models with the cluster config's tensors
    (names, width) and the scores the library computes in process, across two batched requests."""
    folder = write_python_repository(
        tmp_path, "m", 1, model_format, models[model], FEATURES, objective=objective, num_classes=classes
    )
    local = parse_config((folder / "config.pbtxt").read_text())
    regression = objective == "regression"
    if model_format == "onnx":
        published = parse_config(
            (
                write_repository(tmp_path / "cluster", "m", 1, "onnx", models[model], FEATURES, gpu=False)
                / "config.pbtxt"
            ).read_text()
        )
    else:
        published = parse_config(
            config_pbtxt("m", model_format, FEATURES, gpu=True, regression=regression, num_classes=classes)
        )
    assert contract_of(local) == contract_of(published)
    served = stub_model.TritonPythonModel()
    served.initialize({"model_repository": str(folder), "model_version": "1"})
    contract = contract_of(local)
    rows = _data(3)[0][:40]
    responses = served.execute([{contract.input: _Tensor(contract.input, block)} for block in (rows[:15], rows[15:])])
    answered = np.vstack([tensors[0].values for tensors in responses])
    assert [tensors[0].name for tensors in responses] == [contract.output] * 2
    assert answered.dtype == np.float32 and answered.shape == (40, contract.output_width)
    expected = _in_process(models, model, rows, tmp_path)
    if expected.shape[1] == 1 and contract.output_width == 2:
        expected = np.hstack([1.0 - expected, expected])
    np.testing.assert_allclose(answered, expected, rtol=1e-5, atol=1e-5)
    metadata = json.loads((folder / "1" / "metadata.json").read_text())
    assert metadata["tensors"] == contract.as_json()


def test_promote_runtime_must_carry_the_models_backend() -> None:
    """issue 31: promote.runtime names a runtime; one without the model's Triton backend is a
    permanent error naming the setting and the runtime that serves it."""
    from components.errors import ComponentError
    from components.steps.promote import check_runtime

    for backend, model_format in [("fil", "lightgbm_text"), ("onnxruntime", "onnx"), ("pytorch", "torchscript")]:
        check_runtime("triton-fil", backend, model_format)  # positive control: the shipped runtime serves each
    with pytest.raises(ComponentError, match=r"promote.runtime 'kserve-lgbserver' cannot serve") as refused:
        check_runtime("kserve-lgbserver", "fil", "lightgbm_text")
    assert refused.value.fix == "set promote.runtime: triton-fil in the pipeline's config.yaml"
    assert not refused.value.retryable
    with pytest.raises(ComponentError, match="no runtime of the platform has the tensorrt backend"):
        check_runtime("triton-fil", "tensorrt", "plan")


def test_every_runtime_promote_knows_is_a_cluster_serving_runtime_the_platform_ships() -> None:
    """issue 31: the runtimes promote checks against are the ClusterServingRuntimes in manifests/base/serving."""
    import yaml

    from components.steps.promote import SERVING_RUNTIMES
    from tests.conftest import REPO

    shipped = {
        document["metadata"]["name"]
        for source in (REPO / "manifests" / "base" / "serving").glob("*.yaml")
        for document in yaml.safe_load_all(source.read_text())
        if document and document.get("kind") == "ClusterServingRuntime"
    }
    assert set(SERVING_RUNTIMES) == shipped


def test_the_serving_image_checks_every_backend_promote_lets_its_runtime_serve() -> None:
    """issue 31: SERVING_RUNTIMES said triton-fil serves ONNX (onnxruntime), but the image's build
    checked only fil, python and pytorch, so nothing showed the serving image could load an ONNX model."""
    import re

    import yaml

    from components.steps.promote import SERVING_RUNTIMES
    from tests.conftest import REPO

    runtime = yaml.safe_load((REPO / "manifests" / "base" / "serving" / "triton-runtime.yaml").read_text())
    (container,) = runtime["spec"]["containers"]
    assert container["image"].startswith("registry.mlops.internal/private-mlops/tritonserver:")  # images/triton's
    checked = set(
        re.findall(r"test -d /opt/tritonserver/backends/(\w+)", (REPO / "images/triton/Containerfile").read_text())
    )
    assert checked == set(SERVING_RUNTIMES[runtime["metadata"]["name"]])


def test_promote_publishes_nothing_for_a_runtime_without_the_models_backend(
    models: dict[str, Any], tmp_path: Path
) -> None:
    """issue 31: promote checks promote.runtime against the backend of the config it wrote
    (FIL for a LightGBM model) before anything is published."""
    import hashlib

    from components.errors import ComponentError
    from components.steps.promote import publish_repository

    model = models["lightgbm_binary"]
    registration: Any = {
        "model_name": "churn",
        "version": 3,
        "model_format": "lightgbm_text",
        "features": FEATURES,
        "objective": "binary",
        "artifact_sha256": hashlib.sha256(model).hexdigest(),
    }
    root = tmp_path / "serving"
    with pytest.raises(ComponentError, match=r"promote.runtime 'kserve-lgbserver' .* \(Triton backend fil\)"):
        publish_repository(registration, model, str(root), gpu=True, runtime="kserve-lgbserver")
    assert not root.exists()
    published = publish_repository(registration, model, str(root), gpu=True, runtime="triton-fil")
    assert (
        root / "churn" / f"v3-{registration['artifact_sha256'][:12]}" / "churn" / "3" / "model.txt"
    ).read_bytes() == model
    assert published.endswith("/churn/v3-" + registration["artifact_sha256"][:12])


def test_the_class_count_is_read_from_the_model_itself(models: dict[str, Any], tmp_path: Path) -> None:
    """issue 31: a multiclass model's output width comes from its artifact (LightGBM's num_class,
    XGBoost's learner num_class, the ONNX graph's probabilities), so config and model agree."""
    import xgboost as xgb

    from components.steps.triton_repository import classes_of

    x, y = _data(3)
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, xgb.DMatrix(x, y), 3)
    xgb_bytes = bytes(booster.save_raw("json"))
    expected = {"lightgbm_multiclass": ("lightgbm_text", 3), "lightgbm_binary": ("lightgbm_text", None),
                "onnx_multiclass": ("onnx", 3), "onnx": ("onnx", 2)}  # fmt: skip
    for model, (model_format, classes) in expected.items():
        assert classes_of(models[model], model_format) == classes, model
    assert classes_of(xgb_bytes, "xgboost_json") == 3
    for name, model_format, model_bytes in [("lgbm", "lightgbm_text", models["lightgbm_multiclass"]),
                                            ("xgb", "xgboost_json", xgb_bytes)]:  # fmt: skip
        folder = write_repository(tmp_path, name, 1, model_format, model_bytes, FEATURES, gpu=True)
        assert list(parse_config((folder / "config.pbtxt").read_text()).output[0].dims) == [3]


def test_each_built_in_kinds_file_and_backend_are_those_of_its_triton_repository(
    models: dict[str, Any], tmp_path: Path
) -> None:
    """issue 31: a kind's model_file is the file promote writes into the version folder, and its
    triton_backend is the backend of the config promote renders (the runtime check reads that)."""
    from components.model_kinds import BUILTIN_KINDS, model_kind
    from components.serving.triton_config import backend_of
    from components.steps.triton_repository import model_file_name

    artifacts = {"onnx": models["onnx"], "lightgbm_text": models["lightgbm_binary"]}
    for name in BUILTIN_KINDS:
        kind = model_kind(name)
        assert model_file_name(kind.model_format) == kind.model_file, name
        if kind.model_format in artifacts:
            folder = write_repository(tmp_path, name, 1, kind.model_format, artifacts[kind.model_format], FEATURES,
                                      gpu=True)  # fmt: skip
            text = (folder / "config.pbtxt").read_text()
        else:
            text = config_pbtxt(name, kind.model_format, FEATURES, gpu=True)
        assert backend_of(parse_config(text)) == kind.triton_backend, name
