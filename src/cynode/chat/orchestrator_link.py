"""How the gateway reaches the orchestrator's chat routing: in process when both roles run in this
process, over the control plane's chat route when the gateway runs apart (the caller's own bearer
token travels along and is checked again there)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Final, Protocol

import httpx

from cynode.chat.http_link import HttpChatLink
from cynode.chat.routing import ChatRouter
from cynode.contracts.openai import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from cynode.inference.sse import started

CONTROL_PLANE_CHAT_PATH: Final = "/v1/orchestrator/chat/completions"


class Orchestrator(Protocol):
    async def complete(self, request: ChatCompletionRequest, authorization: str) -> ChatCompletion: ...

    async def stream(
        self, request: ChatCompletionRequest, authorization: str
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The answer's chunks once the first one arrived (failures before it raise ChatError here)."""
        ...


class LocalOrchestrator:
    """The orchestrator role of this process; the gateway authenticated the caller already."""

    def __init__(self, router: ChatRouter) -> None:
        self._router = router

    async def complete(self, request: ChatCompletionRequest, authorization: str) -> ChatCompletion:
        return await self._router.complete(request)

    async def stream(
        self, request: ChatCompletionRequest, authorization: str
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        return await self._router.stream(request)


class RemoteOrchestrator:
    """The control plane at ``base_url``, reached over HTTP with the caller's bearer token."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + CONTROL_PLANE_CHAT_PATH

    def _link(self, authorization: str) -> HttpChatLink:
        return HttpChatLink(self._http, self._url, authorization, peer="the orchestrator")

    async def complete(self, request: ChatCompletionRequest, authorization: str) -> ChatCompletion:
        return await self._link(authorization).complete(request)

    async def stream(
        self, request: ChatCompletionRequest, authorization: str
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        return await started(self._link(authorization).stream(request))
