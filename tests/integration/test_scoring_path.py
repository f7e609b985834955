"""The request path end to end, on real servers: after `mlops run fraud` on the platform profile,
`mlops serve fraud-detector --with-features` starts the local Triton and the scoring transformer
(KServe's ModelServer) against the platform's Redis. A request of entity key plus request features
is scored over HTTP (V1 and V2) and gRPC (V2), single and batched, and every score must equal the
in-process prediction of the trained artifact on the vector this test joins itself from Redis.
Then the errors: a missing request feature (400 / INVALID_ARGUMENT), an unknown entity (flagged
under `defaults`, 404 under `reject`), Redis unreachable (503 / UNAVAILABLE, `mlops score` exit 75),
explain only on the `:explain` verb and only where the config enables it (issue 29), and generated
bodies (Hypothesis, tests/integration/transformer_fuzz.py) that all get 200, 400, 403 or 404."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from devstack.process import free_port_base
from devstack.tenants import platform_variables
from devstack.transformer import LocalTransformer
from tests.integration.conftest import mlops

pytestmark = pytest.mark.integration

MODEL = "fraud-detector"
UNKNOWN_USER = 987_654_321


def _post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def scoring(platform_run: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from components.environment import temporary_env
    from components.serving.online_reader import OnlineFeatureReader
    from components.steps.materialize import open_store
    from components.steps.model_formats import load_predictor
    from components.steps.skew import latest_events
    from pipelines.fraud import pipeline as fraud

    env, run_dir = platform_run["env"], platform_run["run_dir"]
    root = tmp_path_factory.mktemp("scoring-path")
    port_base = free_port_base(5)
    _decisions_bucket(env)
    started = mlops(env, "serve", MODEL, "--with-features", "--detach", "--port-base", str(port_base),
                    "--dir", str(root))  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    assert "decisions s3://decisions/fraud/" in started.stdout, started.stdout  # the pipeline's serving namespace
    metadata = json.loads((run_dir / "train" / "metadata").read_text())
    predict = load_predictor(run_dir / "train" / "model", metadata)
    cfg = fraud.DECLARATION.config()
    m = cfg.materialize
    with temporary_env(platform_variables(env)):
        store = open_store(m.project)
        users = latest_events(store, m.feature_service, m.entity_column, m.timestamp_column)[m.entity_column]
        reader = OnlineFeatureReader(store, m.feature_service)
        sample = [int(u) for u in users.sample(n=64, random_state=1)]
        stored = reader.get([{m.entity_column: u} for u in sample])
    rng = np.random.default_rng(7)
    rows = [
        {
            m.entity_column: user,
            "amount": round(float(rng.uniform(1, 900)), 2),
            "merchant_category": int(rng.integers(0, 12)),
        }
        for user in sample
    ]
    # The vector joined here, independently of the transformer: request values, then Redis's, in
    # the order the model's metadata records.
    vectors = np.asarray(
        [
            [row[name] if name in row else stored[name][i] for name in metadata["features"]]
            for i, row in enumerate(rows)
        ],
        dtype=np.float32,
    )
    try:
        yield {
            "env": env,
            "root": root,
            "port_base": port_base,
            "http": f"http://127.0.0.1:{port_base + 3}",
            "grpc": f"127.0.0.1:{port_base + 4}",
            "triton_grpc": f"127.0.0.1:{port_base + 1}",
            "rows": rows,
            "expected": np.asarray(predict(vectors), dtype=np.float32),
            "vectors": vectors,
            "features": metadata["features"],
            "predict": predict,
            "config": cfg,
            "registration": platform_run["registration"],
        }
    finally:
        mlops(env, "serve", MODEL, "--stop", "--dir", str(root))


def test_scores_over_http_v1_single_and_batched_equal_in_process_predict(scoring: dict[str, Any]) -> None:
    url = f"{scoring['http']}/v1/models/{MODEL}:predict"
    status, single = _post(url, {"instances": scoring["rows"][:1]})
    assert status == 200, single
    assert single["predictions"] == pytest.approx(scoring["expected"][:1].tolist(), abs=1e-6)
    assert single["unknown_entity"] == [False] and "features" not in single
    status, batch = _post(url, {"instances": scoring["rows"]})
    assert status == 200, batch
    assert batch["predictions"] == pytest.approx(scoring["expected"].tolist(), abs=1e-6)


def test_explain_is_only_the_explain_verb_and_off_by_default(scoring: dict[str, Any]) -> None:
    """issue 29: `"explain": true` on predict returned stored features to any caller. Now a predict
    body asking for explain is 400 naming the :explain route (the one path the AuthorizationPolicy
    limits to scoring.explain.callers), and that route answers 403 naming scoring.explain.enabled
    while the config leaves it off (fraud's does)."""
    assert not scoring["config"].scoring.explain.enabled
    status, answer = _post(f"{scoring['http']}/v1/models/{MODEL}:predict", {"instances": scoring["rows"][:1]})
    assert status == 200 and "features" not in answer  # positive control
    status, answer = _post(f"{scoring['http']}/v1/models/{MODEL}:predict",
                           {"instances": scoring["rows"][:1], "explain": True})  # fmt: skip
    assert status == 400 and ":explain" in answer["error"] and "features" not in answer, answer
    status, answer = _post(f"{scoring['http']}/v1/models/{MODEL}:explain", {"instances": scoring["rows"][:1]})
    assert status == 403 and "scoring.explain.enabled" in answer["error"] and "features" not in answer, answer
    scored = mlops(scoring["env"], "score", MODEL, json.dumps(scoring["rows"][0]), "--explain", "--port-base",
                   str(scoring["port_base"]))  # fmt: skip
    assert scored.returncode == 2 and "403" in scored.stderr and "scoring.explain.enabled" in scored.stderr


def test_generated_bodies_are_answered_200_400_403_or_404(scoring: dict[str, Any]) -> None:
    """issue 29: bad input answered 500 (which pages on-call) and errors echoed the input. Hypothesis
    sends V1 and V2 bodies, valid and not, to the running transformer; every answer must be one a
    caller can act on, naming no internals and echoing no value."""
    from tests.integration.transformer_fuzz import check_answers

    m = scoring["config"].materialize
    sent = check_answers(scoring["http"], MODEL, m.entity_column, list(m.request_features),
                         scoring["config"].scoring.max_body_bytes, scoring["rows"])  # fmt: skip
    assert len(sent) >= 200
    statuses = [status for _route, _expected, status in sent]
    assert {200, 400} <= set(statuses), sorted(set(statuses))  # answers that vary with the body
    assert [status for _route, expected, status in sent if expected is not None] == [
        expected for _route, expected, _status in sent if expected is not None
    ]  # rows known to score got 200, malformed and oversized bodies 400 (each also checked as sent)
    assert {expected for _route, expected, _status in sent} >= {200, 400}  # both kinds were drawn
    assert ("v2", 200, 200) in sent  # a V2 body scored, not only refused
    status, answer = _post(f"{scoring['http']}/v1/models/{MODEL}:predict", {"instances": scoring["rows"][:2]})
    assert status == 200 and len(answer["predictions"]) == 2  # still serving after all of them


def test_bodies_past_max_body_bytes_are_refused_on_http_and_grpc(scoring: dict[str, Any]) -> None:
    """issue 29: no limit on body size. Over HTTP a body past scoring.max_body_bytes is 400 naming the
    setting; over gRPC the server's receive limit is the same number (RESOURCE_EXHAUSTED)."""
    import tritonclient.grpc as triton_grpc

    limit = scoring["config"].scoring.max_body_bytes
    row = scoring["rows"][0]
    within = {"instances": [row] * 10}
    status, answer = _post(f"{scoring['http']}/v1/models/{MODEL}:predict", within)
    assert status == 200, answer  # positive control
    oversized = {"instances": [row], "padding": "x" * limit}
    status, answer = _post(f"{scoring['http']}/v1/models/{MODEL}:predict", oversized)
    assert status == 400 and "scoring.max_body_bytes" in answer["error"], answer
    client = triton_grpc.InferenceServerClient(scoring["grpc"])
    user = triton_grpc.InferInput("user_id", [1], "INT64")
    user.set_data_from_numpy(np.asarray([row["user_id"]], dtype=np.int64))
    amount = triton_grpc.InferInput("amount", [1], "FP32")
    amount.set_data_from_numpy(np.asarray([row["amount"]], dtype=np.float32))
    category = triton_grpc.InferInput("merchant_category", [1], "INT64")
    category.set_data_from_numpy(np.asarray([row["merchant_category"]], dtype=np.int64))
    scored = client.infer(MODEL, [user, amount, category])
    assert scored.as_numpy("score").tolist() == pytest.approx(scoring["expected"][:1].tolist(), abs=1e-5)
    padding = triton_grpc.InferInput("padding", [limit // 8 + 1], "INT64")
    padding.set_data_from_numpy(np.zeros(limit // 8 + 1, dtype=np.int64))
    with pytest.raises(triton_grpc.InferenceServerException) as refused:
        client.infer(MODEL, [user, amount, category, padding])
    assert refused.value.status() == "StatusCode.RESOURCE_EXHAUSTED", refused.value


def test_scores_over_http_v2_and_grpc_v2_equal_in_process_predict(scoring: dict[str, Any]) -> None:
    import tritonclient.grpc as triton_grpc

    rows = scoring["rows"]
    columns = {
        "user_id": np.asarray([r["user_id"] for r in rows], dtype=np.int64),
        "amount": np.asarray([r["amount"] for r in rows], dtype=np.float32),
        "merchant_category": np.asarray([r["merchant_category"] for r in rows], dtype=np.int64),
    }
    kinds = {np.dtype(np.int64): "INT64", np.dtype(np.float32): "FP32"}
    body = {"inputs": [{"name": k, "shape": [len(v)], "datatype": kinds[v.dtype], "data": v.tolist()}
                       for k, v in columns.items()]}  # fmt: skip
    status, answer = _post(f"{scoring['http']}/v2/models/{MODEL}/infer", body)
    assert status == 200, answer
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    # A V2 REST client sends FP32 amounts: the transformer joins what it received, as the model
    # would be served, so compare with the float32-rounded request.
    assert outputs["score"] == pytest.approx(scoring["expected"].tolist(), abs=1e-5)
    assert outputs["unknown_entity"] == [False] * len(rows)

    client = triton_grpc.InferenceServerClient(scoring["grpc"])
    inputs = []
    for name, values in columns.items():
        tensor = triton_grpc.InferInput(name, [len(values)], kinds[values.dtype])
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    single = client.infer(MODEL, [_first(t, columns) for t in inputs])
    assert single.as_numpy("score").tolist() == pytest.approx(scoring["expected"][:1].tolist(), abs=1e-5)
    assert single.as_numpy("amount_avg_7d") is None  # stored features only on the :explain verb
    with pytest.raises(triton_grpc.InferenceServerException) as explaining:
        client.infer(MODEL, [_first(t, columns) for t in inputs], parameters={"explain": True})
    assert explaining.value.status() == "StatusCode.INVALID_ARGUMENT" and ":explain" in str(explaining.value.message())
    batched = client.infer(MODEL, inputs)
    assert batched.as_numpy("score").tolist() == pytest.approx(scoring["expected"].tolist(), abs=1e-5)
    with pytest.raises(triton_grpc.InferenceServerException) as refused:
        client.infer(MODEL, [t for t in inputs if t.name() != "amount"])
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT" and "amount" in str(refused.value.message())


def _first(tensor: Any, columns: dict[str, np.ndarray]) -> Any:
    import tritonclient.grpc as triton_grpc

    values = columns[tensor.name()][:1]
    single = triton_grpc.InferInput(tensor.name(), [1], tensor.datatype())
    single.set_data_from_numpy(values)
    return single


def test_a_missing_request_feature_is_400_naming_it(scoring: dict[str, Any]) -> None:
    row = {key: value for key, value in scoring["rows"][0].items() if key != "merchant_category"}
    status, answer = _post(f"{scoring['http']}/v1/models/{MODEL}:predict", {"instances": [row]})
    assert status == 400 and "merchant_category" in answer["error"], answer
    status, answer = _post(f"{scoring['http']}/v1/models/{MODEL}:predict",
                           {"instances": [{**scoring["rows"][0], "amount": "lots"}]})  # fmt: skip
    assert status == 400 and "amount is not a number" in answer["error"], answer
    assert "lots" not in answer["error"]  # issue 29: the field and the rule, never the value sent


def test_an_unknown_entity_scores_on_the_defaults_flagged(scoring: dict[str, Any]) -> None:
    known, unknown = scoring["rows"][0], {**scoring["rows"][0], "user_id": UNKNOWN_USER}
    status, answer = _post(f"{scoring['http']}/v1/models/{MODEL}:predict", {"instances": [known, unknown]})
    assert status == 200, answer
    assert answer["unknown_entity"] == [False, True]
    defaults = scoring["config"].scoring.defaults
    vector = [[unknown[name] if name in unknown else defaults.get(name, 0.0) for name in scoring["features"]]]
    expected = scoring["predict"](np.asarray(vector, dtype=np.float32))
    assert answer["predictions"][1] == pytest.approx(float(expected[0]), abs=1e-6)


def _decisions_bucket(env: dict[str, str]) -> None:
    """The decisions bucket on the stack's S3 (the platform's bucket list gains it with the cluster's
    rendering; ensure is idempotent)."""
    import boto3

    from components.platform import buckets

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")  # fmt: skip
    buckets.ensure(client, ("decisions",))


def _logged(env: dict[str, str], request_id: str, rows: int, uri: str = "s3://decisions/fraud/") -> list[Any]:
    """The decision log's records of one request, read back from S3 as the reader does (hive
    partitions), waiting for the transformer's flush (scoring.decision_log.flush_seconds)."""
    import pyarrow.dataset as ds

    from components.environment import temporary_env
    from components.platform.decisions import NoDecisionLog, open_log

    deadline = time.monotonic() + 30
    while True:
        # open_log, as `mlops decisions` does: the record's schema, not one inferred from what is there yet
        # (an inferred one is empty while the prefix holds only `_outcomes/`, and the filter cannot bind)
        with temporary_env(platform_variables(env)):
            try:
                table = open_log(uri).to_table(filter=ds.field("request_id") == request_id)
            except (NoDecisionLog, OSError):
                table = None
        if table is not None and table.num_rows >= rows:
            return sorted(table.to_pylist(), key=lambda record: record["row"])
        assert time.monotonic() < deadline, f"request {request_id}: not in the decision log at {uri}"
        time.sleep(0.5)


def test_every_scored_row_is_in_the_decision_log_with_its_model_features_and_decision(
    scoring: dict[str, Any],
) -> None:
    """issue 32: one record per scored row, in the tenant's prefix of the decisions bucket, naming the
    registered version and sha256, the feature values the model scored (in its order), the score
    answered, and the decision at the threshold the model is served with."""
    rows = [*scoring["rows"][:8], {**scoring["rows"][0], "user_id": UNKNOWN_USER}]
    status, answer = _post(f"{scoring['http']}/v1/models/{MODEL}:predict", {"instances": rows},
                           {"x-request-id": "audit-batch-1"})  # fmt: skip
    assert status == 200, answer
    logged = _logged(scoring["env"], "audit-batch-1", len(rows))
    registration = scoring["registration"]
    threshold = registration["holdout_metrics"]["decision_threshold"]
    assert [record["decision_id"] for record in logged] == [f"audit-batch-1/{i}" for i in range(len(rows))]
    for record, row, score in zip(logged, rows, answer["predictions"], strict=True):
        assert record["model_name"] == MODEL and record["model_version"] == str(registration["version"])
        assert record["model_sha256"] == registration["artifact_sha256"]
        assert record["namespace"] == "fraud" and record["serving_role"] == "champion"
        assert json.loads(record["request"]) == row and record["entity_id"] == str(row["user_id"])
        assert record["feature_names"] == scoring["features"]
        assert record["score"] == pytest.approx(score, abs=1e-6)
    assert [record["feature_values"] for record in logged[:8]] == [
        pytest.approx(vector.tolist(), rel=1e-6) for vector in scoring["vectors"][:8]
    ]  # the vector this test joined itself from Redis
    assert [record["unknown_entity"] for record in logged] == [False] * 8 + [True]
    with urllib.request.urlopen(f"{scoring['http']}/metrics", timeout=10) as response:  # KServe's /metrics
        metrics = response.read().decode()
    written = [
        line for line in metrics.splitlines() if line.startswith('mlops_decision_log_records_total{outcome="written"}')
    ]
    assert written and float(written[0].split()[-1]) >= len(rows), written
    assert "mlops_decision_log_spill_bytes 0.0" in metrics
    # the threshold the model is served with: its registration's (devstack/triton.py passes it to the
    # local repository, promote to the cluster's), and the decision at it
    assert [(record["threshold"], record["decision"]) for record in logged] == [
        (threshold, int(record["score"] >= threshold)) for record in logged
    ]


def _transformer(context: dict[str, Any], name: str, **kwargs: Any) -> LocalTransformer:
    m = context["config"].materialize
    base = free_port_base(2)
    http, grpc = base, base + 1
    return LocalTransformer(root=context["root"], name=name, model_name=MODEL, predictor_grpc=context["triton_grpc"],
                            http_port=http, grpc_port=grpc, project=m.project, feature_service=m.feature_service,
                            entity_column=m.entity_column, request_features=list(m.request_features),
                            **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def guarded(scoring: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A second transformer: its config rejects unknown entities and enables explain, and it reads the
    real Redis through a proxy that lets a large pipeline through 16 KiB every 0.3 s
    (tests/integration/redis_delay_proxy.py)."""
    from components.environment import temporary_env
    from tests.integration.redis_delay_proxy import RedisDelayProxy

    proxy = RedisDelayProxy(scoring["env"]["MLOPS_FEAST_REDIS"], large_bytes=16_000, delay=0.3)
    with temporary_env(_platform(scoring)):
        transformer = _transformer(scoring, "transformer-reject",
                                   scoring={"unknown_entity": "reject", "explain": {"enabled": True},
                                            "decision_log": {"flush_seconds": 0.5}},
                                   env={"MLOPS_FEAST_REDIS": proxy.address, "MLOPS_NAMESPACE": "fraud",
                                        "MLOPS_DECISION_LOG_URI": "s3://decisions/fraud/",
                                        "MLOPS_SERVING_ROLE": "canary"})  # fmt: skip
        transformer.start()
    try:
        yield {"transformer": transformer, "proxy": proxy}
    finally:
        transformer.stop()
        proxy.close()


def test_reject_404s_an_unknown_entity_and_explain_answers_where_enabled(
    scoring: dict[str, Any], guarded: dict[str, Any]
) -> None:
    """A transformer whose config rejects unknown entities and enables explain: 200 for a known entity,
    404 naming the row (never the id sent, issue 29) for an unknown one; the :explain verb returns the
    feature values used, in the model's order; a predict body asking for explain is still 400."""
    transformer = guarded["transformer"]
    url = f"{transformer.http_url}/v1/models/{MODEL}:predict"
    status, answer = _post(url, {"instances": scoring["rows"][:1]})
    assert status == 200 and answer["predictions"] == pytest.approx(scoring["expected"][:1].tolist(), abs=1e-6)
    assert "features" not in answer
    status, answer = _post(url, {"instances": [scoring["rows"][0], {**scoring["rows"][0], "user_id": UNKNOWN_USER}]})
    assert status == 404 and "rows [1]" in answer["error"] and str(UNKNOWN_USER) not in answer["error"], answer
    status, explained = _post(url.replace(":predict", ":explain"), {"instances": scoring["rows"][:1]},
                              {"x-request-id": "explained-1"})  # fmt: skip
    assert status == 200, explained
    assert explained["predictions"] == pytest.approx(scoring["expected"][:1].tolist(), abs=1e-6)
    used = explained["features"][0]
    assert list(used) == scoring["features"]  # the model's column order, from the predictor's config
    assert [used[name] for name in scoring["features"]] == pytest.approx(scoring["vectors"][0].tolist(), rel=1e-6)
    (record,) = _logged(scoring["env"], "explained-1", 1)  # the explain verb's decision is logged too
    assert record["feature_names"] == list(used) and record["serving_role"] == "canary"
    assert record["feature_values"] == pytest.approx(list(used.values()), rel=1e-6)
    assert record["score"] == pytest.approx(explained["predictions"][0], abs=1e-6)
    status, answer = _post(url, {"instances": scoring["rows"][:1], "explain": True})
    assert status == 400 and ":explain" in answer["error"], answer
    scored = mlops(scoring["env"], "score", MODEL, json.dumps(scoring["rows"][0]), "--explain", "--url",
                   transformer.http_url)  # fmt: skip
    assert scored.returncode == 0, scored.stdout + scored.stderr
    assert all(name in scored.stdout for name in scoring["features"])


def test_a_small_request_is_answered_while_a_large_one_is_joining(
    scoring: dict[str, Any], guarded: dict[str, Any]
) -> None:
    """issue 29: the join ran on the event loop, so one large request stalled every other. The proxy
    trickles the large request's pipeline to Redis over seconds; a one-row request sent meanwhile must
    come back while the large one is still joining (on the loop it would wait for it), and the large
    one must still be answered."""
    import threading

    url = f"{guarded['transformer'].http_url}/v1/models/{MODEL}:predict"
    proxy, large = guarded["proxy"], {}
    rows = (scoring["rows"] * 16)[: scoring["config"].scoring.max_rows]
    proxy.large_seen.clear()
    started = time.monotonic()
    worker = threading.Thread(target=lambda: large.update(answer=_post(url, {"instances": rows}),
                                                          seconds=time.monotonic() - started))  # fmt: skip
    worker.start()
    assert proxy.large_seen.wait(timeout=30), "the large request's pipeline never reached Redis"
    asked = time.monotonic()
    status, small = _post(url, {"instances": scoring["rows"][:1]})
    answered_in = time.monotonic() - asked
    still_joining = worker.is_alive()
    worker.join(timeout=60)
    assert status == 200 and small["predictions"] == pytest.approx(scoring["expected"][:1].tolist(), abs=1e-6)
    assert answered_in < 2.0 and still_joining, (answered_in, still_joining)
    status, answer = large["answer"]
    assert status == 200 and len(answer["predictions"]) == len(rows), answer
    assert large["seconds"] >= 1.2 and proxy.delayed >= 4, (large["seconds"], proxy.delayed)  # really held


def test_redis_unreachable_is_503_and_mlops_score_exits_transient(scoring: dict[str, Any]) -> None:
    from components.environment import temporary_env

    dead_port = free_port_base(1)  # nothing listens there
    with temporary_env(_platform(scoring)):
        transformer = _transformer(scoring, "transformer-no-redis", env={"MLOPS_FEAST_REDIS": f"127.0.0.1:{dead_port}"})
        transformer.start()
    try:
        started = time.monotonic()
        status, answer = _post(f"{transformer.http_url}/v1/models/{MODEL}:predict", {"instances": scoring["rows"][:1]},
                               {"x-request-id": "drill-redis-1"})  # fmt: skip
        assert status == 503 and "online store (Redis) did not answer" in answer["error"], answer
        # issue 29: a fixed message naming the dependency and the request id; the cause only in the log
        assert "request id drill-redis-1" in answer["error"] and str(dead_port) not in answer["error"]
        assert "Error" not in answer["error"] and str(dead_port) in transformer.log.read_text()
        # fails fast: redis-py's default retries would hold the request ~9 s against a dead port
        assert time.monotonic() - started < 3.0
        scored = mlops(scoring["env"], "score", MODEL, json.dumps(scoring["rows"][0]), "--url", transformer.http_url)
        assert scored.returncode == 75, scored.stdout + scored.stderr
        assert "503" in scored.stderr and "transient" in scored.stderr
    finally:
        transformer.stop()


def test_mlops_score_prints_the_score(scoring: dict[str, Any]) -> None:
    row = scoring["rows"][0]
    scored = mlops(scoring["env"], "score", MODEL, json.dumps(row), "--port-base", str(scoring["port_base"]))
    assert scored.returncode == 0, scored.stdout + scored.stderr
    assert f"score {float(scoring['expected'][0]):.6f}" in scored.stdout
    assert not any(name in scored.stdout for name in scoring["features"] if name not in row)


def _platform(scoring: dict[str, Any]) -> dict[str, str]:
    return platform_variables(scoring["env"])
