"""Generated request bodies for a running scoring transformer (issue 29: "no input yields a 500").

Hypothesis draws V1 and V2 REST bodies, valid and not: well-formed rows, wrong types, ints past int64
and float32, NaN and infinities, deep nesting, malformed JSON, bodies past scoring.max_body_bytes,
and the explain flag smuggled into a predict body. `check_answers` sends each to the transformer the
scoring-path fixture already runs (one server for every example) and requires an answer a caller can
act on: 200, 400, 403 or 404, a JSON error naming no dependency's internals and echoing none of a
sent marker string. Derandomized, so CI draws the same examples every run.
"""

from __future__ import annotations

import http.client
import json
import math
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ALLOWED = {200, 400, 403, 404}
MARKER = "zq-echo-marker"
"""A string no answer may repeat: errors name fields and rules, never the value sent."""
INTERNALS = ("Traceback", "redis.", "grpc.", "tritonclient", "numpy", "Exception :")

_INT = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=2**63, max_value=2**200),
    st.integers(max_value=-(2**63) - 1, min_value=-(2**200)),
)
_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
_JSON_LEAF = st.one_of(st.none(), st.booleans(), _INT, _FLOAT, st.just(MARKER), st.text(max_size=20))
_JSON = st.recursive(_JSON_LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8),
                     inner, max_size=4), max_leaves=12)  # fmt: skip


def _dumps(value: Any) -> bytes:
    """JSON as a careless client writes it: NaN and Infinity go out as Python writes them (invalid JSON)."""
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def v1_bodies(draw: st.DrawFn, entity: str, request_features: list[str]) -> bytes:
    row: dict[str, Any] = {entity: draw(st.one_of(_INT, _JSON)), **{
        name: draw(st.one_of(st.floats(min_value=-1e6, max_value=1e6), _INT, _FLOAT, _JSON))
        for name in request_features if draw(st.booleans()) or draw(st.booleans())}}  # fmt: skip
    rows = draw(st.lists(st.just(row) | st.dictionaries(st.text(max_size=6), _JSON, max_size=3), max_size=5))
    shape = draw(st.sampled_from(["instances", "bare", "explain", "garbage"]))
    if shape == "instances":
        return _dumps({"instances": rows})
    if shape == "bare":
        return _dumps(row)
    if shape == "explain":
        return _dumps({"instances": rows, "explain": draw(st.one_of(st.just(True), _JSON_LEAF))})
    return _dumps(draw(_JSON))


@st.composite
def v2_bodies(draw: st.DrawFn, entity: str, request_features: list[str]) -> bytes:
    names = draw(st.lists(st.sampled_from([entity, *request_features, "unknown_input"]), max_size=4))
    inputs = []
    for name in names:
        count = draw(st.integers(min_value=0, max_value=4))
        inputs.append({
            "name": name,
            "shape": draw(st.one_of(st.just([count]), st.lists(st.integers(-2, 5), max_size=3), _JSON_LEAF)),
            "datatype": draw(st.sampled_from(["INT64", "FP32", "FP64", "INT32", "BOOL", "BYTES", "UINT8", MARKER])),
            "data": draw(st.lists(st.one_of(_INT, _FLOAT, _JSON_LEAF), min_size=count, max_size=count) | _JSON),
        })  # fmt: skip
    body: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        body["parameters"] = {"explain": draw(_JSON_LEAF)}
    return _dumps(draw(_JSON) if draw(st.integers(0, 9)) == 0 else body)


_MALFORMED = st.one_of(
    st.binary(max_size=64),
    st.integers(min_value=1, max_value=200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(min_value=1, max_value=200_000).map(lambda depth: b'{"instances": ' + b"[" * depth),
    st.sampled_from([b"", b"{", b'{"instances": [{"user_id": NaN}]}', b'{"instances": [{"user_id": 1e999}]}']),
)


class Client:
    """One keep-alive connection to the transformer (an example costs a round trip, not a handshake)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):  # a 400 past the body limit may close the connection: reconnect once
            try:
                self.connection.request("POST", path, body, {"Content-Type": "application/json"})
                response = self.connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                self.connection.close()
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def check_answer(status: int, answer: bytes, body: bytes) -> None:
    assert status in ALLOWED, (status, answer[:300], body[:300])
    if status != 200:
        error = json.loads(answer)["error"]
        assert MARKER not in error, (error, body[:300])
        assert not any(word in error for word in INTERNALS), (error, body[:300])
    else:
        scores = json.loads(answer)
        values = scores.get("predictions") or next(o["data"] for o in scores["outputs"] if o["name"] == "score")
        assert all(isinstance(v, float) and math.isfinite(v) for v in values), (scores, body[:300])


def valid_v1(rows: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """V1 bodies of rows known to score (the fixture's): each must be answered 200."""
    return st.lists(st.sampled_from(rows), min_size=1, max_size=5).map(lambda chosen: _dumps({"instances": chosen}))


def valid_v2(rows: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """The same rows as a V2 request, one tensor per column (INT64 for ints, FP32 for floats): 200."""

    def body(chosen: list[dict[str, Any]]) -> bytes:
        inputs = [{"name": name, "shape": [len(chosen)], "data": [row[name] for row in chosen],
                   "datatype": "INT64" if isinstance(chosen[0][name], int) else "FP32"}
                  for name in chosen[0]]  # fmt: skip
        return _dumps({"inputs": inputs})

    return st.lists(st.sampled_from(rows), min_size=1, max_size=5).map(body)


def check_answers(
    url: str, model: str, entity: str, request_features: list[str], max_body_bytes: int, rows: list[dict[str, Any]]
) -> list[tuple[str, int | None, int]]:
    """Sends generated bodies to the transformer at `url`; returns (route, expected, status) per body sent.
    `expected` is 200 for bodies of `rows` (known to score), 400 for malformed JSON and bodies past
    `max_body_bytes`, None for the generated ones (valid or not by chance: any answer in ALLOWED)."""
    client, sent = Client(url), []
    routes = {"v1": f"/v1/models/{model}:predict", "v2": f"/v2/models/{model}/infer",
              "explain": f"/v1/models/{model}:explain"}  # fmt: skip
    oversized = st.integers(1, 3).map(lambda k: b" " * (max_body_bytes + k))
    bodies = st.one_of(
        st.tuples(st.sampled_from(["v1", "explain"]), st.none(), v1_bodies(entity, request_features)),
        st.tuples(st.just("v2"), st.none(), v2_bodies(entity, request_features)),
        st.tuples(st.just("v1"), st.just(200), valid_v1(rows)),
        st.tuples(st.just("v2"), st.just(200), valid_v2(rows)),
        st.tuples(st.sampled_from(["v1", "v2"]), st.just(400), _MALFORMED),
        st.tuples(st.sampled_from(["v1", "v2"]), st.just(400), oversized),
    )

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(bodies)
    def one(case: tuple[str, int | None, bytes]) -> None:
        route, expected, body = case
        status, answer = client.post(routes[route], body)
        check_answer(status, answer, body)
        assert expected in (None, status), (route, expected, status, answer[:300], body[:300])
        sent.append((route, expected, status))

    one()
    return sent
