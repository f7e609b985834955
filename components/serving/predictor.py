"""The Triton predictor as the scoring transformer sees it: what it serves, read from its own config.

KServe's V2 protocol has no call for a model's config, so the transformer asks Triton's gRPC
ModelConfig call directly (`fetch_model_config`) and reads, once at start, what every request and
every decision record needs: the model's input columns in order (`mlops_features`), its tensors and
batch limit, and what the decision log records (`mlops_model_sha256`, and a binary model's
`mlops_decision_threshold`: components/serving/triton_config.py). Split out of
components/serving/transformer.py; it runs in the transformer's environment (grpc, tritonclient's
protobufs, no kserve needed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.errors import ComponentError, TransientError
from components.serving.triton_config import (
    RepositoryError,
    TensorContract,
    contract_of,
    features_of,
    sha256_of,
    threshold_of,
)

__all__ = ["STEP", "PredictorModel", "describe_predictor", "fetch_model_config"]

STEP = "transformer"


@dataclass(frozen=True)
class PredictorModel:
    """What the predictor serves, read from its own config: columns in order, tensors, batch limit."""

    features: list[str]
    contract: TensorContract
    max_batch_size: int
    model_sha256: str | None = None
    """The served model file's sha256 (the registration's artifact_sha256); None for a repository
    published before issue 32, which the decision log refuses to record under. Read from the config a
    tenant's key could overwrite, so on the cluster it is trusted only because the predictor started:
    its command (components/serving/served_bytes.py) checked this config and the model's bytes against
    the sha256 promote pinned in the InferenceService."""
    threshold: float | None = None
    """A binary model's decision threshold; None for regression, multiclass, or an older repository."""


def _model_config_class() -> Any:
    """Triton's ModelConfig message, loaded from tritonclient's model_config_pb2 file alone: the
    tritonclient.grpc package registers Triton's service protos, whose names (inference.*) collide
    with KServe's own V2 protos in protobuf's default pool ("duplicate symbol")."""
    import importlib.util
    import sys

    name = "mlops_triton_model_config_pb2"
    if name not in sys.modules:
        package = importlib.util.find_spec("tritonclient")
        assert package is not None and package.submodule_search_locations
        path = Path(package.submodule_search_locations[0]) / "grpc" / "model_config_pb2.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name].ModelConfig


def _length_delimited(tag: int, payload: bytes) -> bytes:
    size, length = bytearray(), len(payload)
    while True:
        size.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            return bytes([tag]) + bytes(size) + payload


def fetch_model_config(channel: Any, model_name: str, timeout: float = 5.0) -> Any:
    """The predictor's ModelConfig over Triton's gRPC ModelConfig call (KServe's V2 protocol has none)."""
    call = channel.unary_unary("/inference.GRPCInferenceService/ModelConfig")
    reply: bytes = call(_length_delimited(0x0A, model_name.encode()), timeout=timeout)  # ModelConfigRequest.name
    # ModelConfigResponse is one field, config (1): its bytes follow the tag and length.
    position, length, shift = 1, 0, 0
    while True:
        byte = reply[position]
        length |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if not byte & 0x80:
            break
    return _model_config_class().FromString(reply[position : position + length])


def describe_predictor(grpc_url: str, model_name: str, *, wait_seconds: float = 600.0) -> PredictorModel:
    """Ask the Triton predictor for the model's config, waiting while it loads (on a cluster the
    transformer and the predictor start independently; the transformer is not ready before it)."""
    import grpc

    from components.serving.triton_config import validate_config

    deadline, last = time.monotonic() + wait_seconds, ""
    with grpc.insecure_channel(grpc_url) as channel:
        while True:
            try:
                config = fetch_model_config(channel, model_name)
                break
            except grpc.RpcError as error:  # not up, or the model still loading: wait until the deadline
                last = f"{error.code().name}: {error.details()}"
            if time.monotonic() > deadline:
                raise TransientError(
                    STEP,
                    f"the predictor at {grpc_url} did not serve {model_name} within {wait_seconds:.0f} s ({last})",
                    "check the predictor's pod log; --predictor_host must be its gRPC host:port",
                )
            time.sleep(0.5)
    problems = validate_config(config)  # the same checks promote ran on the published config
    if problems:
        raise ComponentError(STEP, f"the predictor's config for {model_name}: {'; '.join(problems)}",
                             "promote the model again (mlops promote) so its repository is republished")  # fmt: skip
    try:
        features, contract = features_of(config), contract_of(config)
        model_sha256, threshold = sha256_of(config), threshold_of(config)
    except RepositoryError as error:
        raise ComponentError(STEP, str(error), "promote the model with this version of private-mlops") from error
    return PredictorModel(
        features=features,
        contract=contract,
        max_batch_size=max(int(config.max_batch_size), 1),
        model_sha256=model_sha256,
        threshold=threshold,
    )
