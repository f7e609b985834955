"""The scoring transformer: one call scores a transaction, with its online features.

    client --V1/V2, HTTP or gRPC--> transformer --one pipelined HMGET--> Redis
                                         |
                                         +--gRPC V2 (input__0 [n, k] FP32)--> Triton predictor

It runs as KServe's Python ModelServer (`kserve` 0.21, what KServe's own transformers run), as the
InferenceService's `transformer` component, or beside the local Triton (`mlops serve --with-features`).
Everything it needs is resolved once, at start: the feature service's Redis layout (the same Feast
definitions the training set was joined with) and, from the predictor itself, the model's column
order and tensors (the `mlops_features` parameter of the config it serves). Per request it touches
Redis and Triton, nothing else: never MLflow, PostgreSQL or object storage.

Requests, single or batched:
    V1  POST /v1/models/<name>:predict {"instances": [{"user_id": 42, "amount": 310.5, "merchant_category": 7}]}
        (a bare {"user_id": ...} object is one instance)
    V2  one input per column (user_id INT64 [n], amount FP32 [n], ...), REST or gRPC
Answers: the score per row and whether the entity was unknown (scored on the configured defaults); a
multiclass model's k class probabilities and its argmax class (components/serving/answers.py).
The feature values used come only from KServe's V1 explain verb, `POST /v1/models/<name>:explain`
(same body), and only when `scoring.explain.enabled`: off, it answers 403 naming that setting; a
predict body asking for explain (V1 "explain", V2 parameters.explain) answers 400 naming the route, so
the AuthorizationPolicy's `*:explain` rule is the one door to stored features (issue 29).
Errors name the field and the rule, never the value sent or a dependency's own message: a missing,
non-numeric or out-of-range field 400, a body over `scoring.max_body_bytes` 400 (before it is
parsed; gRPC: RESOURCE_EXHAUSTED), an unknown entity under `scoring.unknown_entity: reject` 404, Redis
or Triton unreachable 503 with a fixed message and the request id, the cause logged in full here.
The join runs on a bounded pool of threads (components.serving.scoring.OffLoopJoiner), off the event loop.
Every request that reaches the model, answered or failed, is timed and counted per version, role and
code class (components/serving/request_log.py), and its outcome handed to the decision log's queue.

This module runs in the transformer's own environment (`make transformer-env`, the image's
/opt/transformer): kserve pins psutil<6, which the pipeline's stack does not resolve with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from kserve import Model, ModelServer, model_server
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, ServerNotReady
from kserve.model import InferenceVerb
from kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelInferRequest
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from components.config import ScoringSettings
from components.errors import ComponentError, transient_reason
from components.platform.readonly import read_only_registry
from components.serving import decision_log, decision_record, request_log
from components.serving.answers import v1_answer, v2_columns
from components.serving.predictor import STEP, PredictorModel, describe_predictor, fetch_model_config
from components.serving.request_guard import EXPLAIN_OFF
from components.serving.scoring import OffLoopJoiner, RequestError, RequestJoiner, UnknownEntity, online_reader

__all__ = [
    "STEP",
    "BadRequest",
    "EntityNotFound",
    "PredictorModel",
    "Scoring",
    "ScoringTransformer",
    "Unavailable",
    "describe_predictor",
    "fetch_model_config",
    "http_code_of",
    "install_guards",
    "main",
    "parser",
    "request_id_of",
    "store_config",
]

log = logging.getLogger(__name__)


class BadRequest(InvalidInput):
    """400 over HTTP, INVALID_ARGUMENT over gRPC."""


class EntityNotFound(ModelNotFound):
    """404 over HTTP, NOT_FOUND over gRPC: KServe's handlers answer any ModelNotFound so."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Unavailable(ServerNotReady):
    """503 over HTTP, UNAVAILABLE over gRPC: Redis or Triton did not answer; the caller retries."""

    def __init__(self, reason: str) -> None:
        self.reason = self.error_msg = reason


class ExplainOff(Exception):
    """The explain verb while scoring.explain.enabled is off: 403 (components.serving.request_guard refuses it
    first, by path; this is the same rule where the verb itself is reached)."""


