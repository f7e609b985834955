"""The canary analysis's error rate and p99 latency per version (issue 32 item 4), from the decision log's
request outcomes (written as the transformer writes them: request_log.files_of under the log's root) and
from Prometheus (a real HTTP server over loopback answering the query API's format, which refuses any
query it was not told to expect, as Prometheus refuses one it cannot parse).

Verdicts: a canary with more server errors is rolled back; a slower one (p99 ratio) is rolled back; an
equal one promotes; too few requests are reported, not judged; nothing recorded is "not measured", with
why. An unreachable Prometheus is a TransientError (exit 75), never "not measured".
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.config import PromoteSettings
from components.errors import ComponentError, TransientError
from components.platform import serving_figures
from components.serving.decision_log import Identity
from components.serving.decision_record import DecisionRecord, table_of
from components.serving.request_log import RequestOutcome, files_of
from components.steps.canary_analysis import analyze
from tests.prometheus_query_stand_in import PrometheusStandIn, vector

MODEL = "fraud-detector"
CHAMPION, CANARY = 1, 2
NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
SINCE, UNTIL = NOW - dt.timedelta(hours=1), NOW + dt.timedelta(minutes=1)
SETTINGS = PromoteSettings(namespace="fraud", analysis_min_requests=100)


def _outcomes(version: str, latencies: np.ndarray, server_errors: int, client_errors: int = 0) -> list[RequestOutcome]:
    codes = [503] * server_errors + [400] * client_errors + [200] * (len(latencies) - server_errors - client_errors)
    source = "answer" if version else "none"
    return [
        RequestOutcome(f"{version}-{i}", NOW - dt.timedelta(seconds=i), version, source, code, float(ms), 1)
        for i, (code, ms) in enumerate(zip(codes, latencies, strict=True))
    ]


def _write(root: Path, outcomes: list[RequestOutcome], role: str = "champion") -> None:
    """Outcomes flushed as the transformer's decision log flushes them, under `<root>/_requests/`."""
    identity = Identity("fraud", MODEL, "0" * 64, role, "local", "user_id", 0.5)
    for relative, data, _ in files_of(outcomes, identity):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)


