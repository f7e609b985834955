"""Triton model repositories: what promote publishes and `mlops serve` runs, laid out on disk.

<root>/<model>/config.pbtxt (components.serving.triton_config renders and parses it back) and
<root>/<model>/<version>/ the model file; the local python-backend repository also gets the stub
model (components/serving/triton_stub_model.py, copied in as model.py) and the metadata it reads.
Tree models (XGBoost, LightGBM text) are also loaded with Treelite, the library FIL parses them
with, and its predictions compared with the training library's: a model file FIL would refuse (the
trap of fil_backend#311 / treelite#633, newer XGBoost JSON in an older loader) stops promote. An
ONNX model's tensor names and width are read from its graph, so the config names what
onnxruntime will find.

Runs in the component image (promote) and on a laptop (`mlops serve`, the devstack), never in the
transformer's environment, which has neither XGBoost nor Treelite: that is why it is a room apart
from the configuration the transformer reads.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.serving.triton_config import (
    FIL_MODEL_FILES,
    ONNX_FORMAT,
    ONNX_MODEL_FILE,
    TORCH_MODEL_FILE,
    RepositoryError,
    config_pbtxt,
    parse_config,
    python_config_pbtxt,
    tensor_contract,
)

__all__ = [
    "PYTHON_MODEL_FILES",
    "PYTHON_MODEL_SOURCE",
    "check_fil_loadable",
    "classes_of",
    "model_file_name",
    "onnx_graph_names",
    "published_location",
    "write_python_repository",
    "write_repository",
]

PYTHON_MODEL_SOURCE = Path(__file__).resolve().parents[1] / "serving" / "triton_stub_model.py"
"""The python backend's model.py, from the serving room (it runs inside Triton's python stub)."""


# What the local python-backend model reads beside its model file.
PYTHON_MODEL_FILES = {
    "xgboost_json": "model.json",
    "torchscript": "model.pt",
    "lightgbm_text": FIL_MODEL_FILES["lightgbm_text"],
    ONNX_FORMAT: ONNX_MODEL_FILE,
}


def _treelite_forest(path: Path, model_format: str) -> Any:
    import treelite

    if model_format == "lightgbm_text":
        return treelite.frontend.load_lightgbm_model(str(path))
    choice = {"xgboost_json": "json", "xgboost_ubj": "ubjson"}[model_format]
    return treelite.frontend.load_xgboost_model(str(path), format_choice=choice)


def _library_predictions(model_bytes: bytes, model_format: str, features: Any) -> Any:
    """What the library that trained the model predicts (probabilities, or values), one row each."""
    import numpy as np

    if model_format == "lightgbm_text":
        import lightgbm as lgb

        booster = lgb.Booster(model_str=model_bytes.decode())
        return np.asarray(booster.predict(features)).reshape(len(features), -1)
    import xgboost as xgb

    xgb_booster = xgb.Booster()
    xgb_booster.load_model(bytearray(model_bytes))
    matrix = xgb.DMatrix(features, feature_names=xgb_booster.feature_names)
    return np.asarray(xgb_booster.predict(matrix)).reshape(len(features), -1)


def check_fil_loadable(model_bytes: bytes, model_format: str, n_features: int, *, rows: int = 256) -> float:
    """Load a tree model (XGBoost or LightGBM) with Treelite, as FIL does, and compare its
    predictions with the training library's own on random rows. Returns the largest absolute difference."""
    import numpy as np
    import treelite

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / FIL_MODEL_FILES[model_format]
        path.write_bytes(model_bytes)
        try:
            forest = _treelite_forest(path, model_format)
        except Exception as error:
            raise RepositoryError(
                f"Treelite {treelite.__version__} cannot load this {model_format} model, so FIL would refuse it: "
                f"{str(error).splitlines()[0]}"
            ) from error
    if forest.num_feature != n_features:
        raise RepositoryError(f"the model expects {forest.num_feature} features, the registration lists {n_features}")
    features = np.random.default_rng(0).normal(0.0, 3.0, size=(rows, n_features)).astype(np.float32)
    ours = np.asarray(treelite.gtil.predict(forest, features)).reshape(rows, -1)
    theirs = _library_predictions(model_bytes, model_format, features)
    if ours.shape != theirs.shape:
        raise RepositoryError(f"Treelite answers {ours.shape[1]} values per row, {model_format} {theirs.shape[1]}")
    difference = float(np.max(np.abs(ours - theirs)))
    if difference > 1e-4:
        library = "LightGBM" if model_format == "lightgbm_text" else "XGBoost"
        raise RepositoryError(
            f"Treelite's predictions differ from {library}'s by {difference:.2e}; FIL would score wrong"
        )
    return difference


_TENSOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
"""A tensor name as config.pbtxt may carry it: the names come from the model's bytes and are written
into Triton's text config, so a quote or brace in one would write config fields of the model's choosing."""


