"""The scoring transformer's front door: what a request may be before KServe's handlers parse it.

A plain ASGI middleware (no framework import, so it is tested without the transformer's environment),
installed on KServe's FastAPI app ahead of every route (components/serving/transformer.py). Issue 29:

- A body larger than `scoring.max_body_bytes` answers 400 naming that setting, before anything parses
  it: a declared Content-Length over the limit is refused unread; a chunked body is counted as it
  arrives and refused as soon as it passes the limit. Nothing reaches the app's JSON parser unbounded.
  Before the answer, the rest of the body (up to LINGER_BYTES, within LINGER_SECONDS) is read and
  dropped, so a client that sends its whole body before reading gets the 400, not a broken pipe.
- The explain verb (`POST /v1/models/<name>:explain`, the only route that returns stored features;
  the rendered AuthorizationPolicy admits only `scoring.explain.callers` to `*:explain`) answers 403
  naming `scoring.explain.enabled` while explain is off, before the body is read.
- KServe's model-repository routes (`/v2/repository/...`: load and unload) answer 403: any caller of
  the transformer could otherwise unload the model it serves.

Answers are JSON `{"error": ...}`, as KServe's own handlers write them, and never echo the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "EXPLAIN_OFF",
    "EXPLAIN_SUFFIX",
    "LINGER_BYTES",
    "REPOSITORY_OFF",
    "REPOSITORY_PREFIX",
    "App",
    "Message",
    "Receive",
    "RequestGuard",
    "Scope",
    "Send",
    "answer",
    "too_large",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

EXPLAIN_SUFFIX = ":explain"
REPOSITORY_PREFIX = "/v2/repository/"


def too_large(limit: int) -> str:
    return (
        f"the request body is larger than {limit} bytes (scoring.max_body_bytes); fix: split the request, "
        "or raise scoring.max_body_bytes (and scoring.max_rows) in the pipeline config"
    )


EXPLAIN_OFF = (
    "explain is off for this model (scoring.explain.enabled is false); fix: score without explain on "
    ":predict, or set scoring.explain.enabled and scoring.explain.callers in the pipeline config"
)
REPOSITORY_OFF = "the model repository is not served here; fix: deploy a model through mlops promote"


class RequestGuard:
    """Refuses oversized bodies (400), explain while it is off (403) and repository calls (403)."""

    def __init__(self, app: App, *, max_body_bytes: int, explain_enabled: bool) -> None:
        self.app, self.max_body_bytes, self.explain_enabled = app, max_body_bytes, explain_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if path.startswith(REPOSITORY_PREFIX):
            await answer(send, 403, REPOSITORY_OFF)
            return
        if path.endswith(EXPLAIN_SUFFIX) and not self.explain_enabled:
            await answer(send, 403, EXPLAIN_OFF)
            return
        declared = _content_length(scope)
        if declared is None:
            await answer(send, 400, "the Content-Length header is not a non-negative integer; fix: send a valid one")
            return
        if declared > self.max_body_bytes:
            await _linger(receive, declared)
            await answer(send, 400, too_large(self.max_body_bytes))
            return
        body, more = bytearray(), True
        while more:  # the whole body, counted as it arrives (a chunked body declares no length)
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_body_bytes:
                if more:
                    await _linger(receive, None)
                await answer(send, 400, too_large(self.max_body_bytes))
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: a disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


LINGER_BYTES = 16 * 2**20
"""How much of a refused body is read and dropped before the 400 (a lingering close, as nginx does).
A client such as urllib or requests sends the whole body before it reads the answer: closed on while
it still sends, it sees a broken pipe or a reset instead of the 400 naming the setting. Past this, the
connection is closed anyway (a bigger body is no mistake of size that a message would help)."""


LINGER_SECONDS = 5.0
"""How long the rest of a refused body may take to arrive (nginx's lingering_timeout): a caller that
trickles it holds the connection no longer."""


async def _linger(receive: Receive, declared: int | None) -> None:
    """Read and drop the rest of a refused body, up to LINGER_BYTES and LINGER_SECONDS, before the 400
    is sent (once a response is complete, an ASGI server such as uvicorn hands the app no more body and
    closes the connection on a client still sending it): nothing is kept."""
    if declared is not None and declared > LINGER_BYTES:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_drop(receive), LINGER_SECONDS)


async def _drop(receive: Receive) -> None:
    dropped = 0
    while dropped <= LINGER_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _content_length(scope: Scope) -> int | None:
    """The declared length, 0 when none is declared, None when the header is not a length."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) <= 18 else None
    return 0


async def answer(send: Send, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
