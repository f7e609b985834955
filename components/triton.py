"""Triton model repositories for the formats train produces.

XGBoost goes to the FIL backend (GPU forest inference), TorchScript to the libtorch backend.
Each config.pbtxt is parsed back into Triton's own ModelConfig protobuf before it is written,
so a bad enum or an unknown field fails here and not when the server loads the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FIL_MODEL_FILES = {"xgboost_json": "xgboost.json"}
TORCH_MODEL_FILE = "model.pt"
FIL_PARAMETERS_REQUIRED = ("model_type", "output_class")


def config_pbtxt(
    model_name: str,
    model_format: str,
    n_features: int,
    *,
    gpu: bool,
    max_batch_size: int = 8192,
    threshold: float = 0.5,
    regression: bool = False,
) -> str:
    """A classifier's FIL model returns both class probabilities ([2]); a regressor's, one value."""
    kind = "KIND_GPU" if gpu else "KIND_CPU"
    if model_format == "xgboost_json":
        parameters = (
            {"model_type": model_format, "output_class": "false", "storage_type": "AUTO"}
            if regression
            else {
                "model_type": model_format,
                "predict_proba": "true",
                "output_class": "true",
                "threshold": str(threshold),
                "storage_type": "AUTO",
            }
        )
        outputs = 1 if regression else 2
        parameter_text = "\n".join(
            f'  {{ key: "{key}" value: {{ string_value: "{value}" }} }}' + ("," if i < len(parameters) - 1 else "")
            for i, (key, value) in enumerate(parameters.items())
        )
        return (
            f'name: "{model_name}"\nbackend: "fil"\nmax_batch_size: {max_batch_size}\n'
            f'input [\n  {{ name: "input__0" data_type: TYPE_FP32 dims: [ {n_features} ] }}\n]\n'
            f'output [\n  {{ name: "output__0" data_type: TYPE_FP32 dims: [ {outputs} ] }}\n]\n'
            f"instance_group [ {{ kind: {kind} count: 1 }} ]\n"
            f"dynamic_batching {{ max_queue_delay_microseconds: 100 }}\n"
            f"parameters [\n{parameter_text}\n]\n"
        )
    if model_format == "torchscript":
        return (
            f'name: "{model_name}"\nplatform: "pytorch_libtorch"\nmax_batch_size: {max_batch_size}\n'
            f'input [\n  {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ {n_features} ] }}\n]\n'
            f'output [\n  {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1 ] }}\n]\n'
            f"instance_group [ {{ kind: {kind} count: 1 }} ]\n"
            f"dynamic_batching {{ max_queue_delay_microseconds: 100 }}\n"
        )
    raise ValueError(f"no Triton repository layout for model format {model_format!r}")


def parse_config(text: str) -> Any:
    """Parse config.pbtxt into tritonclient's ModelConfig; raises on any syntax or schema error."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    text_format.Parse(text, config)
    if config.backend == "fil":
        missing = [key for key in FIL_PARAMETERS_REQUIRED if key not in config.parameters]
        if missing:
            raise ValueError(f"FIL model {config.name} lacks parameters {missing}")
    return config


def model_file_name(model_format: str) -> str:
    return FIL_MODEL_FILES.get(model_format, TORCH_MODEL_FILE)


def write_repository(
    root: Path,
    model_name: str,
    version: int,
    model_format: str,
    model_bytes: bytes,
    n_features: int,
    *,
    gpu: bool,
    threshold: float = 0.5,
    regression: bool = False,
) -> Path:
    """Lay out <root>/<model_name>/{config.pbtxt, <version>/<model file>}; returns the model folder."""
    text = config_pbtxt(model_name, model_format, n_features, gpu=gpu, threshold=threshold, regression=regression)
    parse_config(text)
    folder = root / model_name
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(text)
    (folder / str(version) / model_file_name(model_format)).write_bytes(model_bytes)
    return folder
