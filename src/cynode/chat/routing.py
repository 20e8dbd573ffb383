"""The orchestrator's part of a chat: which node answers it, and getting the answer from there.

Owns the model catalogue (``cynodeai.pm`` plus the models dispatchable nodes report serving), the
meaning of ``cynodeai.pm`` (until a PM agent exists: the orchestrator's Project Manager model choice,
on the nodes serving one of its candidates), node choice (fewest chats this orchestrator has in
flight there, so concurrent chats spread over the nodes serving the model; each node queues beyond
its own inference concurrency), retries of transient failures (twice by default, with backoff, on
another node when there is one), and the wait cap (504). The node is called in process when it runs
in this process and over its Worker API inference route otherwise; its backend is never reached
directly. A stream is handed back only once its first token arrived, so every failure before it is
still an error status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol, TypeVar

import httpx
import msgspec

from cynode.chat.errors import ChatError
from cynode.chat.http_link import HttpChatLink
from cynode.chat.redaction import redact
from cynode.context import LocalWorker, OrchestratorContext
from cynode.contracts.openai import DEFAULT_CHAT_MODEL, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from cynode.http.problems import ProblemError
from cynode.inference.chat import NodeChat
from cynode.inference.errors import InferenceCallError
from cynode.inference.sse import started
from cynode.nodes import repository as nodes_repository
from cynode.nodes.dispatchable import DispatchableNode, dispatchable_nodes
from cynode.nodes.project_manager import InvalidProjectManagerSetting, ProjectManagerPolicy, candidate_models
from cynode.worker.inference_route import INFERENCE_CHAT_PATH
from cynode.worker.service import WorkerService

log = logging.getLogger(__name__)

T = TypeVar("T")

CATALOGUE_SECONDS = 1.0


class NodeLink(Protocol):
    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion: ...

    def stream(self, request: ChatCompletionRequest) -> AsyncGenerator[ChatCompletionChunk, None]: ...


@dataclass(frozen=True)
class Route:
    node: DispatchableNode
    model: str
    """The model id on that node (``cynodeai.pm`` resolved)."""


class LocalNodeLink:
    """The inference route of the node in this process, called without HTTP (token check included)."""

    def __init__(self, service: WorkerService, authorization: str) -> None:
        self._service = service
        self._authorization = authorization

    def _node_chat(self) -> NodeChat:
        try:
            self._service.authenticate(self._authorization)
        except ProblemError as exc:
            raise ChatError(HTTPStatus.BAD_GATEWAY, f"the node refused the call: {exc.detail}") from None
        inference = self._service.inference
        if inference is None:
            raise ChatError(HTTPStatus.SERVICE_UNAVAILABLE, "the node has no inference backend yet", transient=True)
        return inference.chat

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        try:
            return await self._node_chat().complete(request)
        except InferenceCallError as exc:
            raise ChatError.from_inference(exc) from None

    async def stream(self, request: ChatCompletionRequest) -> AsyncGenerator[ChatCompletionChunk, None]:
        chunks = self._node_chat().stream(request)
        try:
            async for chunk in chunks:
                yield chunk
        except InferenceCallError as exc:
            raise ChatError.from_inference(exc) from None
        finally:
            await chunks.aclose()


class ChatRouter:
    """Routes chats for one orchestrator process; ``local_worker`` is this process's own node, if any."""

    def __init__(self, ctx: OrchestratorContext, local_worker: LocalWorker | None, http: httpx.AsyncClient) -> None:
        self._ctx = ctx
        self._settings = ctx.settings.chat
        self._local = local_worker
        self._http = http
        self._in_flight: Counter[str] = Counter()
        self._snapshot: tuple[float, list[DispatchableNode], dict[str, Any]] | None = None

    async def models(self) -> list[str]:
        """``cynodeai.pm`` first, then every model a dispatchable node with running inference serves."""
        nodes, _ = await self._catalogue()
        served = {model for node in nodes for model in node.available_models}
        return [DEFAULT_CHAT_MODEL, *sorted(served - {DEFAULT_CHAT_MODEL})]

    async def _catalogue(self) -> tuple[list[DispatchableNode], dict[str, Any]]:
        """Dispatchable nodes with running inference and the PM settings, read at most once a second:
        a chat should not pay for two queries that rarely change (a failed node is retried elsewhere
        and drops the snapshot)."""
        now = time.monotonic()
        if self._snapshot is not None and now - self._snapshot[0] < CATALOGUE_SECONDS:
            return self._snapshot[1], self._snapshot[2]
        ctx = self._ctx
        async with ctx.pool.connection() as conn:
            nodes = await dispatchable_nodes(conn, ctx.secret_box, ctx.settings.nodes.heartbeat_grace_seconds)
            system_settings = await nodes_repository.project_manager_settings(conn)
        running = [node for node in nodes if node.inference_running]
        self._snapshot = (now, running, system_settings)
        return running, system_settings

    async def routes(self, requested: str) -> list[Route]:
        """Every node that can answer ``requested``, with the model id to ask it for."""
        nodes, system_settings = await self._catalogue()
        if requested != DEFAULT_CHAT_MODEL:
            routes = [Route(node, requested) for node in nodes if requested in node.available_models]
            if not routes:
                raise ChatError(HTTPStatus.NOT_FOUND, f"The model '{requested}' does not exist", param="model")
            return routes
        try:
            policy = ProjectManagerPolicy.from_settings(system_settings, self._ctx.settings.nodes.project_manager_model)
        except InvalidProjectManagerSetting as exc:
            raise ChatError(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), "cynodeai_no_node") from None
        routes = []
        for node in nodes:
            served = [model for model in candidate_models(policy, node.capability) if model in node.available_models]
            if served:
                routes.append(Route(node, served[0]))
        if not routes:
            raise ChatError(HTTPStatus.SERVICE_UNAVAILABLE, "no node serves the PM chat model yet", "cynodeai_no_node")
        return routes

    def _pick(self, routes: list[Route], failed: set[str]) -> Route:
        fresh = [route for route in routes if route.node.node_slug not in failed] or routes
        return min(fresh, key=lambda route: (self._in_flight[route.node.node_slug], route.node.node_slug))

    def _link(self, node: DispatchableNode) -> NodeLink:
        authorization = f"Bearer {node.bearer_token()}"
        if self._local is not None and node.node_slug == self._local.node_slug:
            return LocalNodeLink(self._local.service, authorization)
        url = node.worker_api_target_url.rstrip("/") + INFERENCE_CHAT_PATH
        return HttpChatLink(self._http, url, authorization, peer=f"node {node.node_slug}")

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        async def attempt(link: NodeLink, route: Route, routed: ChatCompletionRequest) -> ChatCompletion:
            self._in_flight[route.node.node_slug] += 1
            try:
                return await link.complete(routed)
            finally:
                self._in_flight[route.node.node_slug] -= 1

        return await self._capped(self._with_retries(request, attempt, stream=False))

    async def stream(self, request: ChatCompletionRequest) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The answer's chunks, returned once the first one is there (errors before it raise here)."""

        async def attempt(
            link: NodeLink, route: Route, routed: ChatCompletionRequest
        ) -> AsyncGenerator[ChatCompletionChunk, None]:
            return await started(self._counted(route, link.stream(routed)))

        return await self._capped(self._with_retries(request, attempt, stream=True))

    async def _counted(
        self, route: Route, chunks: AsyncGenerator[ChatCompletionChunk, None]
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        slug = route.node.node_slug
        self._in_flight[slug] += 1
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            self._in_flight[slug] -= 1
            await chunks.aclose()

    async def _capped(self, work: Awaitable[T]) -> T:
        cap = self._settings.wait_cap_seconds
        try:
            async with asyncio.timeout(cap):
                return await work
        except TimeoutError:
            log.warning("chat_wait_cap_reached", extra={"seconds": cap})
            raise ChatError(HTTPStatus.GATEWAY_TIMEOUT, f"the completion did not finish within {cap:g} s") from None

    async def _with_retries(
        self,
        request: ChatCompletionRequest,
        attempt: Callable[[NodeLink, Route, ChatCompletionRequest], Awaitable[T]],
        *,
        stream: bool,
    ) -> T:
        requested = request.model or DEFAULT_CHAT_MODEL
        # Defence in depth: the gateway redacted already; a direct caller of the control plane did not.
        messages = [
            msgspec.structs.replace(message, content=redact(message.text()).text) for message in request.messages
        ]
        failed: set[str] = set()
        attempts = self._settings.transient_retries + 1
        for number in range(1, attempts + 1):
            route = self._pick(await self.routes(requested), failed)
            routed = msgspec.structs.replace(request, model=route.model, messages=messages, stream=stream)
            started_at = time.monotonic()
            link = self._link(route.node)
            path = "in_process" if isinstance(link, LocalNodeLink) else "worker_api"
            try:
                result = await attempt(link, route, routed)
            except ChatError as exc:
                log.warning(
                    "chat_node_failed",
                    extra={
                        "node_slug": route.node.node_slug,
                        "model": route.model,
                        "status": exc.status,
                        "code": exc.code,
                        "attempt": number,
                        "transient": exc.transient,
                    },
                )
                if not exc.transient or number == attempts:
                    raise
                self._snapshot = None
                failed.add(route.node.node_slug)
                await asyncio.sleep(self._settings.retry_backoff_seconds * 2 ** (number - 1))
                continue
            log.info(
                "chat_routed",
                extra={
                    "node_slug": route.node.node_slug,
                    "model": route.model,
                    "requested_model": requested,
                    "path": path,
                    "stream": stream,
                    "attempt": number,
                    "ms": round((time.monotonic() - started_at) * 1000, 1),
                },
            )
            return result
        raise AssertionError("unreachable: the loop returns or raises")
