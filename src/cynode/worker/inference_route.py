"""The Worker API inference route: ``POST /v1/worker/inference/chat/completions``.

The orchestrator's way to the node's model for chat: the same bearer token as ``jobs:run``, an
OpenAI chat-completions body (already redacted by the orchestrator), and an OpenAI answer, streamed
as server-sent events when asked. The backend itself stays private to the node. Failures answer in
the OpenAI error shape with the status the gateway passes on (502, 503, 504).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Sequence
from http import HTTPStatus
from typing import Any, Final, TypeVar

from litestar import Request, Response, post
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from cynode.cancellation import cancel_until_done
from cynode.contracts.codec import encode
from cynode.contracts.openai import ChatCompletionChunk, ChatCompletionRequest, ErrorBody, OpenAIError
from cynode.http.payloads import JSON_MEDIA_TYPE, json_response, read_json
from cynode.inference.chat import NO_BACKEND
from cynode.inference.errors import InferenceCallError
from cynode.inference.sse import MEDIA_TYPE, sse_stream, started
from cynode.worker.service import WorkerService

log = logging.getLogger(__name__)

INFERENCE_CHAT_PATH: Final = "/v1/worker/inference/chat/completions"

T = TypeVar("T")


class ClientDisconnectedError(Exception):
    """The caller closed its connection before the answer was ready."""


async def _disconnected(request: Request[Any, Any, Any]) -> None:
    # Once the body has been read, the server's next message for this request is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request[Any, Any, Any], work: Awaitable[T]) -> T:
    """The result of ``work``, which is cancelled when the caller goes away first (its generation
    would be wasted): raises ClientDisconnectedError then. Call only after reading the body."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        await cancel_until_done([task])
    if task.cancelled():
        raise ClientDisconnectedError
    return task.result()


def _error_body(error: InferenceCallError) -> bytes:
    return encode(OpenAIError(error=ErrorBody(message=error.message, type="cynodeai_error", code=error.code)))


def inference_error_response(error: InferenceCallError) -> Response[bytes]:
    return Response(_error_body(error), status_code=error.status, media_type=JSON_MEDIA_TYPE)


def inference_routes(service: WorkerService) -> Sequence[ControllerRouterHandler]:
    @post(INFERENCE_CHAT_PATH, status_code=HTTPStatus.OK)
    async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
        service.authenticate(request.headers.get("authorization"))
        chat_request = await read_json(request, ChatCompletionRequest)
        try:
            inference = service.inference
            if inference is None:
                raise InferenceCallError(HTTPStatus.SERVICE_UNAVAILABLE, NO_BACKEND, "no_backend")
            if not chat_request.stream:
                return json_response(await unless_disconnected(request, inference.chat.complete(chat_request)))
            chunks: AsyncGenerator[ChatCompletionChunk, None] = await unless_disconnected(
                request, started(inference.chat.stream(chat_request))
            )
        except InferenceCallError as exc:
            log.warning("worker_inference_failed", extra={"status": exc.status, "code": exc.code})
            return inference_error_response(exc)
        except ClientDisconnectedError:
            log.info("worker_inference_caller_left")
            return inference_error_response(
                InferenceCallError(HTTPStatus.REQUEST_TIMEOUT, "the caller went away", "caller_left")
            )
        events = sse_stream(chunks, InferenceCallError, _error_body)
        return Stream(events, media_type=MEDIA_TYPE, headers={"Cache-Control": "no-cache"})

    return [chat_completions]
