"""The gateway's chat pipeline (upstream ``openai_compatible_chat_api.md``, Request Processing Pipeline).

In order: check the request (messages present), resolve the project (``OpenAI-Project`` header or
the caller's default project), redact secrets in every message, store the amended user message in
the scope's active thread, hand the amended request to the orchestrator, store the assistant's
answer, and record in ``chat_audit_log`` whether and what kind of secret was redacted and how the
request ended. Threads are read only by their owner; anyone else gets 404.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, TypeVar

import msgspec

from cynode.chat import repository
from cynode.chat.errors import ChatError
from cynode.chat.orchestrator_link import Orchestrator
from cynode.chat.redaction import redact
from cynode.chat.settings import ChatSettings
from cynode.contracts.codec import encode
from cynode.contracts.openai import (
    DEFAULT_CHAT_MODEL,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessagePage,
    ChatThread,
    ChatThreadPage,
    StoredChatMessage,
)
from cynode.db.pool import Connection, Pool
from cynode.http.problems import ProblemError
from cynode.identity.guard import CurrentUser
from cynode.inference.sse import DONE_EVENT, sse_event
from cynode.tasks import repository as tasks_repository
from cynode.tasks.repository import PageAfter
from cynode.tasks.service import decode_cursor, encode_cursor

log = logging.getLogger(__name__)

PROJECT_HEADER: Final = "openai-project"
# How a request's last message is stored: as the role it names, instructions as ``system``.
_STORED_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


@dataclass(frozen=True)
class PreparedChat:
    """A request after redaction and storage of the user's message, ready for the orchestrator."""

    request: ChatCompletionRequest
    model: str
    user_id: uuid.UUID
    project_id: uuid.UUID
    thread_id: uuid.UUID
    redaction_kinds: frozenset[str]


