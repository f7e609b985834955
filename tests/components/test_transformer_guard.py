"""The scoring transformer's request limits without a server (issue 29: "one request can stop a
transformer"): the RequestGuard middleware driven as ASGI (the same callable KServe's app runs), and the
join off the event loop with a strict, slow online-store stand-in. The running transformer's answers
are checked in tests/integration/test_scoring_path.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import MutableMapping
from typing import Any

import pytest

from components.config import ScoringSettings
from components.serving.request_guard import RequestGuard, answer, too_large
from components.serving.scoring import OffLoopJoiner, RequestJoiner

LIMIT = 4096


class App:
    """The app behind the guard: records the body it was handed, answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


class HeaderOnlyGuard(RequestGuard):
    """The guard broken on purpose: it checks the declared Content-Length and nothing else, so a
    chunked body (no length declared) reaches the app whole, however large."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and int(declared) > self.max_body_bytes:
            await answer(send, 400, too_large(self.max_body_bytes))
            return
        await self.app(scope, receive, send)


def _call(
    path: str,
    chunks: list[bytes],
    *,
    declared: int | None = None,
    explain: bool = False,
    guard: type[RequestGuard] = RequestGuard,
) -> tuple[int, Any, App]:
    app, sent = App(), []
    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
    scope = {"type": "http", "path": path, "headers": headers, "method": "POST"}
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    pulled = []

    async def receive() -> dict[str, Any]:
        pulled.append(1)
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    answered_after: list[int] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if not sent:
            answered_after.append(len(pulled))
        sent.append(message)

    asyncio.run(guard(app, max_body_bytes=LIMIT, explain_enabled=explain)(scope, receive, send))
    status = sent[0]["status"]
    body = json.loads(sent[1]["body"]) if status != 200 else None
    return status, (body, answered_after[0]), app


PREDICT, EXPLAIN = "/v1/models/fraud-detector:predict", "/v1/models/fraud-detector:explain"


def test_bodies_within_the_limit_reach_the_app_whole() -> None:
    """Positive control: a body at the limit, declared or chunked, reaches the app byte for byte."""
    status, _, app = _call(PREDICT, [b"x" * LIMIT], declared=LIMIT)
    assert status == 200 and app.bodies == [b"x" * LIMIT]
    status, _, app = _call(PREDICT, [b"a" * 1000, b"b" * 1000, b""])
    assert status == 200 and app.bodies == [b"a" * 1000 + b"b" * 1000]


def test_an_oversized_body_is_400_naming_the_setting_before_the_app_reads_it() -> None:
    """issue 29: there was no limit on body size; past scoring.max_body_bytes the guard answers 400
    naming it, unread when the length is declared, and as soon as a chunked body passes the limit."""
    status, (error, pulled), app = _call(PREDICT, [b"x" * (LIMIT + 1)], declared=LIMIT + 1)
    assert status == 400 and "scoring.max_body_bytes" in error["error"] and str(LIMIT) in error["error"]
    assert pulled == 1 and app.bodies == []  # refused on the header alone; the body drained, then the 400
    chunks = [b"x" * 1000] * 100  # chunked: no Content-Length, 100 kB in all
    status, (error, pulled), app = _call(PREDICT, chunks)
    assert status == 400 and "scoring.max_body_bytes" in error["error"] and app.bodies == []
    assert pulled == len(chunks)  # refused past the limit; the rest drained (dropped) before the 400
    status, (error, _), app = _call(PREDICT, [b"{}"], declared=-1)  # hand-written header: not a length
    assert status == 400 and "Content-Length" in error["error"] and app.bodies == []
    # The control broken on purpose: a guard that trusts the declared length alone. It is live (the
    # declared oversized body is still refused) yet the same chunked body reaches the app whole, so
    # the assertions above, run against it, would see the leak.
    status, (error, pulled), app = _call(PREDICT, [b"x" * (LIMIT + 1)], declared=LIMIT + 1, guard=HeaderOnlyGuard)
    assert status == 400 and "scoring.max_body_bytes" in error["error"] and app.bodies == []
    status, _, app = _call(PREDICT, chunks, guard=HeaderOnlyGuard)
    assert status == 200 and app.bodies == [b"x" * 100_000]


def test_explain_is_403_naming_the_setting_while_off_and_reaches_the_app_when_on() -> None:
    """issue 29: explain needed no permission; off (the default), the explain verb answers 403 naming
    scoring.explain.enabled before its body is read; predict is untouched."""
    assert _call(PREDICT, [b"{}"])[0] == 200  # positive control
    status, (error, pulled), app = _call(EXPLAIN, [b"{}"])
    assert status == 403 and "scoring.explain.enabled" in error["error"] and pulled == 0 and app.bodies == []
    status, _, app = _call(EXPLAIN, [b"{}"], explain=True)  # enabled: the verb reaches the model
    assert status == 200 and app.bodies == [b"{}"]


def test_the_model_repository_routes_are_refused() -> None:
    """issue 29 (found here): KServe serves /v2/repository/models/<name>/unload to every caller, which
    would unload the model the transformer scores with."""
    status, (error, _), app = _call("/v2/repository/models/fraud-detector/unload", [b""])
    assert status == 403 and "repository" in error["error"] and app.bodies == []


class SlowStore:
    """A strict online-store stand-in: a large read blocks until the test releases it, and fails if it
    is never released (so a join that holds the event loop shows as a timeout, not a pass)."""

    def __init__(self) -> None:
        self.features, self.entity_types = ["txn_count_1h"], {"user_id": "INT64"}
        self.large_started, self.release = threading.Event(), threading.Event()

    def get(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        if len(rows) > 1:
            self.large_started.set()
            if not self.release.wait(timeout=1.5):
                raise TimeoutError("the large read was never released")
        return {"user_id": [r["user_id"] for r in rows], "txn_count_1h": [1.0] * len(rows)}


def _joiner(store: SlowStore) -> RequestJoiner:
    return RequestJoiner(store, model_features=["amount", "txn_count_1h"], entity_column="user_id",
                         request_features=["amount"], settings=ScoringSettings())  # fmt: skip


async def _small_during_large(join: Any, store: SlowStore) -> bool:
    """Whether a one-row request is answered while a 500-row one is still reading the store."""
    rows = [{"user_id": i, "amount": 1.0} for i in range(500)]
    large = asyncio.ensure_future(join(rows))
    await asyncio.sleep(0)  # let the large request start
    try:
        small = await asyncio.wait_for(join([{"user_id": 1, "amount": 2.0}]), timeout=2.0)
        answered = small.matrix.shape == (1, 2) and not large.done()
    except TimeoutError:
        answered = False
    store.release.set()
    with contextlib.suppress(TimeoutError):  # the on-loop control's read timed out: its release came too late
        assert (await large).matrix.shape == (500, 2)
    return answered


def test_a_small_request_is_answered_while_a_large_one_is_joining() -> None:
    """issue 29: the join ran on the event loop, so one large request stalled every other."""
    store = SlowStore()
    assert asyncio.run(_small_during_large(OffLoopJoiner(_joiner(store)).join, store))
    assert store.large_started.is_set()
    # The control broken on purpose: the join on the loop, as before; the small request waits.
    on_loop = SlowStore()
    joiner = _joiner(on_loop)

    async def join_on_loop(rows: list[dict[str, Any]]) -> Any:
        return joiner.join(rows)

    assert not asyncio.run(_small_during_large(join_on_loop, on_loop))


@pytest.mark.parametrize("bound", [1, 3])
def test_joins_in_flight_are_bounded(bound: int) -> None:
    """At most scoring.max_concurrent_joins joins run at once; the others wait their turn."""
    running, peak, lock = [0], [0], threading.Lock()

    class Counting:
        def __init__(self) -> None:
            self.features, self.entity_types = ["txn_count_1h"], {"user_id": "INT64"}

        def get(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            threading.Event().wait(0.05)
            with lock:
                running[0] -= 1
            return {"user_id": [r["user_id"] for r in rows], "txn_count_1h": [1.0] * len(rows)}

    joiner = OffLoopJoiner(RequestJoiner(Counting(), model_features=["amount", "txn_count_1h"],
                                         entity_column="user_id", request_features=["amount"],
                                         settings=ScoringSettings(max_concurrent_joins=bound)))  # fmt: skip

    async def many() -> None:
        await asyncio.gather(*(joiner.join([{"user_id": i, "amount": 1.0}]) for i in range(8)))

    asyncio.run(many())
    assert peak[0] == bound


def test_after_refusing_a_body_the_guard_reads_and_drops_its_rest_up_to_a_bound() -> None:
    """A client that sends its whole body before reading the answer (urllib, requests) got a broken pipe
    instead of the 400 when the server closed on it mid-send (seen under load in the scoring path test).
    So before the 400 the guard reads the rest of the body and drops it (a lingering close; uvicorn gives
    the app no more body once the response is complete), up to LINGER_BYTES and LINGER_SECONDS; past
    that, or when the declared length is past it, it stops reading."""
    from components.serving.request_guard import LINGER_BYTES

    def drained(chunks: list[bytes], declared: int | None) -> int:
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                    for i, c in enumerate(chunks)]  # fmt: skip
        headers = [] if declared is None else [(b"content-length", str(declared).encode())]
        scope = {"type": "http", "path": PREDICT, "headers": headers, "method": "POST"}
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        app = App()
        asyncio.run(RequestGuard(app, max_body_bytes=LIMIT, explain_enabled=False)(scope, receive, send))
        assert sent[0]["status"] == 400 and app.bodies == []
        return len(chunks) - len(messages)

    declared = [b"x" * 1000] * 10
    assert drained(declared, 10_000) == 10  # declared over the limit: all of it read, none kept
    assert drained([b"x" * 1000] * 10, None) == 10  # chunked: the rest after the limit too
    big = LINGER_BYTES // 2**20 + 2
    assert drained([b"x" * 2**20] * (big + 5), None) < big + 5  # past the bound: stops reading
    assert drained([b"x" * 2**20] * 3, LINGER_BYTES + 1) == 0  # declared past the bound: not even begun
