"""make bench (serving part): a local Triton against in-process prediction, measured in one run.

The model is the fraud model's shape: XGBoost, 50 trees, 6 FP32 features, served by
`mlops serve`'s python-backend repository on nvidia-pytriton's tritonserver (CPU).
Baselines, same process, same model bytes:
- in-process: components.steps.model_formats.load_predictor, what the pipeline scores with.
Served, through tritonclient over HTTP and gRPC:
- single-row latency p50/p99 (one request at a time);
- 64-row batches, one client (sequential) and four concurrent clients, rows per second.
Server variants: one instance without batching; dynamic batching (100 us); two instances with it.
Goals (issue): single-row p99 within 3x in-process; batch throughput at least half of in-process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.handoffs import TrainingMetadata  # noqa: E402
from components.serving.triton_config import tensor_contract  # noqa: E402
from components.steps.model_formats import load_predictor  # noqa: E402
from components.steps.triton_repository import write_python_repository  # noqa: E402
from devstack.process import free_port_base  # noqa: E402
from devstack.triton import LocalTriton  # noqa: E402

if TYPE_CHECKING:
    from types import ModuleType

    import tritonclient.grpc
    import tritonclient.http

FEATURES = ["amount", "merchant_category", "txn_count_1h", "txn_count_24h", "amount_avg_7d", "seconds_since_last_txn"]
BATCH = 64
FLOOR = "floor: a python model that scores nothing"
VARIANTS = (
    (FLOOR, 1, None),
    ("1 instance, no batching", 1, None),
    ("1 instance, dynamic batching 100us", 1, 100),
    ("2 instances, dynamic batching 100us", 2, 100),
)


TENSORS = tensor_contract("xgboost_json")  # the cluster's FIL tensors, which the local server exposes
FLOOR_MODEL = f"""
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor(
                "{TENSORS.output}",
                np.zeros((pb_utils.get_input_tensor_by_name(r, "{TENSORS.input}").as_numpy().shape[0],
                          {TENSORS.output_width}), np.float32),
            )])
            for r in requests
        ]
"""


def train_model(folder: Path, rows: int = 20_000) -> tuple[bytes, np.ndarray]:
    import xgboost as xgb

    rng = np.random.default_rng(3)
    features = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    label = (features[:, 0] + 0.5 * features[:, 2] + rng.normal(scale=0.5, size=rows) > 1.2).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 6, "nthread": 1},
        xgb.DMatrix(features, label=label, feature_names=FEATURES),
        num_boost_round=50,
    )
    path = folder / "model.json"
    booster.save_model(str(path))
    return path.read_bytes(), features


def percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.array(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def time_calls(call: Callable[[], Any], count: int) -> list[float]:
    for _ in range(min(200, count)):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def throughput(calls: list[Callable[[], Any]], seconds: float) -> float:
    """Rows per second with one thread per call (each with its own client), 64 rows back to back."""
    done = [0] * len(calls)
    stop = time.perf_counter() + seconds

    def worker(index: int) -> None:
        while time.perf_counter() < stop:
            calls[index]()
            done[index] += BATCH

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - started)


def infer_call(
    module: ModuleType,
    client: tritonclient.http.InferenceServerClient | tritonclient.grpc.InferenceServerClient,
    rows: np.ndarray,
) -> Callable[[], Any]:
    tensor = module.InferInput(TENSORS.input, list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    output = module.InferRequestedOutput(TENSORS.output)
    return lambda: client.infer("fraud", [tensor], outputs=[output])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="single-row requests per measurement")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per throughput measurement")
    args = parser.parse_args()

    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_bytes, data = train_model(folder)
        # load_predictor reads the format and the objective of the training metadata, nothing else
        metadata = cast(TrainingMetadata, {"format": "xgboost_json", "objective": "binary", "features": FEATURES})
        predict = load_predictor(folder / "model.json", metadata)
        one, batch = data[:1], data[:BATCH]
        base_p50, base_p99 = percentiles(time_calls(lambda: predict(one), args.requests))
        base_rows = throughput([lambda: predict(batch)], args.seconds)
        print(f"in-process (components.steps.model_formats.load_predictor), 50 trees, {len(FEATURES)} features")
        print(
            f"  single row p50/p99 {base_p50:.3f}/{base_p99:.3f} ms; 64-row batches {base_rows:,.0f} rows/s  (baseline)"
        )
        results["in_process"] = {"p50_ms": base_p50, "p99_ms": base_p99, "rows_per_s": base_rows}

        for label, instances, delay in VARIANTS:
            root = folder / f"triton-{instances}-{delay}"
            repository = root / "repository"
            write_python_repository(
                repository, "fraud", 1, "xgboost_json", model_bytes, FEATURES,
                max_batch_size=256, instance_count=instances, max_queue_delay_us=delay,
            )  # fmt: skip
            if label == FLOOR:  # the same tensors and transport, no model: what Triton itself costs
                (repository / "fraud" / "1" / "model.py").write_text(FLOOR_MODEL)
            base = free_port_base(3)
            server = LocalTriton(
                root=root, repository=repository, http_port=base, grpc_port=base + 1, metrics_port=base + 2,
                model_name="fraud",
            )  # fmt: skip
            load = server.start()
            try:
                print(f"\nTriton ({label}; ready in {load:.1f} s)")
                row: dict[str, Any] = {"load_s": load}
                for protocol, module, url in (
                    ("http", httpclient, server.http_url),
                    ("grpc", grpcclient, server.grpc_url),
                ):
                    single = infer_call(module, module.InferenceServerClient(url), one)
                    expected = predict(one)[0]
                    got = float(TENSORS.scores(single().as_numpy(TENSORS.output))[0])
                    assert label == FLOOR or abs(got - expected) < 1e-6, (got, expected)
                    p50, p99 = percentiles(time_calls(single, args.requests))
                    rows_1 = throughput([infer_call(module, module.InferenceServerClient(url), batch)], args.seconds)
                    calls = [infer_call(module, module.InferenceServerClient(url), batch) for _ in range(4)]
                    rows_4 = throughput(calls, args.seconds)
                    print(
                        f"  {protocol:<4} single row p50/p99 {p50:.3f}/{p99:.3f} ms "
                        f"(p99 {p99 / base_p99:.2f}x in-process; goal <= 3x)"
                    )
                    print(
                        f"       64-row batches: 1 client {rows_1:,.0f} rows/s ({rows_1 / base_rows:.2f}x), "
                        f"4 clients {rows_4:,.0f} rows/s ({rows_4 / base_rows:.2f}x; goal >= 0.5x)"
                    )
                    row[protocol] = {
                        "p50_ms": p50,
                        "p99_ms": p99,
                        "p99_ratio": p99 / base_p99,
                        "rows_per_s_1_client": rows_1,
                        "rows_per_s_4_clients": rows_4,
                        "throughput_ratio_1": rows_1 / base_rows,
                        "throughput_ratio_4": rows_4 / base_rows,
                    }
                results[label] = row
            finally:
                server.stop()
    print("\n" + json.dumps({"serving": results}, indent=None, default=lambda v: round(v, 3)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
