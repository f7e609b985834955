"""The scoring transformer's answer for each objective (issue 31 item 2): a multiclass model's
predictor answers (n, k) probabilities, which the transformer answers as k probabilities per row
and the argmax class (`predicted_class`), with shapes that hold over V1, V2 REST and V2 gRPC; a
binary or regression model still answers one score per row. The transformer runs in its own
environment (kserve), so ScoringTransformer.predict is driven there by a probe script with a Triton
stand-in; components.serving.answers, numpy only, is checked here directly."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.serving.answers import v1_answer, v2_columns

ROOT = Path(__file__).resolve().parents[2]
TRANSFORMER_PYTHON = ROOT / ".venv-transformer" / "bin" / "python"


def _probe(output: list[list[float]]) -> dict[str, Any]:
    if not TRANSFORMER_PYTHON.exists():
        pytest.fail("the transformer's environment is missing: make transformer-env")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [str(TRANSFORMER_PYTHON), "-m", "tests.components.transformer_answers_probe", json.dumps(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_multiclass_model_answers_k_probabilities_and_the_argmax_class() -> None:
    """issue 31: a multiclass predictor's (n, k) scores; before, V2 declared them shape [n] (gRPC
    refused to pack them) and nothing named the decided class. Binary and regression: the controls."""
    multiclass = [[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]
    answered = _probe(multiclass)
    assert np.allclose(answered["v1"]["predictions"], multiclass) and answered["v1"]["predicted_class"] == [1, 0]
    for protocol in ("v2", "grpc"):
        score, chosen = answered[protocol]["score"], answered[protocol]["predicted_class"]
        assert score["shape"] == [2, 3] and score["datatype"] == "FP32" and np.allclose(score["data"], multiclass)
        assert chosen == {"shape": [2], "datatype": "INT64", "data": [1, 0]}
        assert answered[protocol]["unknown_entity"]["shape"] == [2]
    wire = answered["grpc_wire"]  # the protobuf the gRPC server sends, packed and read back
    assert wire["score"]["shape"] == [2, 3] and np.allclose(wire["score"]["data"], multiclass)
    assert wire["predicted_class"] == {"shape": [2], "data": [1, 0]}
    binary = _probe([[0.9, 0.1], [0.2, 0.8]])
    assert np.allclose(binary["v1"]["predictions"], [0.1, 0.8]) and "predicted_class" not in binary["v1"]
    assert binary["grpc"]["score"]["shape"] == [2] and set(binary["grpc"]) == {"score", "unknown_entity"}
    regression = _probe([[12.5], [-3.0]])  # a regressor's one value per row
    assert regression["v1"]["predictions"] == [12.5, -3.0] and "predicted_class" not in regression["v1"]
    assert regression["v2"]["score"] == {"shape": [2], "datatype": "FP32", "data": [12.5, -3.0]}
    # issue 32: every scored row of every protocol is in the decision log, decided per objective
    ids = ["grpc/0", "grpc/1", "v1/0", "v1/1", "v2/0", "v2/1"]
    for probed, decisions in ((answered, [1, 0]), (binary, [0, 1]), (regression, [None, None])):
        logged = probed["logged"]
        assert [row["decision_id"] for row in logged] == ids
        assert [row["decision"] for row in logged] == decisions * 3
        assert [row["entity_id"] for row in logged] == ["0", "1"] * 3
        assert [row["feature_values"] for row in logged[:2]] == [[0.0, 1.0], [2.0, 3.0]]
    assert np.allclose([row["class_scores"] for row in answered["logged"][:2]], multiclass)
    assert [row["score"] for row in binary["logged"][:2]] == pytest.approx([0.1, 0.8])
    assert {row["threshold"] for row in binary["logged"]} == {0.5}
    assert [row["score"] for row in regression["logged"][:2]] == [12.5, -3.0]


def test_answers_per_objective() -> None:
    """issue 31: binary and regression answer one score per row, no decided class (the caller cuts
    P(positive) at its own threshold); multiclass the argmax, ties to the lower class index."""
    binary = v1_answer(np.array([0.2, 0.9], dtype=np.float32), [False, True], "1")
    assert set(binary) == {"predictions", "unknown_entity", "model_version"}
    regression = v2_columns(np.array([12.5, -3.0], dtype=np.float32), [False, False])
    assert [(name, values.shape) for name, values in regression] == [("score", (2,)), ("unknown_entity", (2,))]
    tie = np.array([[0.4, 0.4, 0.2]], dtype=np.float32)
    assert v1_answer(tie, [False], "1")["predicted_class"] == [0]
    columns = dict(v2_columns(tie, [False]))
    assert columns["score"].shape == (1, 3) and columns["predicted_class"].dtype == np.int64
