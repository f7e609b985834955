"""Triton model repositories: what promote publishes and `mlops serve` runs, laid out on disk.

<root>/<model>/config.pbtxt (components.serving.triton_config renders and parses it back) and
<root>/<model>/<version>/ the model file; the local python-backend repository also gets the stub
model (components/serving/triton_stub_model.py, copied in as model.py) and the metadata it reads.
XGBoost models are also loaded with Treelite, the library FIL parses them with: a model file FIL
would refuse (the trap of fil_backend#311 / treelite#633, newer XGBoost JSON in an older loader)
stops promote.

Runs in the component image (promote) and on a laptop (`mlops serve`, the devstack), never in the
transformer's environment, which has neither XGBoost nor Treelite: that is why it is a room apart
from the configuration the transformer reads.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from components.serving.triton_config import (
    FIL_MODEL_FILES,
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
    "model_file_name",
    "write_python_repository",
    "write_repository",
]

PYTHON_MODEL_SOURCE = Path(__file__).resolve().parents[1] / "serving" / "triton_stub_model.py"
"""The python backend's model.py, from the serving room (it runs inside Triton's python stub)."""


# What the local python-backend model reads beside its model file.
PYTHON_MODEL_FILES = {"xgboost_json": "model.json", "torchscript": "model.pt"}


def check_fil_loadable(model_bytes: bytes, model_format: str, n_features: int, *, rows: int = 256) -> float:
    """Load an XGBoost model with Treelite, as FIL does, and compare its predictions with
    XGBoost's own on random rows. Returns the largest absolute difference."""
    import numpy as np
    import treelite
    import xgboost as xgb

    choice = {"xgboost_json": "json", "xgboost_ubj": "ubjson"}[model_format]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / FIL_MODEL_FILES[model_format]
        path.write_bytes(model_bytes)
        try:
            forest = treelite.frontend.load_xgboost_model(str(path), format_choice=choice)
        except Exception as error:
            raise RepositoryError(
                f"Treelite {treelite.__version__} cannot load this {model_format} model, so FIL would refuse it: "
                f"{str(error).splitlines()[0]}"
            ) from error
        if forest.num_feature != n_features:
            raise RepositoryError(
                f"the model expects {forest.num_feature} features, the registration lists {n_features}"
            )
        booster = xgb.Booster()
        booster.load_model(bytearray(model_bytes))
    features = np.random.default_rng(0).normal(0.0, 3.0, size=(rows, n_features)).astype(np.float32)
    ours = np.asarray(treelite.gtil.predict(forest, features)).reshape(rows, -1)[:, -1]
    matrix = xgb.DMatrix(features, feature_names=booster.feature_names)
    theirs = np.asarray(booster.predict(matrix)).reshape(rows, -1)[:, -1]
    difference = float(np.max(np.abs(ours - theirs)))
    if difference > 1e-4:
        raise RepositoryError(
            f"Treelite's predictions differ from XGBoost's by {difference:.2e}; FIL would score wrong"
        )
    return difference


def model_file_name(model_format: str) -> str:
    return FIL_MODEL_FILES.get(model_format, TORCH_MODEL_FILE)


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
) -> Path:
    """Lay out <root>/<model_name>/{config.pbtxt, <version>/<model file>}; returns the model folder."""
    text = config_pbtxt(model_name, model_format, features, gpu=gpu, threshold=threshold, regression=regression)
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
    max_batch_size: int = 64,
    instance_count: int = 1,
    max_queue_delay_us: int | None = None,
) -> Path:
    """Lay out a python-backend repository that serves the artifact as the pipeline scores it:
    <root>/<model>/{config.pbtxt, <version>/{model.py, model file, metadata.json}}."""
    if model_format not in PYTHON_MODEL_FILES:
        raise RepositoryError(f"the local server cannot load model format {model_format!r}")
    contract = tensor_contract(model_format, regression=objective == "regression")
    text = python_config_pbtxt(
        model_name,
        features,
        contract=contract,
        max_batch_size=max_batch_size,
        instance_count=instance_count,
        max_queue_delay_us=max_queue_delay_us,
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
