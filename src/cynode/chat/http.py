"""Chat routes: the OpenAI-compatible gateway routes, the chat thread routes, the warm-up route, and
the control plane's chat route a separately running gateway calls.

Gateway: ``GET /v1/models`` and ``POST /v1/chat/completions`` (errors in the OpenAI shape, the
bearer check included), ``POST /v1/chat/warm`` (best effort, answers at once), ``GET
/v1/chat/threads`` and ``GET /v1/chat/threads/{id}/messages`` (problem documents, cursor paged).
Control plane: ``POST /v1/orchestrator/chat/completions``, the same OpenAI request already redacted
by the gateway and the caller's bearer token, answered from this orchestrator's routing.
:class:`ChatApi` builds all of them for one process and owns the HTTP client chats leave through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any, Final

import httpx
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from cynode.chat.errors import ChatError
from cynode.chat.orchestrator_link import CONTROL_PLANE_CHAT_PATH, LocalOrchestrator, Orchestrator, RemoteOrchestrator
from cynode.chat.routing import ChatRouter
from cynode.chat.service import PROJECT_HEADER, ChatService
from cynode.context import LocalWorker, OrchestratorContext
from cynode.contracts.codec import encode
from cynode.contracts.openai import (
    DEFAULT_CHAT_MODEL,
    ChatCompletionRequest,
    ChatMessage,
    Model,
    ModelList,
    WarmRequest,
    WarmResponse,
)
from cynode.http.payloads import json_response, read_json
from cynode.http.problems import ProblemError
from cynode.identity.guard import CURRENT_USER, Authenticator, CurrentUser, current_user_provider
from cynode.inference.sse import MEDIA_TYPE, sse_stream
from cynode.settings import Role
from cynode.tasks.service import parse_limit
from cynode.worker.inference_route import ClientDisconnectedError, unless_disconnected

log = logging.getLogger(__name__)

_SSE_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_WARM_PROMPT: Final = "Hello"


async def _openai_errors(work: Callable[[], Awaitable[Response[Any]]]) -> Response[Any]:
    """Run a handler body, answering every failure it raises in the OpenAI error shape."""
    try:
        return await work()
    except ChatError as exc:
        return exc.response()
    except ProblemError as exc:
        return ChatError.from_problem(exc).response()


def _client_went_away() -> ChatError:
    log.info("chat_client_disconnected")
    return ChatError(HTTPStatus.REQUEST_TIMEOUT, "the client went away before the answer was ready")


class ChatApi:
    """The chat parts of one process: routing when it runs the orchestrator, the gateway pipeline
    when it runs the gateway, and the HTTP client both use (closed by ``close``)."""

    def __init__(self, ctx: OrchestratorContext, local_worker: LocalWorker | None) -> None:
        settings = ctx.settings.chat
        self._ctx = ctx
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.wait_cap_seconds + 30, connect=settings.node_connect_timeout_seconds),
            trust_env=False,
        )
        self.router = ChatRouter(ctx, local_worker, self._http)
        self.orchestrator: Orchestrator = (
            LocalOrchestrator(self.router)
            if Role.ORCHESTRATOR in ctx.roles
            else RemoteOrchestrator(self._http, ctx.settings.control_plane_public_url)
        )
        self.service = ChatService(ctx.pool, settings, self.orchestrator)
        self._authenticator = Authenticator(ctx.pool, ctx.signer, ctx.auth_cache)
        self._warming: dict[str, asyncio.Task[None]] = {}

    async def close(self) -> None:
        for task in self._warming.values():
            task.cancel()
        await self.service.drain()
        await self._http.aclose()

    async def _caller(self, request: Request[Any, Any, Any]) -> tuple[CurrentUser, str]:
        authorization = request.headers.get("authorization", "")
        return await self._authenticator.authenticate(authorization), authorization

    def gateway_routes(self) -> Sequence[ControllerRouterHandler]:
        service = self.service
        signed_in = {CURRENT_USER: current_user_provider(self._ctx)}

        @get("/v1/models")
        async def list_models(request: Request[Any, Any, Any]) -> Response[Any]:
            async def work() -> Response[Any]:
                await self._caller(request)
                return json_response(ModelList(data=[Model(id=model) for model in await self.router.models()]))

            return await _openai_errors(work)

        @post("/v1/chat/completions", status_code=HTTPStatus.OK)
        async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
            async def work() -> Response[Any]:
                user, authorization = await self._caller(request)
                chat_request = await read_json(request, ChatCompletionRequest)
                prepared = await service.prepare(user, chat_request, request.headers.get(PROJECT_HEADER))
                try:
                    if not chat_request.stream:
                        completion = await unless_disconnected(request, service.complete(prepared, authorization))
                        return json_response(completion)
                    chunks = await unless_disconnected(request, service.start_stream(prepared, authorization))
                except ClientDisconnectedError:
                    await service.record(prepared, None, "client_went_away")
                    raise _client_went_away() from None
                return Stream(service.relay(prepared, chunks), media_type=MEDIA_TYPE, headers=_SSE_HEADERS)

            return await _openai_errors(work)

        @post("/v1/chat/warm", dependencies=signed_in, status_code=HTTPStatus.ACCEPTED)
        async def warm(request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser]) -> Response[bytes]:
            body = await read_json(request, WarmRequest, empty=WarmRequest())
            model = body.model or DEFAULT_CHAT_MODEL
            return self._warm(model, request.headers.get("authorization", ""))

        @get("/v1/chat/threads", dependencies=signed_in)
        async def list_threads(
            request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser]
        ) -> Response[bytes]:
            query = request.query_params
            page = await service.threads(current_user, query.get("cursor"), parse_limit(query.get("limit")))
            return json_response(page)

        @get("/v1/chat/threads/{thread_ref:str}/messages", dependencies=signed_in)
        async def list_messages(
            request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], thread_ref: FromPath[str]
        ) -> Response[bytes]:
            query = request.query_params
            limit = parse_limit(query.get("limit"))
            return json_response(await service.messages(current_user, thread_ref, query.get("cursor"), limit))

        return [list_models, chat_completions, warm, list_threads, list_messages]

    def _warm(self, model: str, authorization: str) -> Response[bytes]:
        """Start one warm-up per model (a repeat while it runs joins it); its outcome is only logged."""
        running = self._warming.get(model)
        if running is not None and not running.done():
            return json_response(WarmResponse(status="warming", model=model), HTTPStatus.ACCEPTED)
        request = ChatCompletionRequest(
            model=model, messages=[ChatMessage(role="user", content=_WARM_PROMPT)], max_tokens=1
        )

        async def warm_up() -> None:
            log.info("chat_warm_started", extra={"model": model})
            try:
                await self.orchestrator.complete(request, authorization)
            except ChatError as exc:
                log.warning("chat_warm_failed", extra={"model": model, "status": exc.status, "code": exc.code})
                return
            log.info("chat_warm_finished", extra={"model": model})

        self._warming[model] = asyncio.create_task(warm_up(), name=f"chat-warm-{model}")
        return json_response(WarmResponse(status="warming", model=model), HTTPStatus.ACCEPTED)

    def control_plane_routes(self) -> Sequence[ControllerRouterHandler]:
        router = self.router

        @post(CONTROL_PLANE_CHAT_PATH, status_code=HTTPStatus.OK)
        async def orchestrator_chat(request: Request[Any, Any, Any]) -> Response[Any]:
            async def work() -> Response[Any]:
                await self._caller(request)
                chat_request = await read_json(request, ChatCompletionRequest)
                try:
                    if not chat_request.stream:
                        return json_response(await unless_disconnected(request, router.complete(chat_request)))
                    chunks = await unless_disconnected(request, router.stream(chat_request))
                except ClientDisconnectedError:
                    raise _client_went_away() from None
                events = sse_stream(chunks, ChatError, lambda exc: encode(exc.body()))
                return Stream(events, media_type=MEDIA_TYPE, headers=_SSE_HEADERS)

            return await _openai_errors(work)

        return [orchestrator_chat]