class ChatService:
    def __init__(self, pool: Pool, settings: ChatSettings, orchestrator: Orchestrator) -> None:
        self._pool = pool
        self._settings = settings
        self._orchestrator = orchestrator
        self._pending: set[asyncio.Task[None]] = set()
        self._default_projects: dict[uuid.UUID, uuid.UUID] = {}

    async def prepare(self, user: CurrentUser, request: ChatCompletionRequest, project: str | None) -> PreparedChat:
        if not request.messages:
            raise ChatError(HTTPStatus.BAD_REQUEST, "messages must be a non-empty list", param="messages")
        model = request.model or DEFAULT_CHAT_MODEL
        kinds: set[str] = set()
        messages = []
        for message in request.messages:
            redaction = redact(message.text())
            kinds |= redaction.kinds
            messages.append(msgspec.structs.replace(message, content=redaction.text))
        if kinds:
            log.info("chat_secrets_redacted", extra={"user_id": str(user.id), "kinds": sorted(kinds)})
        last = messages[-1]
        stored = (_STORED_ROLES.get(last.role, "user"), last.text(), {"model_id": model})
        async with self._pool.connection() as conn:
            project_id = await self._project(conn, user, project)
            idle = self._settings.thread_idle_seconds
            thread_id = await repository.store_in_active_thread(conn, user.id, project_id, idle, stored)
        return PreparedChat(
            request=msgspec.structs.replace(request, messages=messages, model=model),
            model=model,
            user_id=user.id,
            project_id=project_id,
            thread_id=thread_id,
            redaction_kinds=frozenset(kinds),
        )

    async def _project(self, conn: Connection, user: CurrentUser, project: str | None) -> uuid.UUID:
        reference = (project or "").strip()
        if not reference:
            # A default project is created once and never changes: asked for once per user and process.
            default = self._default_projects.get(user.id)
            if default is None:
                default = self._default_projects[user.id] = await tasks_repository.ensure_default_project(conn, user.id)
            return default
        try:
            by_id = uuid.UUID(reference)
        except ValueError:
            project_id = await repository.project_id_for_slug(conn, reference, user.id)
        else:
            project_id = by_id if await tasks_repository.project_usable_by(conn, by_id, user.id) else None
        if project_id is None:
            raise ChatError(HTTPStatus.NOT_FOUND, "no such project", "project_not_found", param="OpenAI-Project")
        return project_id

    async def complete(self, prepared: PreparedChat, authorization: str) -> ChatCompletion:
        try:
            completion = await self._orchestrator.complete(prepared.request, authorization)
        except ChatError as exc:
            self._record_later(prepared, None, f"error_{exc.status}")
            raise
        completion.model = prepared.model
        self._record_later(prepared, completion.content, "completed")
        return completion

    async def start_stream(
        self, prepared: PreparedChat, authorization: str
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        try:
            return await self._orchestrator.stream(prepared.request, authorization)
        except ChatError as exc:
            self._record_later(prepared, None, f"error_{exc.status}")
            raise

    async def relay(
        self, prepared: PreparedChat, chunks: AsyncGenerator[ChatCompletionChunk, None]
    ) -> AsyncIterator[bytes]:
        """The client's event stream; the answer is stored when the stream ends, however it ends."""
        parts: list[str] = []
        outcome = "canceled"
        try:
            async for chunk in chunks:
                parts.append(chunk.content)
                chunk.model = prepared.model
                yield sse_event(encode(chunk))
            outcome = "completed"
            yield DONE_EVENT
        except ChatError as exc:
            outcome = f"error_{exc.status}"
            yield sse_event(encode(exc.body()))
        finally:
            await chunks.aclose()
            if outcome == "canceled":
                log.info("chat_stream_canceled", extra={"thread_id": str(prepared.thread_id)})
            # A client that went away cancels this generator; the record is written regardless.
            self._record_later(prepared, "".join(parts), outcome)

    def _record_later(self, prepared: PreparedChat, answer: str | None, outcome: str) -> None:
        """Store the answer and the audit record off the response's path (the client waits for neither)."""
        task = asyncio.create_task(self.record(prepared, answer, outcome))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for the records still being written (at shutdown, so none is lost)."""
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def record(self, prepared: PreparedChat, answer: str | None, outcome: str) -> None:
        async with self._pool.connection() as conn:
            if answer:
                metadata = {"model_id": prepared.model, "outcome": outcome}
                await repository.append_messages(conn, prepared.thread_id, [("assistant", answer, metadata)])
            await repository.record_audit(
                conn,
                user_id=prepared.user_id,
                project_id=prepared.project_id,
                thread_id=prepared.thread_id,
                model=prepared.model,
                redaction_kinds=prepared.redaction_kinds,
                outcome=outcome,
            )
        log.info(
            "chat_finished",
            extra={"thread_id": str(prepared.thread_id), "model": prepared.model, "outcome": outcome},
        )

    async def threads(self, user: CurrentUser, cursor: str | None, limit: int) -> ChatThreadPage:
        after = decode_cursor(cursor) if cursor is not None else None
        async with self._pool.connection() as conn:
            rows = await repository.list_threads(conn, user.id, after, limit)
        page, next_cursor = _page(rows, limit)
        return ChatThreadPage(
            threads=[
                ChatThread(
                    id=str(row.id),
                    project_id=str(row.project_id) if row.project_id else None,
                    title=row.title,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                )
                for row in page
            ],
            next_cursor=next_cursor,
        )

    async def messages(self, user: CurrentUser, thread_ref: str, cursor: str | None, limit: int) -> ChatMessagePage:
        not_found = ProblemError(HTTPStatus.NOT_FOUND, "Chat thread not found")
        try:
            thread_id = uuid.UUID(thread_ref)
        except ValueError:
            raise not_found from None
        after = decode_cursor(cursor) if cursor is not None else None
        async with self._pool.connection() as conn:
            if not await repository.thread_of_user(conn, thread_id, user.id):
                raise not_found
            rows = await repository.list_messages(conn, thread_id, after, limit)
        page, next_cursor = _page(rows, limit)
        return ChatMessagePage(
            messages=[
                StoredChatMessage(
                    id=str(row.id),
                    thread_id=str(row.thread_id),
                    role=row.role,
                    content=row.content,
                    created_at=row.created_at,
                    model=row.metadata.get("model_id"),
                )
                for row in page
            ],
            next_cursor=next_cursor,
        )


_Row = TypeVar("_Row", repository.ThreadRow, repository.MessageRow)


def _page(rows: list[_Row], limit: int) -> tuple[list[_Row], str | None]:
    """The first ``limit`` of ``limit + 1`` rows, and the cursor after them when more follow."""
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    return page, encode_cursor(PageAfter(page[-1].created_at, page[-1].id))
