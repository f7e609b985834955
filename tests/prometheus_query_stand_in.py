"""A Prometheus stand-in for the canary analysis's queries (issue 32 item 4): a real HTTP server on loopback
answering GET /api/v1/query in Prometheus's own format (status, data.resultType "vector", data.result of
{"metric", "value": [time, "text"]}). Strict: it answers only the queries it was given, where `{seconds}`
in a query stands for the range in whole seconds, and only at the expected evaluation time; any other
query, path or time is refused as Prometheus refuses a bad query (HTTP 400, status "error", errorType
"bad_data"), so a query the analysis writes differently fails the test rather than reading as empty.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["PrometheusStandIn", "vector"]


def vector(samples: list[tuple[dict[str, str], float]], at: float = 0.0) -> dict[str, Any]:
    """An instant query's answer: one sample per (labels, value); NaN as Prometheus writes it."""
    result = [{"metric": labels, "value": [at, "NaN" if value != value else repr(value)]} for labels, value in samples]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


class PrometheusStandIn(ThreadingHTTPServer):
    """`answers`: query (with `{seconds}` for the range) -> answer; `at`: the evaluation time expected (None:
    within a minute of now). `asked` keeps every query received, `ranges` the seconds each matched with."""

    def __init__(self, answers: dict[str, dict[str, Any]], at: float | None = None) -> None:
        self.patterns = [
            (re.compile(re.escape(q).replace(re.escape("{seconds}"), r"(\d+)")), a) for q, a in answers.items()
        ]
        self.at: float | None = at
        self.asked: list[str] = []
        self.ranges: list[int] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def answer(self, path: str, query: str, at: str) -> tuple[int, dict[str, Any]]:
        self.asked.append(query)
        when = float(at) if re.fullmatch(r"[0-9.]+", at) else -1.0
        timely = abs(when - time.time()) < 60 if self.at is None else when == self.at
        for pattern, answer in self.patterns:
            found = pattern.fullmatch(query)
            if path == "/api/v1/query" and found and timely:
                self.ranges += [int(g) for g in found.groups()]
                return 200, answer
        return 400, {"status": "error", "errorType": "bad_data", "error": f"unexpected query {query!r} at {at}"}


class _Handler(BaseHTTPRequestHandler):
    server: PrometheusStandIn

    def do_GET(self) -> None:
        address = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(address.query)
        status, body = self.server.answer(address.path, params.get("query", [""])[0], params.get("time", [""])[0])
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None
