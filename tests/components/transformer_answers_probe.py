"""Run by tests/components/test_transformer_answers.py in the transformer's environment
(.venv-transformer, where kserve is): drives ScoringTransformer.predict with a Triton stand-in
that answers a fixed output tensor, for V1, V2 REST and V2 gRPC, and prints what each answered and what
the decision log recorded for each (flushed by the model's stop, as KServe's shutdown calls it)."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from typing import Any

import numpy as np
import pyarrow.dataset as ds
from kserve.protocol.infer_type import InferOutput, InferResponse
from pyarrow import fs

from components.config import ScoringSettings
from components.serving.decision_log import DecisionLog, Identity
from components.serving.transformer import PredictorModel, Scoring, ScoringTransformer
from components.serving.triton_config import TensorContract


class Triton:
    """The predictor's gRPC answer: `output__0` holding the given (n, width) tensor."""

    def __init__(self, output: np.ndarray) -> None:
        self.output = output

    async def __call__(self, request: Any) -> InferResponse:
        tensor = InferOutput("output__0", list(self.output.shape), "FP32")
        tensor.set_data_from_numpy(self.output, binary_data=True)
        return InferResponse(response_id="r", model_name="m", infer_outputs=[tensor], model_version="3")


def answers(output: list[list[float]]) -> dict[str, Any]:
    values = np.asarray(output, dtype=np.float32)
    transformer = ScoringTransformer("m", predictor_grpc="", project="p", feature_service="s", entity_column="id",
                                     request_features=[], settings=ScoringSettings())  # fmt: skip
    transformer.model = PredictorModel(["a", "b"], TensorContract("input__0", "output__0", values.shape[1]), 8)
    transformer._grpc_predict = Triton(values)  # type: ignore[method-assign]
    matrix = np.arange(len(values) * 2, dtype=np.float32).reshape(len(values), 2)
    result: dict[str, Any] = {}
    folder = tempfile.mkdtemp(prefix="decision-log-probe-")
    threshold = 0.5 if values.shape[1] == 2 else None  # a binary model's, as its config would record it
    identity = Identity("ns", "m", "c" * 64, "champion", "local", "id", threshold)
    transformer.decision_log = DecisionLog(identity, fs.LocalFileSystem(), folder, spill_dir=f"{folder}-spill")
    for label, v2, grpc in (("v1", False, False), ("v2", True, False), ("grpc", True, True)):
        scoring = Scoring(label, matrix, {"a": [0.0] * len(values), "b": [0.0] * len(values)},
                          [False] * len(values), False, v2, grpc, [{"id": i} for i in range(len(values))])  # fmt: skip
        answer = asyncio.run(transformer.predict(scoring))
        if not v2:
            result[label] = answer
            continue
        result[label] = {
            o.name: {"shape": list(o.shape), "datatype": o.datatype, "data": np.asarray(o.as_numpy()).tolist()}
            for o in answer.outputs
        }
        if grpc:  # packed as the gRPC server sends it: each output's shape and raw bytes, read back
            packed = answer.to_grpc()
            kinds = {"FP32": np.float32, "INT64": np.int64, "BOOL": np.bool_}
            result["grpc_wire"] = {
                o.name: {
                    "shape": list(o.shape),
                    "data": np.frombuffer(raw, kinds[o.datatype]).reshape(o.shape).tolist(),
                }
                for o, raw in zip(packed.outputs, packed.raw_output_contents, strict=True)
            }
    transformer.stop()  # KServe's shutdown: the log is flushed
    logged = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
    columns = ["decision_id", "entity_id", "feature_values", "score", "class_scores", "threshold", "decision"]
    result["logged"] = sorted(logged.select(columns).to_pylist(), key=lambda row: row["decision_id"])
    return result


if __name__ == "__main__":
    print(json.dumps(answers(json.loads(sys.argv[1]))))
