"""`mlops promote --analyze` with the error rate and p99 per version (issue 32 item 4), end to end through the
CLI: the registry, the serving history and the decision log as tests/test_canary_analysis.py sets them up
(its fixtures: two versions registered by the real steps, v1 champion, v2 canary at 10%), the request
outcomes written where the transformer writes them, and Prometheus as a strict stand-in over loopback
(tests/prometheus_query_stand_in.py).

A canary whose scores look like the champion's (KS and PSI pass) but which answers more 5xx is rolled
back, from the log and, with --prometheus, from Prometheus; promote.prometheus_url pointing at nothing
stops the analysis with exit 75 (retried) and records nothing; --prometheus belongs to --analyze.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.platform import model_registry
from components.serving.decision_log import Identity
from components.serving.request_log import RequestOutcome, files_of
from tests.prometheus_query_stand_in import PrometheusStandIn, vector
from tests.test_canary_analysis import (
    CANARY,
    CHAMPION,
    MODEL,
    _canary_with_log,
    _config,
    _last,
    _promote,
    _scores,
    registry,
    two_versions,
)

__all__ = ["registry", "two_versions"]  # the fixtures, shared with test_canary_analysis

WHERE = f'namespace="fraud",model="{MODEL}"'
REQUESTS = f"sum by (version, code_class) (increase(mlops_transformer_requests_total{{{WHERE}}}[{{seconds}}s]))"
P99 = (
    "histogram_quantile(0.99, sum by (version, le) "
    f"(increase(mlops_transformer_request_seconds_bucket{{{WHERE}}}[{{seconds}}s])))"
)


def _requests(log: str, version: int, n: int, server_errors: int, role: str) -> None:
    """n request outcomes of `version` just now, the first `server_errors` answered 503, as the transformer
    flushes them under the log's `_requests/`."""
    now = dt.datetime.now(dt.UTC)
    latencies = np.random.default_rng(version).gamma(4.0, 5.0, n)
    outcomes = [RequestOutcome(f"v{version}-{i}", now, str(version), "answer", 503 if i < server_errors else 200,
                               float(ms), 1) for i, ms in enumerate(latencies)]  # fmt: skip
    for relative, data, _ in files_of(outcomes, Identity("fraud", MODEL, "0" * 64, role, "local", "user_id", 0.5)):
        (Path(log) / relative).parent.mkdir(parents=True, exist_ok=True)
        (Path(log) / relative).write_bytes(data)


def test_a_canary_answering_more_errors_is_rolled_back_from_the_log_and_from_prometheus(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(registry["tmp"])
    log = _canary_with_log(registry, config, _scores(3, 600))  # scores like the champion's: KS and PSI pass
    _requests(log, CHAMPION, 400, server_errors=1, role="champion")
    _requests(log, CANARY, 200, server_errors=12, role="canary")  # 6.00% against 0.25%
    capsys.readouterr()
    assert _promote(registry, "--analyze", "--log", log, "--config", config, "--dry-run", "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["verdict"] == "rollback", printed["reasons"]
    assert len(printed["reasons"]) == 1 and printed["reasons"][0].startswith(
        "error rate canary 6.00% vs champion 0.25%"
    )
    serving = printed["evidence"]["serving"]
    assert (serving["champion"]["requests"], serving["canary"]["requests"]) == (400, 200)
    assert serving["source"].startswith("the decision log's request outcomes at")

    prometheus = PrometheusStandIn({
        REQUESTS: vector([({"version": str(CHAMPION), "code_class": "2xx"}, 1000.0),
                          ({"version": str(CANARY), "code_class": "2xx"}, 500.0)]),
        P99: vector([({"version": str(CHAMPION)}, 0.05), ({"version": str(CANARY)}, 0.2)]),
    })  # fmt: skip
    try:
        flags = ["--analyze", "--log", log, "--config", config, "--prometheus", prometheus.url]
        assert _promote(registry, *flags) == 0
    finally:
        prometheus.close()
    assert len(prometheus.asked) == 2 and all(0 < seconds < 600 for seconds in prometheus.ranges)  # the canary window
    entry = _last(registry)
    assert (entry.action, entry.to_version) == ("rollback", CHAMPION)
    assert entry.evidence["serving"]["source"].startswith(f"Prometheus at {prometheus.url}")
    assert entry.evidence["reasons"] == ["p99 canary 200.0 ms vs champion 50.0 ms (ratio 4.00, max 1.5)"]


def test_an_unreachable_prometheus_exits_75_and_records_nothing(
    registry: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    config = _config(registry["tmp"], prometheus_url=closed)
    log = _canary_with_log(registry, config, _scores(3, 600))
    before = len(model_registry.history(registry["mlflow"], MODEL))
    capsys.readouterr()
    assert _promote(registry, "--analyze", "--log", log, "--config", config) == 75
    assert f"Prometheus at {closed} did not answer" in capsys.readouterr().err
    assert len(model_registry.history(registry["mlflow"], MODEL)) == before
    assert _promote(registry, "--promote", "--prometheus", closed) == 2
    assert "--prometheus belongs to --analyze" in capsys.readouterr().err