def http_code_of(error: BaseException) -> int:
    """The HTTP status KServe's handlers (and install_guards') answer an exception raised by the model with;
    a request the caller abandoned (its task cancelled) is 499, the caller's."""
    codes: list[tuple[type[BaseException], int]] = [
        (InvalidInput, 400), (ExplainOff, 403), (ModelNotFound, 404), (asyncio.CancelledError, 499),
        (ServerNotReady, 503), (ModelNotReady, 503), (NotImplementedError, 501),
    ]  # fmt: skip
    return next((code for kind, code in codes if isinstance(error, kind)), 500)


def _message(error: ComponentError) -> str:
    return f"{error.problem}; fix: {error.fix}"


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
EXPLAIN_IN_BODY = (
    "explain is not a predict option; fix: send the same body to POST /v1/models/<name>:explain "
    "(open to the callers scoring.explain.callers names, when scoring.explain.enabled)"
)


def request_id_of(candidate: Any) -> str:
    """The caller's request id when it is a plain token, else a fresh one: an error answer carries it,
    and the server's log holds the cause under it, so it must never carry the caller's bytes."""
    text = candidate if isinstance(candidate, str) else ""
    return text if _REQUEST_ID.match(text) else str(uuid.uuid4())


def store_config(project: str, store_dir: str | None) -> dict[str, Any]:
    """feature_store.yaml for the request path: the platform's (the mlops-platform ConfigMap's
    Redis and registry) or a local store's file, with the offline store reduced to `file`: the
    request path never reads offline data, and the transformer's image carries no DuckDB."""
    from components.platform import services

    config = services.feast_store_config(project, STEP)
    if config is None:
        if not store_dir:
            raise ComponentError(
                STEP,
                f"no platform Feast settings (MLOPS_FEAST_REDIS) and no --feature-store-dir for project {project}",
                "on the cluster, load the mlops-platform ConfigMap; locally pass the store folder "
                "($MLOPS_HOME/feast/<project>)",
            )
        path = Path(store_dir) / "feature_store.yaml"
        if not path.exists():
            raise ComponentError(STEP, f"{path} does not exist", "run the pipeline (its materialize step) first")
        config = yaml.safe_load(path.read_text())
    config["offline_store"] = {"type": "file"}
    config.pop("materialization_config", None)
    read_only_registry(config)  # it logs in as the tenant's reader, which may only SELECT
    return config


