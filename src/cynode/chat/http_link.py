"""Calling an OpenAI-style chat endpoint over HTTP: a node's Worker API inference route (from the
orchestrator) or the control plane's chat route (from a gateway running apart from it).

Both answer a completion as JSON, a stream as server-sent events, and a failure with a status and
an OpenAI error or problem document; every failure becomes a :class:`ChatError` keeping the status,
marked transient when retrying can help (the peer unreachable, 502, 503).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from http import HTTPStatus
from typing import Final

import httpx
import msgspec

from cynode.chat.errors import ChatError, is_transient_status
from cynode.contracts.codec import encode
from cynode.contracts.openai import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from cynode.inference.sse import sse_data

log = logging.getLogger(__name__)

_completion_decoder: Final = msgspec.json.Decoder(ChatCompletion)
_chunk_decoder: Final = msgspec.json.Decoder(ChatCompletionChunk)
_DETAIL_CHARS = 300


class _ErrorDetail(msgspec.Struct):
    message: str | None = None
    code: str | None = None


class _ErrorDocument(msgspec.Struct):
    """An OpenAI error (``error``) or a problem document (``detail``)."""

    error: _ErrorDetail | None = None
    detail: str | None = None


def _failure(status: int, body: bytes, peer: str) -> ChatError:
    message, code = f"{peer} answered HTTP {status}", None
    try:
        document = msgspec.json.decode(body, type=_ErrorDocument)
    except msgspec.DecodeError:
        document = _ErrorDocument()
    if document.error is not None:
        message, code = document.error.message or message, document.error.code
    elif document.detail:
        message = document.detail[:_DETAIL_CHARS]
    return ChatError(status, message, code, transient=is_transient_status(status))


def _unreachable(exc: httpx.HTTPError, peer: str) -> ChatError:
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return ChatError(HTTPStatus.GATEWAY_TIMEOUT, f"{peer} did not answer in time")
    log.warning("chat_peer_unreachable", extra={"peer": peer, "error": type(exc).__name__})
    status = HTTPStatus.SERVICE_UNAVAILABLE if isinstance(exc, httpx.ConnectError) else HTTPStatus.BAD_GATEWAY
    return ChatError(status, f"{peer} is not reachable", transient=True)


class HttpChatLink:
    """POSTs chat requests to ``url`` with ``Authorization: <authorization>``; ``peer`` names the
    other side in error messages (never its URL, which may carry credentials)."""

    def __init__(self, http: httpx.AsyncClient, url: str, authorization: str, peer: str) -> None:
        self._http = http
        self._url = url
        self._headers = {"Authorization": authorization, "Content-Type": "application/json"}
        self._peer = peer

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        body = encode(msgspec.structs.replace(request, stream=False))
        try:
            response = await self._http.post(self._url, content=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise _unreachable(exc, self._peer) from None
        if response.status_code != HTTPStatus.OK:
            raise _failure(response.status_code, response.content, self._peer)
        try:
            return _completion_decoder.decode(response.content)
        except msgspec.DecodeError:
            raise ChatError(HTTPStatus.BAD_GATEWAY, f"{self._peer} answered malformed JSON", transient=True) from None

    async def stream(self, request: ChatCompletionRequest) -> AsyncGenerator[ChatCompletionChunk, None]:
        body = encode(msgspec.structs.replace(request, stream=True))
        try:
            async with self._http.stream("POST", self._url, content=body, headers=self._headers) as response:
                if response.status_code != HTTPStatus.OK:
                    raise _failure(response.status_code, await response.aread(), self._peer)
                async for data in sse_data(response.aiter_lines()):
                    try:
                        yield _chunk_decoder.decode(data)
                    except msgspec.DecodeError:
                        raise _failure(HTTPStatus.BAD_GATEWAY, data.encode(), self._peer) from None
        except httpx.HTTPError as exc:
            raise _unreachable(exc, self._peer) from None
