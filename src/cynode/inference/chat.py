"""Chat completions answered by this node's inference backend, for the Worker API inference route.

Owns the node's side of a chat: taking turns at the backend (at most
``inference.max_concurrent_requests`` at once), framing the request for a model without a chat
template (``cynode.inference.framing``), turning the backend's answer into the OpenAI chat shapes
with ``usage`` filled, and never returning a blank success: an answer with no text is asked for once
more and then reported as a 502 ``empty_completion``. A stream yields nothing until its first text
arrives, so an empty or failed generation can still be retried or answered with an error status.
Closing a stream early closes the backend request, which makes llama.cpp stop generating.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

import httpx
import msgspec

from cynode.contracts.openai import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
)
from cynode.inference.errors import InferenceCallError
from cynode.inference.framing import STOP_SEQUENCES, question_answer_prompt
from cynode.inference.settings import InferenceSettings
from cynode.inference.sse import sse_data
from cynode.inference.upstream import Upstream, client_for

log = logging.getLogger(__name__)

EMPTY_ANSWER_ATTEMPTS: Final = 2
NO_BACKEND = "no inference backend is running on this node"
_DETAIL_CHARS = 300


class _BackendChoice(msgspec.Struct):
    text: str | None = None
    message: dict[str, Any] | None = None
    delta: dict[str, Any] | None = None
    finish_reason: str | None = None


class _BackendAnswer(msgspec.Struct):
    """What both ``/v1/completions`` and ``/v1/chat/completions`` (whole or one stream chunk) carry."""

    choices: list[_BackendChoice] = []
    usage: Usage | None = None

    def text(self) -> str:
        parts = []
        for choice in self.choices:
            if choice.text is not None:
                parts.append(choice.text)
            for holder in (choice.message, choice.delta):
                content = holder.get("content") if holder else None
                if isinstance(content, str):
                    parts.append(content)
        return "".join(parts)

    def finish_reason(self) -> str | None:
        return next((choice.finish_reason for choice in self.choices if choice.finish_reason), None)


_answer_decoder = msgspec.json.Decoder(_BackendAnswer)


@dataclass(frozen=True)
class _BackendCall:
    """The backend request for one chat request: the path and body, and the framed prompt if any."""

    path: str
    body: dict[str, Any]
    prompt: str | None

    @classmethod
    def for_request(cls, request: ChatCompletionRequest, upstream: Upstream, *, stream: bool) -> _BackendCall:
        model = request.model or upstream.model
        body: dict[str, Any] = {"stream": stream}
        if model:
            body["model"] = model
        for name in ("temperature", "top_p", "seed"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.token_limit is not None:
            body["max_tokens"] = request.token_limit
        if stream:
            body["stream_options"] = {"include_usage": True}
        stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
        if upstream.chat_template:
            body["messages"] = [{"role": m.role, "content": m.text()} for m in request.messages]
            if stops:
                body["stop"] = stops
            return cls("/v1/chat/completions", body, None)
        prompt = question_answer_prompt(request.messages)
        body["prompt"] = prompt
        body["stop"] = [*STOP_SEQUENCES, *stops]
        return cls("/v1/completions", body, prompt)


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


@dataclass
class NodeChat:
    """``upstream`` tells where the backend is right now (None while none runs)."""

    upstream: Callable[[], Upstream | None]
    settings: InferenceSettings = field(default_factory=InferenceSettings)
    _turns: asyncio.Semaphore = field(init=False)
    _clients: dict[str, httpx.AsyncClient] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._turns = asyncio.Semaphore(self.settings.max_concurrent_requests)

    def _client(self, upstream: Upstream) -> httpx.AsyncClient:
        # One pooled client per backend: a new connection per request would cost every chat a handshake.
        client = self._clients.get(upstream.base_url)
        if client is None:
            client = self._clients[upstream.base_url] = client_for(
                upstream.base_url, timeout=self.settings.chat_timeout_seconds
            )
        return client

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    def _backend(self) -> Upstream:
        upstream = self.upstream()
        if upstream is None:
            raise InferenceCallError(HTTPStatus.SERVICE_UNAVAILABLE, NO_BACKEND, "no_backend")
        return upstream

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.settings.chat_timeout_seconds):
                await self._turns.acquire()
        except TimeoutError:
            raise InferenceCallError(
                HTTPStatus.SERVICE_UNAVAILABLE, "the node's inference backend stayed busy", "backend_busy"
            ) from None
        try:
            yield
        finally:
            self._turns.release()

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        """The whole answer; raises InferenceCallError when there is none worth returning."""
        upstream = self._backend()
        call = _BackendCall.for_request(request, upstream, stream=False)
        async with self._turn():
            for attempt in range(1, EMPTY_ANSWER_ATTEMPTS + 1):
                answer = await self._post(upstream, call)
                text = answer.text().strip()
                if text:
                    usage = answer.usage or Usage()
                    return ChatCompletion(
                        id=_completion_id(),
                        created=int(time.time()),
                        model=request.model or upstream.model or "",
                        choices=[
                            Choice(
                                message=AssistantMessage(content=text), finish_reason=answer.finish_reason() or "stop"
                            )
                        ],
                        usage=usage,
                    )
                log.warning("inference_empty_answer", extra={"attempt": attempt, "framed": call.prompt is not None})
        raise _empty_answer()

    async def _post(self, upstream: Upstream, call: _BackendCall) -> _BackendAnswer:
        try:
            response = await self._client(upstream).post(call.path, json=call.body)
        except httpx.TimeoutException:
            raise InferenceCallError(HTTPStatus.GATEWAY_TIMEOUT, "the inference backend timed out", "timeout") from None
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from None
        if response.status_code != HTTPStatus.OK:
            raise _refused(response.status_code, response.text)
        try:
            return _answer_decoder.decode(response.content)
        except msgspec.DecodeError:
            raise _invalid() from None

    async def stream(self, request: ChatCompletionRequest) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Chunks of the answer: a role chunk with the first text, text chunks, and a last chunk with
        ``finish_reason`` and ``usage``. Raises InferenceCallError before the first chunk when there
        is no answer; closing the iterator early stops the backend's generation.

        The turn at the backend is handed on as soon as the backend's answer is complete, before the
        last chunk waits for its reader: chats queued behind this one lose no time to the relay."""
        upstream = self._backend()
        call = _BackendCall.for_request(request, upstream, stream=True)
        completion_id, created = _completion_id(), int(time.time())
        model = request.model or upstream.model or ""

        def chunk(delta: Delta, finish_reason: str | None = None, usage: Usage | None = None) -> ChatCompletionChunk:
            choices = [ChunkChoice(delta=delta, finish_reason=finish_reason)]
            return ChatCompletionChunk(id=completion_id, created=created, model=model, choices=choices, usage=usage)

        prompt_tokens: asyncio.Task[int] | None = None
        try:
            async with self._turn():
                if call.prompt is not None:
                    # A streamed completion reports no usage: the prompt is counted while it generates.
                    prompt_tokens = asyncio.create_task(self._count_tokens(upstream, call.prompt))
                for attempt in range(1, EMPTY_ANSWER_ATTEMPTS + 1):
                    started = False
                    tokens = 0
                    usage: Usage | None = None
                    finish_reason: str | None = None
                    async for answer in self._stream_answers(upstream, call):
                        usage = answer.usage or usage
                        finish_reason = answer.finish_reason() or finish_reason
                        text = answer.text()
                        if not text:
                            continue
                        tokens += 1
                        if not started:
                            text = text.lstrip()
                            if not text:
                                continue
                            started = True
                            yield chunk(Delta(role="assistant", content=text))
                            continue
                        yield chunk(Delta(content=text))
                    if started:
                        break
                    log.warning("inference_empty_answer", extra={"attempt": attempt, "framed": call.prompt is not None})
                else:
                    raise _empty_answer()
            if usage is None:
                usage = Usage(prompt_tokens=await prompt_tokens if prompt_tokens is not None else 0)
                usage.completion_tokens = tokens
            usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
            yield chunk(Delta(), finish_reason or "stop", usage)
        finally:
            if prompt_tokens is not None and not prompt_tokens.done():
                prompt_tokens.cancel()

    async def _stream_answers(self, upstream: Upstream, call: _BackendCall) -> AsyncIterator[_BackendAnswer]:
        try:
            async with self._client(upstream).stream("POST", call.path, json=call.body) as response:
                if response.status_code != HTTPStatus.OK:
                    raise _refused(response.status_code, (await response.aread()).decode("utf-8", "replace"))
                async for data in sse_data(response.aiter_lines()):
                    try:
                        yield _answer_decoder.decode(data)
                    except msgspec.DecodeError:
                        raise _invalid() from None
        except httpx.TimeoutException:
            raise InferenceCallError(HTTPStatus.GATEWAY_TIMEOUT, "the inference backend timed out", "timeout") from None
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from None

    async def _count_tokens(self, upstream: Upstream, prompt: str) -> int:
        """The framed prompt's token count from llama.cpp's tokenizer route; 0 when unknown."""
        try:
            response = await self._client(upstream).post("/extras/tokenize/count", json={"input": prompt})
            count = response.json().get("count") if response.status_code == HTTPStatus.OK else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return 0
        return count if isinstance(count, int) else 0