def onnx_graph_names(model_bytes: bytes, n_features: int) -> tuple[str, str]:
    """The ONNX graph's input and its float output (skl2onnx's `probabilities` for a classifier,
    `variable` for a regressor): the names the onnxruntime backend serves them under."""
    import onnx

    try:
        graph = onnx.load_from_string(model_bytes).graph
    except Exception as error:
        raise RepositoryError(f"the ONNX model does not parse: {str(error).splitlines()[0]}") from error
    if len(graph.input) != 1:
        raise RepositoryError(f"the ONNX model takes {len(graph.input)} inputs; the contract is one feature matrix")
    width = graph.input[0].type.tensor_type.shape.dim[-1].dim_value
    if width != n_features:
        raise RepositoryError(f"the ONNX model expects {width} features, the registration lists {n_features}")
    floats = [out.name for out in graph.output if out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    if not floats:
        raise RepositoryError(
            "the ONNX model has no float tensor output (skl2onnx's ZipMap returns a map): "
            "convert a classifier with options={'zipmap': False}"
        )
    names = graph.input[0].name, floats[-1]
    for name in names:
        if not _TENSOR_NAME.fullmatch(name):
            raise RepositoryError(
                f"the ONNX model's tensor name {name!r} is not letters, digits and _.:- (config.pbtxt carries it"
                " as written): rename the graph's input and output, e.g. skl2onnx's initial_types=[('X', ...)]"
            )
    return names


def classes_of(model_bytes: bytes, model_format: str) -> int | None:
    """How many class probabilities the model answers, read from the artifact itself (so the
    config's output width never disagrees with the model): k for a multiclass model, 2 for a binary
    classifier where the file says so, None where the format does not record it (TorchScript)."""
    if model_format == "lightgbm_text":
        header = model_bytes[: model_bytes.find(b"\nTree=")].decode(errors="replace")
        counts = [int(line.split("=", 1)[1]) for line in header.splitlines() if line.startswith("num_class=")]
        return counts[0] if counts and counts[0] > 1 else None
    if model_format == "xgboost_json":
        try:
            count = int(json.loads(model_bytes)["learner"]["learner_model_param"].get("num_class", "0"))
        except (ValueError, KeyError, TypeError):  # not XGBoost JSON: Treelite's check names that
            return None
        return count if count > 1 else None
    if model_format == ONNX_FORMAT:
        import onnx

        graph = onnx.load_from_string(model_bytes).graph
        floats = [o for o in graph.output if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
        width = floats[-1].type.tensor_type.shape.dim[-1].dim_value if floats else 0
        return width if width > 1 else None
    return None


def model_file_name(model_format: str) -> str:
    """The file the cluster's backend reads in a version folder."""
    if model_format == ONNX_FORMAT:
        return ONNX_MODEL_FILE
    return FIL_MODEL_FILES.get(model_format, TORCH_MODEL_FILE)


def published_location(serving_root: str, model_name: str, version: int, sha256: str) -> str:
    """Where a version's repository is published, write-once and content-addressed:
    `<serving root>/<model>/v<version>-<sha256[:12]>`. The one spelling: promote publishes there
    (components/steps/promote.py publish_repository) and `mlops verify` looks there (mlops/verify.py)."""
    return f"{serving_root.rstrip('/')}/{model_name}/v{version}-{sha256[:12]}"


def write_repository(
    root: Path,
    model_name: str,
    version: int,
    model_format: str,
    model_bytes: bytes,
    features: Sequence[str],
    *,
    gpu: bool,
    threshold: float = 0.5,
    regression: bool = False,
    num_classes: int | None = None,
) -> Path:
    """Lay out <root>/<model_name>/{config.pbtxt, <version>/<model file>}; returns the model folder."""
    names = onnx_graph_names(model_bytes, len(features)) if model_format == ONNX_FORMAT else None
    if num_classes is None and not regression:
        num_classes = classes_of(model_bytes, model_format)
    text = config_pbtxt(
        model_name,
        model_format,
        features,
        gpu=gpu,
        threshold=threshold,
        regression=regression,
        num_classes=num_classes,
        graph_names=names,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),  # what register records as artifact_sha256
    )
    parse_config(text)
    if model_format in FIL_MODEL_FILES:
        check_fil_loadable(model_bytes, model_format, len(features))
    folder = root / model_name
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(text)
    (folder / str(version) / model_file_name(model_format)).write_bytes(model_bytes)
    return folder


def write_python_repository(
    root: Path,
    model_name: str,
    version: int,
    model_format: str,
    model_bytes: bytes,
    features: list[str],
    *,
    objective: str = "binary",
    num_classes: int | None = None,
    max_batch_size: int = 64,
    instance_count: int = 1,
    max_queue_delay_us: int | None = None,
    threshold: float | None = None,
) -> Path:
    """Lay out a python-backend repository that serves the artifact as the pipeline scores it:
    <root>/<model>/{config.pbtxt, <version>/{model.py, model file, metadata.json}}. The config records
    the model file's sha256 and, for a binary model given one, its decision `threshold` (the decision log
    reads both; without a threshold a binary model's decisions are logged without one)."""
    if model_format not in PYTHON_MODEL_FILES:
        raise RepositoryError(f"the local server cannot load model format {model_format!r}")
    names = onnx_graph_names(model_bytes, len(features)) if model_format == ONNX_FORMAT else None
    if num_classes is None and objective != "regression":
        num_classes = classes_of(model_bytes, model_format)
    contract = tensor_contract(
        model_format, regression=objective == "regression", num_classes=num_classes, graph_names=names
    )
    text = python_config_pbtxt(
        model_name,
        features,
        contract=contract,
        max_batch_size=max_batch_size,
        instance_count=instance_count,
        max_queue_delay_us=max_queue_delay_us,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
        decision_threshold=threshold if objective == "binary" and contract.output_width <= 2 else None,
    )
    parse_config(text)
    folder = root / model_name
    version_dir = folder / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(text)
    shutil.copyfile(PYTHON_MODEL_SOURCE, version_dir / "model.py")
    (version_dir / PYTHON_MODEL_FILES[model_format]).write_bytes(model_bytes)
    metadata = {"format": model_format, "features": features, "objective": objective, "tensors": contract.as_json()}
    (version_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return folder
