"""Triton model configurations for the formats train produces: written, parsed back, and read.

Cluster configurations (the GPU serving image):
- tree models go to the FIL backend (GPU forest inference): XGBoost JSON or UBJSON, LightGBM text;
- TorchScript goes to the libtorch backend;
- ONNX (a scikit-learn estimator or Pipeline converted by skl2onnx) goes to the onnxruntime backend,
  its tensors named as the ONNX graph names them (the repository writer reads them from the file).
A classifier answers its class probabilities ([2], or [k] for a multiclass model); a regressor one value.
Local configurations (`mlops serve`, the CPU tritonserver bundled by nvidia-pytriton) use the
python backend (components/serving/triton_stub_model.py) behind exactly the cluster's tensors
(`tensor_contract`): names, FP32, dims.

Every config.pbtxt is parsed back into Triton's own ModelConfig protobuf and then checked for
what protobuf cannot see (the backend's free-string parameters, tensor names, batching), so a
bad repository fails here and not when the server loads it. The scoring transformer reads the
predictor's config with the same functions (`features_of`, `contract_of`, `validate_config`), so
this module runs in the transformer's environment and needs only tritonclient's protobufs: the
repository writer, which loads models with XGBoost and Treelite, is components.steps.triton_repository.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BOOLEAN_STRINGS",
    "FEATURES_PARAMETER",
    "FIL_MODEL_FILES",
    "FIL_MODEL_TYPES",
    "FIL_MODEL_TYPE_OF_FORMAT",
    "FIL_PARAMETERS_REQUIRED",
    "FIL_STORAGE_TYPES",
    "LIBTORCH_TENSOR_NAME",
    "ONNXRUNTIME_BACKENDS",
    "ONNX_FORMAT",
    "ONNX_MODEL_FILE",
    "SHA256_PARAMETER",
    "THRESHOLD_PARAMETER",
    "TORCH_MODEL_FILE",
    "RepositoryError",
    "TensorContract",
    "backend_of",
    "config_pbtxt",
    "contract_of",
    "features_of",
    "parse_config",
    "python_config_pbtxt",
    "sha256_of",
    "tensor_contract",
    "threshold_of",
    "validate_config",
]

FIL_MODEL_FILES = {"xgboost_json": "xgboost.json", "xgboost_ubj": "xgboost.ubj", "lightgbm_text": "model.txt"}
"""The file FIL reads for each tree format it serves (FIL's default file name per model_type)."""
FIL_MODEL_TYPE_OF_FORMAT = {"xgboost_json": "xgboost_json", "xgboost_ubj": "xgboost_ubj", "lightgbm_text": "lightgbm"}
"""FIL's model_type parameter for each of the pipeline's tree formats."""
TORCH_MODEL_FILE = "model.pt"
ONNX_FORMAT = "onnx"
ONNX_MODEL_FILE = "model.onnx"
ONNXRUNTIME_BACKENDS = {"onnxruntime"}
ONNXRUNTIME_PLATFORMS = {"onnxruntime_onnx"}
FIL_MODEL_TYPES = {"xgboost", "xgboost_json", "xgboost_ubj", "lightgbm", "treelite_checkpoint"}
FIL_STORAGE_TYPES = {"AUTO", "DENSE", "SPARSE", "SPARSE8"}
FIL_PARAMETERS_REQUIRED = ("model_type", "output_class")
BOOLEAN_STRINGS = {"true", "false"}
# libtorch addresses tensors by position: names must end in __<index>.
LIBTORCH_TENSOR_NAME = re.compile(r"^[A-Za-z0-9_]+__\d+$")


class RepositoryError(ValueError):
    """A model repository Triton would refuse or misread; the message names the field."""


@dataclass(frozen=True)
class TensorContract:
    """What a client sends and reads back: one tensor in, one out, FP32. The cluster's backend
    decides it, and the local server exposes exactly the same, so a client tested on a laptop
    works against production."""

    input: str
    output: str
    output_width: int
    """Classifiers on FIL and ONNX answer their class probabilities ([P(0), P(1)], or k of them for
    a multiclass model); a regressor and a binary TorchScript model one value."""

    def scores(self, output: Any) -> Any:
        """The score per row from the output tensor: the positive-class probability, or the value;
        for a multiclass model (width above 2) every class's probability, one row each."""
        import numpy as np

        values = np.asarray(output).reshape(-1, self.output_width)
        return values if self.output_width > 2 else values[:, -1]

    def as_json(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "output_width": self.output_width}


def tensor_contract(
    model_format: str,
    *,
    regression: bool = False,
    num_classes: int | None = None,
    graph_names: tuple[str, str] | None = None,
) -> TensorContract:
    """The tensors of a model format as the cluster serves it: FIL for tree models, libtorch for
    TorchScript, onnxruntime for ONNX (whose names are the graph's: `graph_names`, input and output).
    `num_classes` above 2 is a multiclass model: one probability per class."""
    multiclass = num_classes is not None and num_classes > 2
    if multiclass and regression:
        raise RepositoryError(f"a regressor has no classes, got num_classes={num_classes}")
    classes = num_classes if multiclass and num_classes is not None else 2
    if model_format in FIL_MODEL_FILES:
        return TensorContract("input__0", "output__0", 1 if regression else classes)
    if model_format == "torchscript":  # libtorch addresses tensors by position
        return TensorContract("INPUT__0", "OUTPUT__0", classes if multiclass else 1)
    if model_format == ONNX_FORMAT:
        if graph_names is None:
            raise RepositoryError("an ONNX model's tensors are named by its graph: pass the graph's input and output")
        return TensorContract(graph_names[0], graph_names[1], 1 if regression else classes)
    raise RepositoryError(f"no Triton repository layout for model format {model_format!r}")


def _parameters(parameters: dict[str, str]) -> str:
    rows = [f'  {{ key: "{key}" value: {{ string_value: "{value}" }} }}' for key, value in parameters.items()]
    return "parameters [\n" + ",\n".join(rows) + "\n]\n"


def _batching(max_queue_delay_us: int | None) -> str:
    if max_queue_delay_us is None:
        return ""
    return f"dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_us} }}\n"


FEATURES_PARAMETER = "mlops_features"
"""The config parameter that records the model's input columns, in order (a JSON list). Backends
ignore parameters they do not read; the scoring transformer reads it from the predictor it calls,
so the column order always comes from the model being served, never from a second list."""


def _pbtxt_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


SHA256_PARAMETER = "mlops_model_sha256"
"""The sha256 of the model file the repository serves (the registration's artifact_sha256): the
decision log records it per decision, read from the predictor's config, never recomputed per request."""
THRESHOLD_PARAMETER = "mlops_decision_threshold"
"""A binary model's decision threshold (what promote publishes it with, `evaluate.decision_threshold`):
the decision log's decision is score >= it. Absent for regression and multiclass models."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _features_parameter(
    features: Sequence[str], model_sha256: str | None = None, decision_threshold: float | None = None
) -> dict[str, str]:
    """The parameters the transformer reads back: the column order, and what the decision log records."""
    parameters = {FEATURES_PARAMETER: _pbtxt_string(json.dumps(list(features)))}
    if model_sha256 is not None:
        if not _SHA256.match(model_sha256):
            raise RepositoryError(f"{SHA256_PARAMETER} {model_sha256!r} is not a sha256 (64 lowercase hex)")
        parameters[SHA256_PARAMETER] = model_sha256
    if decision_threshold is not None:
        if not 0.0 <= decision_threshold <= 1.0:
            raise RepositoryError(f"{THRESHOLD_PARAMETER} {decision_threshold} is outside [0, 1]")
        parameters[THRESHOLD_PARAMETER] = repr(float(decision_threshold))
    return parameters


def sha256_of(config: Any) -> str | None:
    """The served model file's sha256 from a parsed config; None for a repository published before it
    was recorded (republish it: mlops promote, or restart mlops serve)."""
    text = _string_parameter(config, SHA256_PARAMETER)
    if text is not None and not _SHA256.match(text):
        raise RepositoryError(f"model {config.name}: {SHA256_PARAMETER} {text!r} is not a sha256")
    return text


def threshold_of(config: Any) -> float | None:
    """A binary model's decision threshold from a parsed config; None where none is recorded."""
    text = _string_parameter(config, THRESHOLD_PARAMETER)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError as error:
        raise RepositoryError(f"model {config.name}: {THRESHOLD_PARAMETER} {text!r} is not a number") from error
    if not 0.0 <= value <= 1.0:
        raise RepositoryError(f"model {config.name}: {THRESHOLD_PARAMETER} {value} is outside [0, 1]")
    return value


def features_of(config: Any) -> list[str]:
    """The model's input columns, in order, from a parsed config (its `mlops_features` parameter)."""
    text = _string_parameter(config, FEATURES_PARAMETER)
    if text is None:
        raise RepositoryError(
            f"model {config.name or '?'} records no {FEATURES_PARAMETER} parameter: its column order is unknown"
        )
    features = json.loads(text)
    width = list(config.input[0].dims)[-1] if config.input else None
    if not isinstance(features, list) or len(features) != width:
        raise RepositoryError(f"model {config.name}: {FEATURES_PARAMETER} lists {features!r}, the input has {width}")
    return [str(name) for name in features]


def contract_of(config: Any) -> TensorContract:
    """The tensor contract a parsed config declares (what the transformer sends and reads back)."""
    return TensorContract(config.input[0].name, config.output[0].name, int(list(config.output[0].dims)[-1]))


def _tensors(section: str, name: str, dims: int) -> str:
    return f'{section} [\n  {{ name: "{name}" data_type: TYPE_FP32 dims: [ {dims} ] }}\n]\n'


def config_pbtxt(
    model_name: str,
    model_format: str,
    features: Sequence[str],
    *,
    gpu: bool,
    max_batch_size: int = 8192,
    threshold: float = 0.5,
    regression: bool = False,
    instance_count: int = 1,
    max_queue_delay_us: int | None = 100,
    num_classes: int | None = None,
    graph_names: tuple[str, str] | None = None,
    model_sha256: str | None = None,
) -> str:
    """The cluster repository's config. A classifier's FIL or ONNX model returns its class
    probabilities ([2], [k] for k classes); a regressor's, one value. The feature names ride along
    as a parameter, with the model file's sha256 and, for a binary model, `threshold` as the decision
    threshold (what the decision log records)."""
    kind = "KIND_GPU" if gpu else "KIND_CPU"
    head = f'name: "{model_name}"\n'
    contract = tensor_contract(model_format, regression=regression, num_classes=num_classes, graph_names=graph_names)
    binary = not regression and contract.output_width <= 2
    mlops = _features_parameter(features, model_sha256, threshold if binary else None)
    tensors = _tensors("input", contract.input, len(features))
    tensors += _tensors("output", contract.output, contract.output_width)
    tail = f"instance_group [ {{ kind: {kind} count: {instance_count} }} ]\n" + _batching(max_queue_delay_us)
    if model_format in FIL_MODEL_FILES:
        parameters = (
            {"model_type": FIL_MODEL_TYPE_OF_FORMAT[model_format], "output_class": "false", "storage_type": "AUTO"}
            if regression
            else {
                "model_type": FIL_MODEL_TYPE_OF_FORMAT[model_format],
                "predict_proba": "true",
                "output_class": "true",
                "threshold": str(threshold),
                "storage_type": "AUTO",
            }
        )
        parameters |= mlops
        return head + f'backend: "fil"\nmax_batch_size: {max_batch_size}\n' + tensors + tail + _parameters(parameters)
    if model_format == "torchscript":
        platform = f'platform: "pytorch_libtorch"\nmax_batch_size: {max_batch_size}\n'
        return head + platform + tensors + tail + _parameters(mlops)
    if model_format == ONNX_FORMAT:
        backend = f'backend: "onnxruntime"\nmax_batch_size: {max_batch_size}\n'
        return head + backend + tensors + tail + _parameters(mlops)
    raise RepositoryError(f"no Triton repository layout for model format {model_format!r}")


def python_config_pbtxt(
    model_name: str,
    features: Sequence[str],
    *,
    contract: TensorContract = TensorContract("INPUT__0", "OUTPUT__0", 1),
    max_batch_size: int = 64,
    instance_count: int = 1,
    max_queue_delay_us: int | None = None,
    model_sha256: str | None = None,
    decision_threshold: float | None = None,
) -> str:
    """The local repository's config: the python backend, with the tensors of `contract` (the
    cluster's, for a model the pipeline trained), and the parameters the decision log reads."""
    return (
        f'name: "{model_name}"\nbackend: "python"\nmax_batch_size: {max_batch_size}\n'
        + _tensors("input", contract.input, len(features))
        + _tensors("output", contract.output, contract.output_width)
        + f"instance_group [ {{ kind: KIND_CPU count: {instance_count} }} ]\n"
        + _batching(max_queue_delay_us)
        + _parameters(_features_parameter(features, model_sha256, decision_threshold))
    )


def _string_parameter(config: Any, key: str) -> str | None:
    if key not in config.parameters:
        return None
    return str(config.parameters[key].string_value)


def _fil_problems(config: Any) -> list[str]:
    problems = [f"FIL model lacks parameter {key!r}" for key in FIL_PARAMETERS_REQUIRED if key not in config.parameters]
    model_type = _string_parameter(config, "model_type")
    if model_type is not None and model_type not in FIL_MODEL_TYPES:
        problems.append(f"FIL model_type {model_type!r} is not one of {sorted(FIL_MODEL_TYPES)}")
    for key in ("output_class", "predict_proba"):
        value = _string_parameter(config, key)
        if value is not None and value not in BOOLEAN_STRINGS:
            problems.append(f"FIL {key} must be the string true or false, got {value!r}")
    storage = _string_parameter(config, "storage_type")
    if storage is not None and storage not in FIL_STORAGE_TYPES:
        problems.append(f"FIL storage_type {storage!r} is not one of {sorted(FIL_STORAGE_TYPES)}")
    threshold = _string_parameter(config, "threshold")
    if threshold is not None:
        try:
            if not 0.0 <= float(threshold) <= 1.0:
                problems.append(f"FIL threshold {threshold} is outside [0, 1]")
        except ValueError:
            problems.append(f"FIL threshold {threshold!r} is not a number")
    if [t.name for t in config.input] != ["input__0"] or [t.name for t in config.output] != ["output__0"]:
        problems.append("FIL models take exactly one input input__0 and one output output__0")
    proba = _string_parameter(config, "predict_proba") == "true"
    classes = _string_parameter(config, "output_class") == "true"
    dims = list(config.output[0].dims) if config.output else None
    if proba and classes and dims is not None and (len(dims) != 1 or dims[0] < 2):
        problems.append(f"FIL output__0 must have dims [2] (or [k] for k classes) for these parameters, got {dims}")
    if not (proba and classes) and dims is not None and dims != [1]:
        problems.append(f"FIL output__0 must have dims [1] for these parameters, got {dims}")
    return problems


def _onnxruntime_problems(config: Any) -> list[str]:
    problems = []
    if len(config.input) != 1 or len(config.output) != 1:
        problems.append("the ONNX model serves one input and one output tensor (the one tensor contract)")
    if config.output and (len(config.output[0].dims) != 1):
        problems.append(
            f"ONNX output {config.output[0].name} must be one row of scores, got {list(config.output[0].dims)}"
        )
    return problems


def validate_config(config: Any) -> list[str]:
    """Problems Triton would report at load time (or worse, silently misread); empty if none."""
    problems: list[str] = []
    if not config.name:
        problems.append("config has no name")
    if not config.backend and not config.platform:
        problems.append("config names neither a backend nor a platform")
    if not config.input or not config.output:
        problems.append("config declares no input or no output tensor")
    for tensor in list(config.input) + list(config.output):
        if tensor.data_type != 11:  # TYPE_FP32: the pipeline's features and scores are float32
            problems.append(f"tensor {tensor.name} is not TYPE_FP32")
        if not tensor.dims or any(d == 0 or d < -1 for d in tensor.dims):
            problems.append(f"tensor {tensor.name} has invalid dims {list(tensor.dims)}")
    if config.HasField("dynamic_batching") and config.max_batch_size <= 0:
        problems.append("dynamic_batching needs max_batch_size > 0")
    for group in config.instance_group:
        if group.count < 1:
            problems.append("instance_group count must be at least 1")
    if config.backend == "fil":
        problems.extend(_fil_problems(config))
    if config.backend in ONNXRUNTIME_BACKENDS or config.platform in ONNXRUNTIME_PLATFORMS:
        problems.extend(_onnxruntime_problems(config))
    if config.platform == "pytorch_libtorch":
        for tensor in list(config.input) + list(config.output):
            if not LIBTORCH_TENSOR_NAME.match(tensor.name):
                problems.append(f"libtorch tensor {tensor.name!r} must be named <name>__<index>")
    return problems


def backend_of(config: Any) -> str:
    """The Triton backend a parsed config loads, as a model kind names it (`triton_backend`):
    fil, pytorch (libtorch), onnxruntime or python."""
    if config.platform == "pytorch_libtorch":
        return "pytorch"
    if config.platform in ONNXRUNTIME_PLATFORMS:
        return "onnxruntime"
    return str(config.backend)


def parse_config(text: str) -> Any:
    """Parse config.pbtxt into tritonclient's ModelConfig; raises RepositoryError on any syntax,
    schema or backend-parameter problem."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise RepositoryError(f"config.pbtxt does not parse as Triton's ModelConfig: {error}") from error
    problems = validate_config(config)
    if problems:
        raise RepositoryError(f"model {config.name or '?'}: " + "; ".join(problems))
    return config
