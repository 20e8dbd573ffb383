"""Server-sent events as the OpenAI streaming API uses them: ``data: <json>`` events ending with
``data: [DONE]``. Shared by every hop that relays a chat stream (backend -> node -> gateway)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Final, TypeVar

import msgspec

from cynode.contracts.codec import encode

T = TypeVar("T")
E = TypeVar("E", bound=Exception)

DONE: Final = "[DONE]"
DONE_EVENT: Final = b"data: [DONE]\n\n"
MEDIA_TYPE: Final = "text/event-stream"


def sse_event(data: bytes) -> bytes:
    """One ``data:`` event carrying a JSON document (which never spans lines when msgspec wrote it)."""
    return b"data: " + data + b"\n\n"


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each event until ``[DONE]``; comments, other fields and pings are skipped."""
    async for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == DONE:
            return
        if data:
            yield data


async def started(chunks: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    """``chunks`` with its first item already awaited, so a failure before it raises here (while an
    error status can still be sent) rather than after the response has begun."""
    first = await anext(chunks)

    async def rest() -> AsyncGenerator[T, None]:
        try:
            yield first
            async for item in chunks:
                yield item
        finally:
            await chunks.aclose()  # the reader went away early: stop the producer (and its generation)

    return rest()


async def sse_stream(
    chunks: AsyncGenerator[msgspec.Struct, None],
    failure: type[E],
    error_body: Callable[[E], bytes],
) -> AsyncIterator[bytes]:
    """The events of a chat stream ending with ``[DONE]``; a ``failure`` after the response began
    ends it with an error event instead (the status line is out already)."""
    try:
        async for chunk in chunks:
            yield sse_event(encode(chunk))
        yield DONE_EVENT
    except failure as exc:
        yield sse_event(error_body(exc))
    finally:
        await chunks.aclose()