def _latencies(seed: int, n: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(4.0, 5.0, n) * scale


def _decisions() -> Any:
    """Both versions' decisions in the window, from one score distribution (KS and PSI pass)."""
    rng = np.random.default_rng(7)
    return table_of(
        DecisionRecord(request_id=f"{v}-{i}", row=0, decided_at=NOW, namespace="fraud", model_name=MODEL,
                       model_version=str(v), model_sha256="0" * 64, serving_role="champion", revision="local",
                       entity_column="user_id", entity_id=str(i), request={"user_id": i}, feature_names=["amount"],
                       feature_values=[float(s)], unknown_entity=False, score=float(s), threshold=0.5,
                       decision=int(s >= 0.5))
        for v in (CHAMPION, CANARY) for i, s in enumerate(rng.beta(2.0, 8.0, 700))
    )  # fmt: skip


def _verdict(figures: serving_figures.ServingFigures, settings: PromoteSettings = SETTINGS) -> Any:
    return analyze(_decisions(), champion=CHAMPION, canary=CANARY, since=SINCE, until=UNTIL, settings=settings,
                   serving=lambda: figures)  # fmt: skip


def test_the_log_gives_each_versions_error_rate_and_exact_p99(tmp_path: Path) -> None:
    old, new = _latencies(1, 400), _latencies(2, 300)
    _write(tmp_path, _outcomes("1", old, server_errors=2, client_errors=7))
    _write(tmp_path, _outcomes("2", new, server_errors=9), role="canary")
    _write(tmp_path, _outcomes("", _latencies(3, 4), server_errors=4))  # failed before any version answered
    late = [RequestOutcome("late", UNTIL + dt.timedelta(minutes=5), "1", "answer", 503, 1.0, 1)]
    _write(tmp_path, late)  # after the window: not counted
    figures = serving_figures.from_log(f"{tmp_path}/", MODEL, SINCE, UNTIL)
    assert set(figures.versions) == {"1", "2"} and figures.source.endswith(f"{tmp_path}/_requests/")
    champion, canary = figures.versions["1"], figures.versions["2"]
    assert (champion.requests, champion.server_errors, champion.client_errors) == (400, 2, 7)
    assert (canary.requests, canary.server_errors, canary.error_rate) == (300, 9, pytest.approx(3.0))
    assert champion.p99_ms == pytest.approx(float(np.quantile(old, 0.99)))
    assert canary.p99_ms == pytest.approx(float(np.quantile(new, 0.99)))
    assert (figures.unattributed.requests, figures.unattributed.server_errors) == (4, 4)
    assert serving_figures.from_log(f"{tmp_path}/", "another-model", SINCE, UNTIL).missing.startswith("no request")
    nothing = serving_figures.from_log(f"{tmp_path / 'empty'}/", MODEL, SINCE, UNTIL)
    assert nothing.versions == {} and nothing.missing.startswith("nothing at")


def test_more_server_errors_roll_back_a_slower_canary_rolls_back_equal_ones_promote(tmp_path: Path) -> None:
    def figures(name: str, canary_errors: int, canary_scale: float) -> serving_figures.ServingFigures:
        root = tmp_path / name
        _write(root, _outcomes("1", _latencies(1, 500), server_errors=2))
        _write(root, _outcomes("2", _latencies(2, 500, canary_scale), server_errors=canary_errors), role="canary")
        _write(root, _outcomes("", _latencies(3, 3), server_errors=3))
        return serving_figures.from_log(f"{root}/", MODEL, SINCE, UNTIL)

    erring = _verdict(figures("erring", canary_errors=15, canary_scale=1.0))  # 3.0% vs 0.4%: +2.6 points
    assert erring.action == "rollback" and erring.reasons[0].startswith("error rate canary 3.00% vs champion 0.40%")
    assert erring.evidence["serving"]["canary"]["error_rate_pct"] == 3.0
    assert erring.evidence["serving"]["unattributed"]["server_errors"] == 3  # reported, charged to neither
    slow = _verdict(figures("slow", canary_errors=2, canary_scale=2.0))
    assert slow.action == "rollback" and len(slow.reasons) == 1 and slow.reasons[0].startswith("p99 canary")
    ratio = slow.evidence["serving"]["canary"]["p99_ms"] / slow.evidence["serving"]["champion"]["p99_ms"]
    assert ratio > SETTINGS.analysis_max_p99_ratio
    equal = _verdict(figures("equal", canary_errors=3, canary_scale=1.0))  # +0.2 points, p99 of another draw
    assert equal.action == "promote", equal.reasons
    assert equal.evidence["error_rate"].startswith("judged: error rate canary 0.60% vs champion 0.40%")
    assert equal.evidence["latency_p99"].startswith("judged: p99 canary")
    assert "error rate canary 0.60%" in equal.reasons[0]
    lenient = SETTINGS.model_copy(update={"analysis_max_error_rate_increase": 5.0})
    assert _verdict(figures("erring-lenient", 15, 1.0), lenient).action == "promote"  # the threshold decides
    few = _verdict(figures("few", 15, 2.0), SETTINGS.model_copy(update={"analysis_min_requests": 501}))
    assert few.action == "promote" and few.evidence["error_rate"].startswith("reported, not judged: 500 requests")


def test_nothing_recorded_is_not_measured_with_why(tmp_path: Path) -> None:
    _write(tmp_path, _outcomes("1", _latencies(1, 500), server_errors=0))
    only_champion = _verdict(serving_figures.from_log(f"{tmp_path}/", MODEL, SINCE, UNTIL))
    assert only_champion.action == "promote"
    assert only_champion.evidence["error_rate"].startswith("not measured: no requests of v2 in the window")
    none = _verdict(serving_figures.from_log(f"{tmp_path / 'none'}/", MODEL, SINCE, UNTIL))
    assert none.evidence["latency_p99"].startswith("not measured: nothing at")


# --- Prometheus ------------------------------------------------------------------------------------

SECONDS = 3660  # the window, SINCE to UNTIL
REQUESTS_QUERY = (
    "sum by (version, code_class) (increase(mlops_transformer_requests_total"
    f'{{namespace="fraud",model="{MODEL}"}}[{{seconds}}s]))'
)
P99_QUERY = (
    "histogram_quantile(0.99, sum by (version, le) (increase(mlops_transformer_request_seconds_bucket"
    f'{{namespace="fraud",model="{MODEL}"}}[{{seconds}}s])))'
)


@pytest.fixture
def prometheus() -> Iterator[Callable[..., PrometheusStandIn]]:
    servers: list[PrometheusStandIn] = []

    def serve(answers: dict[str, dict[str, Any]], at: float | None = UNTIL.timestamp()) -> PrometheusStandIn:
        servers.append(PrometheusStandIn(answers, at))
        return servers[-1]

    yield serve
    for server in servers:
        server.close()


def _figures(url: str) -> serving_figures.ServingFigures:
    return serving_figures.from_prometheus(url, namespace="fraud", model=MODEL, since=SINCE, until=UNTIL)


def test_prometheus_gives_the_figures_and_a_canary_with_more_errors_is_rolled_back(prometheus: Any) -> None:
    requests = vector([
        ({"version": "1", "code_class": "2xx"}, 998.7), ({"version": "1", "code_class": "5xx"}, 2.0),
        ({"version": "2", "code_class": "2xx"}, 480.0), ({"version": "2", "code_class": "4xx"}, 5.0),
        ({"version": "2", "code_class": "5xx"}, 15.2), ({"version": "unattributed", "code_class": "5xx"}, 3.0),
    ])  # fmt: skip
    p99 = vector([({"version": "1"}, 0.081), ({"version": "2"}, 0.09), ({"version": "unattributed"}, float("nan"))])
    server = prometheus({REQUESTS_QUERY: requests, P99_QUERY: p99})
    figures = _figures(server.url)
    assert server.asked == [q.replace("{seconds}", str(SECONDS)) for q in (REQUESTS_QUERY, P99_QUERY)]
    assert server.ranges == [SECONDS, SECONDS]
    assert figures.source == f"Prometheus at {server.url} over the last {SECONDS} s"
    champion, canary = figures.versions["1"], figures.versions["2"]
    assert (champion.requests, champion.server_errors, champion.p99_ms) == (1001, 2, pytest.approx(81.0))
    assert (canary.requests, canary.server_errors, canary.client_errors, canary.p99_ms) == (
        500, 15, 5, pytest.approx(90.0))  # fmt: skip
    assert (figures.unattributed.requests, figures.unattributed.p99_ms) == (3, None)
    verdict = _verdict(figures)
    assert verdict.action == "rollback" and verdict.reasons[0].startswith("error rate canary 3.00% vs champion 0.20%")
    assert verdict.evidence["serving"]["source"].startswith("Prometheus at")


def test_prometheus_that_is_down_is_transient_and_one_that_refuses_is_permanent(prometheus: Any) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(TransientError, match="did not answer") as down:
        _figures(closed)
    assert down.value.exit_code == 75
    refusing = prometheus({"up": vector([])})  # expects another query: refuses ours, as a bad query is refused
    with pytest.raises(ComponentError, match="refused the query") as refused:
        _figures(refusing.url)
    assert not isinstance(refused.value, TransientError) and refused.value.exit_code == 2
    with pytest.raises(ComponentError, match="not a Prometheus address"):
        _figures("prometheus:9090")
    empty = prometheus({REQUESTS_QUERY: vector([]), P99_QUERY: vector([])})
    assert _figures(empty.url).missing == f"Prometheus holds no {MODEL} requests in fraud over the window"


def test_a_model_name_cannot_widen_the_promql_past_its_namespace() -> None:
    """The model name is the tenant's to choose: one holding `"}` ended the matcher early and could pull
    another namespace's series into the evidence. It is a string literal now; plain names are unchanged."""
    from components.platform.serving_figures import queries

    hostile = 'm"} or mlops_transformer_requests_total{namespace="pricing'
    for promql in queries("fraud", hostile, 60).values():
        assert 'model="m\\"} or mlops_transformer_requests_total{namespace=\\"pricing"' in promql, promql
        assert 'namespace="pricing' not in promql, promql
    assert 'namespace="fraud",model="fraud-detector"}' in queries("fraud", "fraud-detector", 60)["requests"]
