"""The chat page: the signed-in user's threads, one conversation, a model picker, and streamed answers.

Answers come from the same pipeline as ``POST /v1/chat/completions`` (redaction, thread storage,
chat audit, routing to a node): the page's script posts an OpenAI chat request to
``/chat/completions`` on the console and reads the OpenAI event stream it answers with, writing
each delta as text. The console route differs from the API route only in how the caller proves
who they are: the HttpOnly session cookie plus the CSRF header, since the page's script never sees
a bearer token. Errors answer in the OpenAI shape, as on the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from cynode.chat.errors import ChatError
from cynode.contracts.openai import ChatCompletionRequest, StoredChatMessage
from cynode.http.payloads import json_response, read_json
from cynode.http.problems import ProblemError
from cynode.inference.sse import MEDIA_TYPE
from cynode.web.console import Console
from cynode.web.session import CSRF_HEADER

CHAT_PATH: Final = "/chat"
COMPLETIONS_PATH: Final = "/chat/completions"
THREAD_HEADER: Final = "x-cynode-thread"
"""Tells the page which stored thread the answer went to, so its address can show that thread."""
THREADS_SHOWN: Final = 50
MESSAGES_SHOWN: Final = 100
_STREAM_HEADERS: Final = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def routes(console: Console) -> Sequence[ControllerRouterHandler]:
    service = console.chat.service

    @get(CHAT_PATH)
    async def chat_page(request: Request[Any, Any, Any]) -> Response[str]:
        viewer = await console.viewer(request)
        threads = (await service.threads(viewer.user, None, THREADS_SHOWN)).threads
        chosen = request.query_params.get("thread") or (threads[0].id if threads else None)
        messages: list[StoredChatMessage] = []
        if chosen is not None:
            messages = (await service.messages(viewer.user, chosen, None, MESSAGES_SHOWN)).messages
        return console.page(
            viewer,
            "chat.html",
            threads=threads,
            current_thread=chosen,
            messages=messages,
            models=await console.chat.router.models(),
            completions_path=COMPLETIONS_PATH,
        )

    @post(COMPLETIONS_PATH, status_code=HTTPStatus.OK)
    async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
        viewer = await console.viewer(request)
        try:
            console.csrf.check(viewer.csrf_token, request.headers.get(CSRF_HEADER))
            chat_request = await read_json(request, ChatCompletionRequest)
            prepared = await service.prepare(viewer.user, chat_request, None)
            authorization = f"Bearer {viewer.access_token}"
            thread = {THREAD_HEADER: str(prepared.thread_id)}
            if not chat_request.stream:
                answer = json_response(await service.complete(prepared, authorization))
                answer.headers.update(thread)
                return answer
            chunks = await service.start_stream(prepared, authorization)
        except ProblemError as problem:
            return ChatError.from_problem(problem).response()
        except ChatError as failure:
            return failure.response()
        events = service.relay(prepared, chunks)
        return Stream(events, media_type=MEDIA_TYPE, headers={**_STREAM_HEADERS, **thread})

    return [chat_page, chat_completions]
