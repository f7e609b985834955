"""Triton repositories checked offline: Triton's own ModelConfig protobuf, our checks of what
protobuf cannot see, and Treelite (FIL's model parser) on the real trained XGBoost model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.serving.triton_config import (
    RepositoryError,
    config_pbtxt,
    contract_of,
    features_of,
    parse_config,
    python_config_pbtxt,
    sha256_of,
    threshold_of,
)
from components.steps.triton_repository import check_fil_loadable, write_python_repository, write_repository

FEATURES = ["amount", "merchant_category", "txn_count_1h", "txn_sum_1h", "distinct_merchants_24h", "age_days", "g"]


def names(count: int) -> list[str]:
    return FEATURES[:count]


def test_fil_classifier_and_regressor_configs_parse_with_their_output_shapes() -> None:
    classifier = parse_config(config_pbtxt("fraud", "xgboost_json", names(7), gpu=True))
    assert classifier.backend == "fil" and list(classifier.output[0].dims) == [2]
    assert classifier.parameters["predict_proba"].string_value == "true"
    assert classifier.instance_group[0].kind == classifier.instance_group[0].KIND_GPU
    regressor = parse_config(config_pbtxt("demand", "xgboost_ubj", names(5), gpu=False, regression=True))
    assert list(regressor.output[0].dims) == [1]
    assert regressor.parameters["model_type"].string_value == "xgboost_ubj"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('value: { string_value: "xgboost_json" }', 'value: { string_value: "xgb" }'), "model_type 'xgb'"),
        (('"output_class" value: { string_value: "true" }', '"output_class" value: { string_value: "1" }'), "output_"),
        (('"threshold" value: { string_value: "0.5" }', '"threshold" value: { string_value: "1.5" }'), "outside"),
        (('"storage_type" value: { string_value: "AUTO" }', '"storage_type" value: { string_value: "C" }'), "storage"),
        (("dims: [ 2 ]", "dims: [ 1 ]"), r"output__0 must have dims \[2\]"),
        (('name: "input__0"', 'name: "features"'), "input__0"),
        (("TYPE_FP32 dims: [ 7 ]", "TYPE_FP64 dims: [ 7 ]"), "not TYPE_FP32"),
        (("max_batch_size: 8192", "max_batch_size: 0"), "dynamic_batching needs max_batch_size"),
        (("count: 1", "count: 0"), "count must be at least 1"),
        (("KIND_GPU", "KIND_TPU"), "KIND_TPU"),
    ],
)
def test_fil_config_mistakes_are_named(edit: tuple[str, str], message: str) -> None:
    text = config_pbtxt("fraud", "xgboost_json", names(7), gpu=True)
    assert edit[0] in text
    with pytest.raises(RepositoryError, match=message):
        parse_config(text.replace(*edit))


def test_libtorch_tensors_must_carry_their_index() -> None:
    text = config_pbtxt("m", "torchscript", names(6), gpu=True)
    assert parse_config(text).platform == "pytorch_libtorch"
    with pytest.raises(RepositoryError, match="must be named <name>__<index>"):
        parse_config(text.replace("OUTPUT__0", "score"))


def test_unknown_format_is_refused() -> None:
    with pytest.raises(RepositoryError, match="pmml"):
        config_pbtxt("m", "pmml", names(3), gpu=False)


def test_trained_xgboost_model_loads_in_treelite_and_scores_as_xgboost(trained: dict[str, Path]) -> None:
    metadata = json.loads(trained["metadata"].read_text())
    difference = check_fil_loadable(trained["model"].read_bytes(), "xgboost_json", len(metadata["features"]))
    assert difference < 1e-4


def test_the_same_model_as_ubjson_loads_too(trained: dict[str, Path], tmp_path: Path) -> None:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(trained["model"].read_bytes()))
    booster.save_model(str(tmp_path / "model.ubj"))
    features = len(json.loads(trained["metadata"].read_text())["features"])
    assert check_fil_loadable((tmp_path / "model.ubj").read_bytes(), "xgboost_ubj", features) < 1e-4


def test_a_model_treelite_cannot_parse_stops_the_repository(trained: dict[str, Path], tmp_path: Path) -> None:
    model = json.loads(trained["model"].read_bytes())
    model["learner"]["gradient_booster"]["model"]["trees"][0]["left_children"] = [7, 7]  # a forest FIL would refuse
    broken = json.dumps(model).encode()
    features = json.loads(trained["metadata"].read_text())["features"]
    with pytest.raises(RepositoryError, match="FIL would refuse it"):
        write_repository(tmp_path, "fraud", 1, "xgboost_json", broken, features, gpu=True)
    assert not (tmp_path / "fraud").exists()


def test_feature_count_mismatch_is_caught(trained: dict[str, Path]) -> None:
    features = len(json.loads(trained["metadata"].read_text())["features"])
    with pytest.raises(RepositoryError, match=f"expects {features} features"):
        check_fil_loadable(trained["model"].read_bytes(), "xgboost_json", features + 1)


def test_python_repository_layout(trained: dict[str, Path], tmp_path: Path) -> None:
    metadata = json.loads(trained["metadata"].read_text())
    folder = write_python_repository(
        tmp_path,
        "fraud",
        3,
        "xgboost_json",
        trained["model"].read_bytes(),
        metadata["features"],
        max_queue_delay_us=200,
    )
    config = parse_config((folder / "config.pbtxt").read_text())
    assert config.backend == "python" and config.dynamic_batching.max_queue_delay_microseconds == 200
    assert sorted(p.name for p in (folder / "3").iterdir()) == ["metadata.json", "model.json", "model.py"]
    assert json.loads((folder / "3" / "metadata.json").read_text())["features"] == metadata["features"]
    assert np.array_equal(
        np.frombuffer((folder / "3" / "model.json").read_bytes(), np.uint8),
        np.frombuffer(trained["model"].read_bytes(), np.uint8),
    )
    assert "dynamic_batching" not in python_config_pbtxt("fraud", names(3))


@pytest.mark.parametrize(
    ("model_format", "objective"),
    [
        ("xgboost_json", "binary"),
        ("xgboost_json", "regression"),
        ("torchscript", "binary"),
        ("torchscript", "regression"),
    ],
)
def test_the_local_repository_exposes_the_published_configs_tensors(
    tmp_path: Path, model_format: str, objective: str
) -> None:
    """One tensor contract: what `mlops serve` answers a client is what the cluster's FIL or
    libtorch model answers it (names, dtype, dims), so a client tested locally works in production."""
    regression = objective == "regression"
    published = parse_config(config_pbtxt("m", model_format, names(6), gpu=True, regression=regression))
    folder = write_python_repository(tmp_path, "m", 1, model_format, b"model", names(6),
                                     objective=objective)  # fmt: skip
    local = parse_config((folder / "config.pbtxt").read_text())

    def tensors(section: object) -> list[tuple[str, int, list[int]]]:
        return [(t.name, t.data_type, list(t.dims)) for t in section]  # type: ignore[attr-defined]

    assert tensors(local.input) == tensors(published.input) and tensors(local.output) == tensors(published.output)
    carried = json.loads((folder / "1" / "metadata.json").read_text())["tensors"]
    assert (carried["input"], carried["output"]) == (published.input[0].name, published.output[0].name)
    assert carried["output_width"] == published.output[0].dims[0]
    # The column order travels with the model, in both configs: the transformer reads it from its predictor.
    assert features_of(local) == features_of(published) == names(6)
    assert contract_of(local) == contract_of(published)


def test_a_config_without_its_column_order_or_with_a_wrong_one_is_named() -> None:
    text = config_pbtxt("fraud", "xgboost_json", names(3), gpu=True)
    assert features_of(parse_config(text)) == names(3)  # positive control
    without = "\n".join(line for line in text.splitlines() if "mlops_features" not in line)
    with pytest.raises(RepositoryError, match="records no mlops_features"):
        features_of(parse_config(without))  # the decision threshold follows it: the list stays well-formed
    with pytest.raises(RepositoryError, match="the input has 4"):
        features_of(parse_config(text.replace("dims: [ 3 ]", "dims: [ 4 ]")))


def test_configs_record_the_registered_sha256_and_a_binary_models_threshold(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    """issue 32: the decision log records the sha256 register registered (components.artifacts.sha256_file of
    the model file) and the threshold promote publishes a binary model with, both read from the config."""
    from components.artifacts import sha256_file

    metadata = json.loads(trained["metadata"].read_text())
    registered = sha256_file(trained["model"])
    model_bytes = trained["model"].read_bytes()
    cluster = write_repository(tmp_path / "cluster", "fraud", 3, "xgboost_json", model_bytes, metadata["features"],
                               gpu=True, threshold=0.35)  # fmt: skip
    local = write_python_repository(tmp_path / "local", "fraud", 3, "xgboost_json", model_bytes,
                                    metadata["features"], threshold=0.35)  # fmt: skip
    for folder in (cluster, local):
        config = parse_config((folder / "config.pbtxt").read_text())
        assert sha256_of(config) == registered and threshold_of(config) == 0.35
    unset = write_python_repository(tmp_path / "unset", "fraud", 3, "xgboost_json", model_bytes, metadata["features"])
    assert threshold_of(parse_config((unset / "config.pbtxt").read_text())) is None  # not guessed
    regressor = parse_config(config_pbtxt("d", "xgboost_json", names(3), gpu=False, regression=True,
                                          model_sha256=registered))  # fmt: skip
    multiclass = parse_config(config_pbtxt("c", "xgboost_json", names(3), gpu=False, num_classes=4))
    assert threshold_of(regressor) is None and threshold_of(multiclass) is None and sha256_of(multiclass) is None
    old = parse_config(python_config_pbtxt("fraud", names(3)))  # a repository published before issue 32
    assert sha256_of(old) is None and threshold_of(old) is None
    with pytest.raises(RepositoryError, match="not a sha256"):
        config_pbtxt("fraud", "xgboost_json", names(3), gpu=True, model_sha256="abc")
    with pytest.raises(RepositoryError, match="outside"):
        python_config_pbtxt("fraud", names(3), decision_threshold=1.5)
