"""Triton python-backend model for the local server (`mlops serve`).

Copied into <repository>/<model>/<version>/model.py; it runs inside tritonserver's python stub,
in the serving environment (numpy<2), so it imports nothing from this package. It scores
exactly as components.steps.model_formats.load_predictor does, behind the tensors the cluster's backend has
(metadata.json's "tensors", components.serving.triton_config.tensor_contract): FIL's input__0 and output__0 with
the class probabilities ([P(0), P(1)], or k of them) for a classifier, XGBoost's and LightGBM's
alike; libtorch's INPUT__0 and OUTPUT__0 with one value per row; an ONNX graph's own input and
float output (onnxruntime runs it, as the cluster's onnxruntime backend does).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        folder = Path(args["model_repository"]) / args["model_version"]
        metadata = json.loads((folder / "metadata.json").read_text())
        threads = int(os.environ.get("MLOPS_SERVING_THREADS", "1"))
        if metadata["format"] == "xgboost_json":
            import xgboost as xgb

            booster = xgb.Booster()
            booster.load_model(bytearray((folder / "model.json").read_bytes()))
            booster.set_param({"device": "cpu", "nthread": threads})

            def predict(features: np.ndarray) -> np.ndarray:
                # columns arrive in metadata["features"] order (the config's INPUT__0 contract)
                return np.asarray(booster.inplace_predict(features))

        elif metadata["format"] == "torchscript":
            import torch

            torch.set_num_threads(threads)
            module = torch.jit.load(str(folder / "model.pt"), map_location="cpu")  # type: ignore[no-untyped-call]
            module.eval()

            def predict(features: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    return np.asarray(module(torch.from_numpy(np.ascontiguousarray(features))).numpy())

        elif metadata["format"] == "lightgbm_text":
            import lightgbm as lgb

            lgb_booster = lgb.Booster(model_str=(folder / "model.txt").read_text(), params={"num_threads": threads})

            def predict(features: np.ndarray) -> np.ndarray:
                return np.asarray(lgb_booster.predict(features, num_threads=threads))

        elif metadata["format"] == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
            graph_input, graph_output = metadata["tensors"]["input"], metadata["tensors"]["output"]

            def predict(features: np.ndarray) -> np.ndarray:
                return np.asarray(session.run([graph_output], {graph_input: features})[0])

        else:
            raise ValueError(f"unknown model format {metadata['format']!r}")
        self.predict = predict
        tensors = metadata.get("tensors", {"input": "INPUT__0", "output": "OUTPUT__0", "output_width": 1})
        self.input, self.output, self.width = tensors["input"], tensors["output"], int(tensors["output_width"])

    def scores(self, features: np.ndarray) -> np.ndarray:
        """One row of `width` FP32 values per input row: a model that answers P(positive) alone is
        widened to [P(0), P(1)] where the contract has both (as FIL answers a classifier)."""
        scores = np.asarray(self.predict(features), dtype=np.float32)
        if scores.ndim == 1 or scores.shape[1] == 1:
            scores = scores.reshape(-1, 1)
            if self.width == 2:
                scores = np.hstack([1.0 - scores, scores])
        return scores.reshape(-1, self.width).astype(np.float32, copy=False)

    def execute(self, requests: list[Any]) -> list[Any]:
        # Dynamic batching hands several requests over at once: score them as one matrix.
        inputs = [pb_utils.get_input_tensor_by_name(request, self.input).as_numpy() for request in requests]
        scores = self.scores(np.concatenate(inputs).astype(np.float32, copy=False))
        responses = []
        start = 0
        for block in inputs:
            end = start + len(block)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output, scores[start:end])]))
            start = end
        return responses