def open_online_store(project: str, store_dir: str | None) -> Any:
    """The store from its config alone: nothing is written (the container's filesystem may be read-only)."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    repo = Path(store_dir) if store_dir else Path.cwd()
    return FeatureStore(config=RepoConfig(repo_path=repo, **store_config(project, store_dir)))


def _asks_explain(value: Any) -> bool:
    return value is not None and getattr(value, "bool_param", value) is not False


def _rows_from_v1(payload: dict[str, Any]) -> list[dict[str, Any]]:
    if _asks_explain(payload.get("explain")):
        raise BadRequest(EXPLAIN_IN_BODY)
    if "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list) or not all(isinstance(row, dict) for row in instances):
            raise BadRequest('"instances" must be a list of objects, e.g. [{"user_id": 42, "amount": 310.5}]')
        return instances
    return [{key: value for key, value in payload.items() if key != "explain"}]


def _rows_from_v2(request: InferRequest) -> list[dict[str, Any]]:
    if _asks_explain((request.parameters or {}).get("explain")):
        raise BadRequest(EXPLAIN_IN_BODY)
    columns: dict[str, list[Any]] = {}
    for tensor in request.inputs:
        try:
            values = tensor.as_numpy().reshape(-1)
        except Exception as error:  # numpy's or KServe's complaint names the data: keep it in the log only
            log.info("V2 input %r not decodable: %s", tensor.name, error)
            raise BadRequest(f"V2 input {_name(tensor.name)} does not hold its shape and datatype; fix: send "
                             "shape [n] and one value of the datatype per row") from error  # fmt: skip
        columns[str(tensor.name)] = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in values.tolist()]
    lengths = {_name(name): len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise BadRequest(f"the V2 inputs differ in length {lengths}; send one value per row in every input")
    count = next(iter(lengths.values()), 0)
    return [{name: values[index] for name, values in columns.items()} for index in range(count)]


def _name(name: Any) -> str:
    """An input's name as an error may show it: short and printable (it is the caller's text)."""
    text = "".join(c if c.isascii() and c.isprintable() else "?" for c in str(name))
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


@dataclass
class Scoring:
    """One request between preprocess and predict: the joined rows and how to answer."""

    request_id: str
    matrix: np.ndarray
    values: dict[str, list[Any]]
    unknown: list[bool]
    explain: bool
    v2: bool
    grpc: bool = False
    """Answer in raw tensor bytes (what gRPC clients such as tritonclient read), not JSON lists."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """The rows as the caller sent them: the decision log records each with its score."""


class ScoringTransformer(Model):
    def __init__(
        self,
        name: str,
        *,
        predictor_grpc: str,
        project: str,
        feature_service: str,
        entity_column: str,
        request_features: list[str],
        settings: ScoringSettings,
        store_dir: str | None = None,
        wait_seconds: float = 600.0,
    ) -> None:
        super().__init__(name)
        self.predictor_grpc, self.project, self.feature_service = predictor_grpc, project, feature_service
        self.entity_column, self.request_features, self.settings = entity_column, request_features, settings
        self.store_dir, self.wait_seconds = store_dir, wait_seconds
        self.model: PredictorModel | None = None
        self.joiner: OffLoopJoiner | None = None
        self.decision_log: decision_log.Sink | None = None
        self.outcomes = request_log.Recorder(name, os.environ.get(decision_record.ROLE_VARIABLE) or "champion")

    def load(self) -> bool:
        self.model = describe_predictor(self.predictor_grpc, self.name, wait_seconds=self.wait_seconds)
        store = open_online_store(self.project, self.store_dir)
        self.joiner = OffLoopJoiner(
            RequestJoiner(
                online_reader(store, self.feature_service),
                model_features=self.model.features,
                entity_column=self.entity_column,
                request_features=self.request_features,
                settings=self.settings,
            )
        )
        log.info("scoring %s: columns %s, feature service %s", self.name, self.model.features, self.feature_service)
        self.decision_log = decision_log.from_environment(
            self.name, self.entity_column, self.model.model_sha256, self.model.threshold,
            self.model.contract.output_width, self.settings.decision_log,
        )  # fmt: skip
        self.ready = True
        return True

    def stop(self) -> None:
        """KServe's shutdown (ModelServer.stop on SIGTERM unloads each model): flush the decision log."""
        if self.decision_log is not None:
            self.decision_log.close(timeout=8.0)  # inside the pod's and `mlops serve --stop`'s grace period
        super().stop()

    async def __call__(
        self, body: Any, headers: dict[str, str] | None = None, verb: InferenceVerb = InferenceVerb.PREDICT
    ) -> Any:
        """KServe's preprocess, predict or explain, postprocess, timed, and its outcome recorded (answered or
        failed) after the fact: in this process's metrics and, through a put_nowait, in the decision log."""
        call, started, code = request_log.Call(), time.perf_counter(), 200
        token = request_log.CALL.set(call)
        try:
            return await super().__call__(body, headers, verb)
        except BaseException as error:
            code = http_code_of(error)
            raise
        finally:
            request_log.CALL.reset(token)
            call.request_id = call.request_id or request_id_of((headers or {}).get("x-request-id"))
            self.outcomes.record(call, code, time.perf_counter() - started, self.decision_log)

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Scoring:
        assert self.joiner is not None
        v2 = isinstance(payload, InferRequest | ModelInferRequest)
        if isinstance(payload, ModelInferRequest):
            try:
                payload = InferRequest.from_grpc(payload)
            except Exception as error:
                log.info("gRPC request not decodable: %s", error)
                raise BadRequest("the gRPC inputs do not hold their shapes and datatypes; fix: send shape [n] "
                                 "and n values of the datatype per input") from error  # fmt: skip
        if isinstance(payload, bytes | str):  # a V1 body sent without Content-Type: application/json
            try:
                payload = json.loads(payload)
            except (ValueError, RecursionError) as error:
                raise BadRequest("the request body is not JSON; fix: send a JSON object") from error
        if v2:
            rows = _rows_from_v2(payload)
            request_id = request_id_of(payload.id)
        elif isinstance(payload, dict):
            rows = _rows_from_v1(payload)
            request_id = request_id_of((headers or {}).get("x-request-id"))
        else:
            raise BadRequest('send a JSON object: {"instances": [{...}]} (V1) or a V2 inference request')
        request_log.Recorder.started(request_id, len(rows))
        try:
            joined = await self.joiner.join(rows)
        except RequestError as error:
            raise BadRequest(_message(error)) from error
        except UnknownEntity as error:
            raise EntityNotFound(_message(error)) from error
        except Exception as error:
            if transient_reason(error) is None:
                log.exception("request %s: the join failed", request_id)
                raise
            log.error("request %s: the online store did not answer", request_id, exc_info=error)
            raise Unavailable(f"the online store (Redis) did not answer; retry (request id {request_id})") from error
        grpc = bool(getattr(payload, "from_grpc", False))
        return Scoring(request_id, joined.matrix, joined.values, joined.unknown, False, v2, grpc, rows)

    async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """KServe's explain verb (`POST /v1/models/<name>:explain`): the score and the feature values used."""
        if not self.settings.explain.enabled:
            raise ExplainOff(EXPLAIN_OFF)
        assert isinstance(payload, Scoring)
        payload.explain = True
        return await self.predict(payload, headers)

    async def predict(self, payload: Any, headers: dict[str, str] | None = None, response_headers: Any = None) -> Any:
        assert self.model is not None and isinstance(payload, Scoring)
        chunks = [await self._score(payload.matrix[start : start + self.model.max_batch_size], payload.request_id)
                  for start in range(0, len(payload.matrix), self.model.max_batch_size)]  # fmt: skip
        score = np.concatenate([scores for scores, _version in chunks]).astype(np.float32)
        version = chunks[0][1]
        self.outcomes.answered(version)
        if self.decision_log is not None:  # after the answer is computed; a put_nowait, never raises
            self.decision_log.offer(
                decision_log.Offer(payload.request_id, decision_log.now(), version, payload.rows,
                                   self.model.features, payload.matrix, payload.unknown, score)
            )  # fmt: skip
        if payload.v2:
            return self._v2_response(payload, score, version)
        answer = v1_answer(score, payload.unknown, version)  # multiclass: k probabilities and the argmax
        if payload.explain:
            answer["features"] = [{name: payload.values[name][row] for name in self.model.features}
                                  for row in range(len(score))]  # fmt: skip
        return answer

    async def _score(self, matrix: np.ndarray, request_id: str) -> tuple[np.ndarray, str]:
        assert self.model is not None
        tensor = InferInput(self.model.contract.input, list(matrix.shape), "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(matrix, dtype=np.float32), binary_data=True)
        request = InferRequest(model_name=self.name, infer_inputs=[tensor], request_id=request_id)
        try:
            response = await self._grpc_predict(request)
        except Exception as error:  # the predictor did not answer: transient for the caller
            log.error("request %s: the predictor did not answer", request_id, exc_info=error)
            raise Unavailable(f"the predictor (Triton) did not answer; retry (request id {request_id})") from error
        output = next((o for o in response.outputs if o.name == self.model.contract.output), None)
        if output is None:
            log.error("request %s: the predictor answered without %s", request_id, self.model.contract.output)
            raise Unavailable(f"the predictor (Triton) answered without its score output; retry (request id "
                              f"{request_id})")  # fmt: skip
        scores: np.ndarray = self.model.contract.scores(output.as_numpy())
        return scores, str(response.model_version or "")

    def _v2_response(self, payload: Scoring, score: np.ndarray, version: str) -> InferResponse:
        assert self.model is not None
        columns = v2_columns(score, payload.unknown)  # each output with its own shape: score [n] or [n, k]
        if payload.explain:
            columns += [(name, np.asarray(payload.values[name], dtype=np.float32)) for name in self.model.features]
        outputs = []
        for name, values in columns:
            datatype = {np.dtype(np.bool_): "BOOL", np.dtype(np.int64): "INT64"}.get(values.dtype, "FP32")
            if payload.grpc:
                output = InferOutput(name, list(values.shape), datatype)
                output.set_data_from_numpy(values, binary_data=True)
            else:
                output = InferOutput(name, list(values.shape), datatype, data=values.ravel().tolist())
            outputs.append(output)
        return InferResponse(response_id=payload.request_id, model_name=self.name, infer_outputs=outputs,
                             model_version=version, from_grpc=payload.grpc)  # fmt: skip

    async def postprocess(
        self, result: Any, headers: dict[str, str] | None = None, response_headers: Any = None
    ) -> Any:
        return result


def install_guards(settings: ScoringSettings) -> None:
    """The request limits on KServe's own servers, before they start: the RequestGuard middleware on its
    FastAPI app (body size, explain while off, repository routes), 400 instead of FastAPI's 422 (which
    echoes the input) for a V2 body off the protocol's schema, 403 for the explain verb while off, and
    gRPC's receive limit at scoring.max_body_bytes (past it, RESOURCE_EXHAUSTED before any parsing)."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from components.serving.request_guard import RequestGuard

    async def invalid_body(_: Request, error: Exception) -> JSONResponse:
        where = [".".join(str(part) for part in problem.get("loc", ()))
                 for problem in getattr(error, "errors", list)()[:3]]  # fmt: skip
        return JSONResponse({"error": f"the request does not follow the V2 inference protocol at "
                                      f"{', '.join(_name(w) for w in where)}; fix: send inputs of name, shape, "
                                      "datatype and data"}, status_code=400)  # fmt: skip

    async def explain_off(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=403)

    async def http_error(_: Request, error: Exception) -> JSONResponse:  # FastAPI's own, e.g. an unparsable body
        status = int(getattr(error, "status_code", 400))
        return JSONResponse({"error": f"{getattr(error, 'detail', 'bad request')}; fix: send a JSON body of "
                                      "the V1 or V2 protocol"}, status_code=status)  # fmt: skip

    model_server.app.add_middleware(
        RequestGuard, max_body_bytes=settings.max_body_bytes, explain_enabled=settings.explain.enabled
    )
    model_server.app.add_exception_handler(RequestValidationError, invalid_body)
    model_server.app.add_exception_handler(ExplainOff, explain_off)
    model_server.app.add_exception_handler(StarletteHTTPException, http_error)
    model_server.args.grpc_max_receive_message_length = settings.max_body_bytes


def parser() -> argparse.ArgumentParser:
    """KServe's own flags (--model_name, --predictor_host, --http_port, --grpc_port, which the
    controller sets) plus what to join."""
    parent = argparse.ArgumentParser(
        parents=[model_server.parser],
        description="The scoring transformer (KServe ModelServer).",
        allow_abbrev=False,  # `--feature-store=` is not --feature-store-dir: only the flags promote renders
    )
    parent.add_argument("--feature-project", required=True, help="the Feast project")
    parent.add_argument("--feature-service", required=True, help="the feature service the model was trained on")
    parent.add_argument("--entity-column", required=True, help="the entity key requests carry, e.g. user_id")
    parent.add_argument("--request-features", default="", help="comma-separated features the request carries")
    parent.add_argument("--scoring", default="{}", help="the pipeline's scoring section, as JSON")
    parent.add_argument("--feature-store-dir", help="a local store's folder (default: the platform's, from env)")
    parent.add_argument("--predictor-wait-seconds", type=float, default=600.0)
    return parent


def main(argv: list[str] | None = None) -> int:
    args, _ = parser().parse_known_args(argv)
    try:
        settings = ScoringSettings.model_validate(json.loads(args.scoring))
        transformer = ScoringTransformer(
            args.model_name,
            predictor_grpc=args.predictor_host,
            project=args.feature_project,
            feature_service=args.feature_service,
            entity_column=args.entity_column,
            request_features=[name for name in args.request_features.split(",") if name],
            settings=settings,
            store_dir=args.feature_store_dir,
            wait_seconds=args.predictor_wait_seconds,
        )
        transformer.load()
    except ComponentError as error:
        print(f"error: {error}", flush=True)
        return error.exit_code
    install_guards(settings)
    ModelServer(enable_grpc=True).start([transformer])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
