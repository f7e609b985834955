"""Run by tests/components/test_request_log.py in the transformer's environment (.venv-transformer, where
kserve is): drives ScoringTransformer through KServe's own Model.__call__ (preprocess, predict,
postprocess), as the ModelServer's dataplane calls it, with a join stand-in and a Triton stand-in, for
answered and failed requests; prints the outcomes the decision log recorded under `_requests/` and the
per-version figures /metrics exposes (the collector on prometheus_client's default registry)."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from typing import Any

import numpy as np
import pyarrow.dataset as ds
from kserve.protocol.infer_type import InferOutput, InferResponse
from prometheus_client import REGISTRY
from pyarrow import fs

from components.config import ScoringSettings
from components.serving.decision_log import DecisionLog, Identity
from components.serving.scoring import Joined, RequestError
from components.serving.transformer import PredictorModel, ScoringTransformer
from components.serving.triton_config import TensorContract


class Joiner:
    """The Redis join: answers `rows` x 2 features, or refuses a row without `id` as a bad request, or
    fails as an unreachable Redis (ConnectionError, transient: the transformer answers 503)."""

    redis_down = False

    async def join(self, rows: list[dict[str, Any]]) -> Joined:
        if self.redis_down:
            raise ConnectionError("redis: connection refused")
        if any("id" not in row for row in rows):
            raise RequestError("transformer", "the request has no id", "send id")
        matrix = np.zeros((len(rows), 2), dtype=np.float32)
        return Joined(matrix, {"a": [0.0] * len(rows), "b": [0.0] * len(rows)}, {}, [False] * len(rows))


class Triton:
    """The predictor: answers version `version` after `delay` seconds, or fails while `down`."""

    def __init__(self) -> None:
        self.version, self.delay, self.down = "3", 0.0, False

    async def __call__(self, request: Any) -> InferResponse:
        await asyncio.sleep(self.delay)
        if self.down:
            raise ConnectionError("triton: unavailable")
        rows = request.inputs[0].shape[0]
        tensor = InferOutput("output__0", [rows, 2], "FP32")
        tensor.set_data_from_numpy(np.tile(np.asarray([[0.4, 0.6]], dtype=np.float32), (rows, 1)), binary_data=True)
        return InferResponse(response_id="r", model_name="m", infer_outputs=[tensor], model_version=self.version)


async def drive(transformer: ScoringTransformer, joiner: Joiner, triton: Triton) -> list[int]:
    """Requests in order; the HTTP code each got (KServe's handlers' mapping of the exception)."""
    from components.serving.transformer import http_code_of

    steps: list[tuple[str, dict[str, Any]]] = [
        ("failed-before-any-answer", {"triton_down": True}),
        ("ok-1", {}),
        ("ok-slow", {"delay": 0.2}),
        ("bad-field", {"body": {"instances": [{"nope": 1}]}}),
        ("redis-down", {"redis_down": True}),
        ("ok-v4", {"version": "4"}),
        ("redis-down-two-versions", {"redis_down": True}),
    ]
    codes = []
    for request_id, step in steps:
        joiner.redis_down = bool(step.get("redis_down"))
        triton.down, triton.delay = bool(step.get("triton_down")), float(step.get("delay", 0.0))
        triton.version = str(step.get("version", "3"))
        body = step.get("body", {"instances": [{"id": 1}, {"id": 2}]})
        try:
            await transformer(body, {"x-request-id": request_id})
            codes.append(200)
        except Exception as error:
            codes.append(http_code_of(error))
    return codes


def main() -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="request-outcome-probe-")
    transformer = ScoringTransformer("m", predictor_grpc="", project="p", feature_service="s", entity_column="id",
                                     request_features=[], settings=ScoringSettings())  # fmt: skip
    transformer.model = PredictorModel(["a", "b"], TensorContract("input__0", "output__0", 2), 8, "c" * 64, 0.5)
    joiner, triton = Joiner(), Triton()
    transformer.joiner = joiner  # type: ignore[assignment]
    transformer._grpc_predict = triton  # type: ignore[method-assign]
    identity = Identity("ns", "m", "c" * 64, "canary", "local", "id", 0.5)
    transformer.decision_log = DecisionLog(identity, fs.LocalFileSystem(), folder, spill_dir=f"{folder}-spill")
    transformer.outcomes.role = "canary"
    transformer.ready = True
    codes = asyncio.run(drive(transformer, joiner, triton))
    transformer.stop()  # KServe's shutdown: the log is flushed
    outcomes = ds.dataset(f"{folder}/_requests", format="parquet", partitioning="hive").to_table()
    decisions = ds.dataset(folder, format="parquet", partitioning="hive").to_table()  # `_requests` is skipped
    metrics = {}
    for version in ("3", "4", "unattributed"):
        for code_class in ("2xx", "4xx", "5xx"):
            labels = {"model": "m", "version": version, "role": "canary", "code_class": code_class}
            metrics[f"{version}/{code_class}"] = REGISTRY.get_sample_value("mlops_transformer_requests_total", labels)
        labels = {"model": "m", "version": version, "role": "canary"}
        metrics[f"{version}/count"] = REGISTRY.get_sample_value("mlops_transformer_request_seconds_count", labels)
        metrics[f"{version}/le0.1"] = REGISTRY.get_sample_value(
            "mlops_transformer_request_seconds_bucket", {**labels, "le": "0.1"}
        )
    return {
        "codes": codes,
        "outcomes": sorted(outcomes.drop(["answered_at"]).to_pylist(), key=lambda row: row["request_id"]),
        "decision_requests": sorted(set(decisions.column("request_id").to_pylist())),
        "metrics": metrics,
    }


if __name__ == "__main__":
    print(json.dumps(main(), default=str))
    sys.exit(0)
