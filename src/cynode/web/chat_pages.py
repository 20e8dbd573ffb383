"""The chat page: the signed-in user's threads, one conversation, a model picker, and streamed answers.

Answers come from the same pipeline as ``POST /v1/chat/completions`` (redaction, thread storage,
chat audit, routing to a node): the page's script posts an OpenAI chat request to
``/chat/completions`` on the console and reads the OpenAI event stream it answers with, writing
each delta as text. The console route differs from the API route only in how the caller proves
who they are: the HttpOnly session cookie plus the CSRF header, since the page's script never sees
a bearer token. Errors answer in the OpenAI shape, as on the API.

Without a script the page's form posts to ``/chat`` instead: the same pipeline answers in one piece
(the shown thread's messages as context) and the page is rendered again with the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from cynode.chat.errors import ChatError
from cynode.contracts.openai import ChatCompletionRequest, ChatMessage, StoredChatMessage
from cynode.http.payloads import json_response, read_json
from cynode.http.problems import ProblemError
from cynode.inference.sse import MEDIA_TYPE
from cynode.web.console import Console, see_other
from cynode.web.session import CSRF_HEADER, Viewer

CHAT_PATH: Final = "/chat"
COMPLETIONS_PATH: Final = "/chat/completions"
THREAD_HEADER: Final = "x-cynode-thread"
"""Tells the page which stored thread the answer went to, so its address can show that thread."""
THREADS_SHOWN: Final = 50
MESSAGES_SHOWN: Final = 100
_STREAM_HEADERS: Final = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def routes(console: Console) -> Sequence[ControllerRouterHandler]:
    service = console.chat.service

    async def thread_messages(viewer: Viewer, thread: str | None) -> list[StoredChatMessage]:
        if thread is None:
            return []
        return (await service.messages(viewer.user, thread, None, MESSAGES_SHOWN)).messages

    async def chat_page(
        viewer: Viewer, thread: str | None, status: int = HTTPStatus.OK, error: str | None = None
    ) -> Response[str]:
        threads = (await service.threads(viewer.user, None, THREADS_SHOWN)).threads
        chosen = thread or (threads[0].id if threads else None)
        return console.page(
            viewer,
            "chat.html",
            status,
            threads=threads,
            current_thread=chosen,
            messages=await thread_messages(viewer, chosen),
            models=await console.chat.router.models(),
            completions_path=COMPLETIONS_PATH,
            error=error,
        )

    @get(CHAT_PATH)
    async def show_chat(request: Request[Any, Any, Any]) -> Response[str]:
        return await chat_page(await console.viewer(request), request.query_params.get("thread") or None)

    @post(CHAT_PATH)
    async def ask_without_script(request: Request[Any, Any, Any]) -> Response[Any]:
        viewer = await console.viewer(request)
        form = await console.form(request, viewer.csrf_token)
        thread = form.get("thread") or None
        earlier = [ChatMessage(role=m.role, content=m.content) for m in await thread_messages(viewer, thread)]
        question = ChatMessage(role="user", content=form.get("message") or "")
        chat_request = ChatCompletionRequest(messages=[*earlier, question], model=form.get("model") or None)
        try:
            if not question.text().strip():
                raise ChatError(HTTPStatus.BAD_REQUEST, "Write a message first", param="messages")
            prepared = await service.prepare(viewer.user, chat_request, None)
            await service.complete(prepared, f"Bearer {viewer.access_token}")
        except ChatError as failure:
            return await chat_page(viewer, thread, failure.status, failure.message)
        return see_other(f"{CHAT_PATH}?thread={prepared.thread_id}")

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

    return [show_chat, ask_without_script, chat_completions]