def _empty_answer() -> InferenceCallError:
    return InferenceCallError(HTTPStatus.BAD_GATEWAY, "the model returned an empty answer", "empty_completion")


def _unreachable(exc: httpx.HTTPError) -> InferenceCallError:
    log.warning("inference_backend_unreachable", extra={"error": str(exc) or type(exc).__name__})
    return InferenceCallError(HTTPStatus.BAD_GATEWAY, "the inference backend is not reachable", "backend_unreachable")


def _refused(status: int, detail: str) -> InferenceCallError:
    log.warning("inference_backend_refused", extra={"status": status, "detail": detail[:_DETAIL_CHARS]})
    if status == HTTPStatus.NOT_FOUND:
        return InferenceCallError(HTTPStatus.NOT_FOUND, "the model is not served on this node", "model_not_found")
    if status == HTTPStatus.BAD_REQUEST:
        return InferenceCallError(HTTPStatus.BAD_REQUEST, "the inference backend rejected the request", "bad_request")
    busy = status in (HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.SERVICE_UNAVAILABLE)
    status_out = HTTPStatus.SERVICE_UNAVAILABLE if busy else HTTPStatus.BAD_GATEWAY
    return InferenceCallError(status_out, f"the inference backend answered HTTP {status}", "backend_error")


def _invalid() -> InferenceCallError:
    return InferenceCallError(HTTPStatus.BAD_GATEWAY, "the inference backend answered malformed JSON", "backend_error")
