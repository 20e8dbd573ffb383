"""Request-body size limit: 413 before the handler sees more bytes than allowed.

Owns the limit for every app. A declared ``Content-Length`` over the limit is refused before the
handler runs; a chunked body is counted as it streams and refused the moment it passes the limit,
so no oversized body is ever buffered. Before answering, the rest of a moderately oversized body is
read and thrown away: closing a socket with unread data makes the kernel reset the connection, and
the client would lose the 413 it was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Final

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, ReceiveMessage, Scope, Send

from cynode.contracts.problem import PROBLEM_CONTENT_TYPE
from cynode.http.problems import ProblemError, problem_body

LimitSource = int | Callable[[], int]

TOO_LARGE_DETAIL = "Request body exceeds maximum size"
# Bodies up to this size are drained so the 413 reaches the client; larger ones are cut off.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


TooLargeAnswer = Callable[[str], tuple[str, bytes] | None]
"""For a request path, the content type and body of its 413 when not the problem document (or None)."""


def body_limit(limit: LimitSource, too_large_answer: TooLargeAnswer | None = None) -> Callable[[ASGIApp], ASGIApp]:
    """Litestar middleware factory enforcing ``limit`` (bytes, or a callable read per request).

    A body refused for its declared length is answered here, before any handler runs, so routes that
    answer errors in another shape than RFC 9457 (the OpenAI-compatible ones) say so in
    ``too_large_answer``.
    """
    current = limit if callable(limit) else (lambda: limit)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            max_bytes = current()
            declared = _declared_length(scope)
            if declared is not None and declared > max_bytes:
                await _drain(receive, already_read=0, declared=declared)
                answer = too_large_answer(scope["path"]) if too_large_answer else None
                await _send_too_large(send, answer or (PROBLEM_CONTENT_TYPE, _TOO_LARGE_PROBLEM))
                return
            received = 0

            async def counting_receive() -> ReceiveMessage:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > max_bytes:
                        if message.get("more_body", False):
                            await _drain(receive, already_read=received, declared=declared)
                        raise ProblemError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, TOO_LARGE_DETAIL)
                return message

            await app(scope, counting_receive, send)

        return limited

    return middleware


async def _drain(receive: Receive, *, already_read: int, declared: int | None) -> None:
    """Read and discard the rest of the body, unless it is (or grows) larger than DRAIN_LIMIT_BYTES."""
    if declared is not None and declared > DRAIN_LIMIT_BYTES:
        return
    read = already_read
    while read <= DRAIN_LIMIT_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


_TOO_LARGE_PROBLEM: Final = problem_body(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, TOO_LARGE_DETAIL)


async def _send_too_large(send: Send, answer: tuple[str, bytes]) -> None:
    content_type, body = answer
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        "headers": [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    await send(start)
    body_event: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(body_event)
