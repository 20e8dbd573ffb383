"""The task API's rules, independent of HTTP: create, list, get, result, logs and cancel.

A task is created together with its one job in a single transaction; the job row's insert wakes
the dispatchers (sql/0004). Every read is scoped to the caller, so another user's task is "not
found" rather than "forbidden". Cancel only marks rows: the orchestrator that holds the job's lease
kills its container, in whichever process it runs.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from datetime import datetime
from http import HTTPStatus
from typing import Final, cast, get_args

from psycopg.errors import UniqueViolation

from cynode.contracts.codec import to_json_object
from cynode.contracts.tasks import (
    CancelTaskResponse,
    CreateTaskRequest,
    LogStream,
    TaskListResponse,
    TaskLogsResponse,
    TaskResponse,
    TaskResultJob,
    TaskResultResponse,
    TaskStatus,
)
from cynode.contracts.worker import SandboxSpec
from cynode.db.coalesce import Coalescer
from cynode.db.pool import Connection, Pool
from cynode.http.problems import ProblemError
from cynode.identity.guard import CurrentUser
from cynode.tasks import repository
from cynode.tasks.names import name_from_prompt, normalize_name
from cynode.tasks.prompt_job import prompt_sandbox, shell_sandbox
from cynode.tasks.repository import PageAfter, TaskRow

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 200
# A job's prompt travels as one argv string (sh -c) or one env entry; Linux caps each at 128 KiB.
MAX_PROMPT_BYTES: Final = 120 * 1024
# Two creates racing for the same name: the loser recomputes the suffix and tries again.
_NAME_ATTEMPTS: Final = 5
TASK_NOT_FOUND: Final = "Task not found"
CAP_RETRY_AFTER_SECONDS: Final = 10
TASK_STATUSES: Final = frozenset(get_args(TaskStatus))
LOG_STREAMS: Final = frozenset(get_args(LogStream))


def _bad_request(detail: str) -> ProblemError:
    return ProblemError(HTTPStatus.BAD_REQUEST, detail)


def encode_cursor(after: PageAfter) -> str:
    raw = f"{after.created_at.isoformat()}|{after.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> PageAfter:
    """The keyset position an opaque cursor stands for; a 400 problem for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, _, task_id = raw.partition("|")
        after = PageAfter(created_at=datetime.fromisoformat(created_at), id=uuid.UUID(task_id))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_request("Invalid cursor") from None
    if after.created_at.tzinfo is None:
        raise _bad_request("Invalid cursor")
    return after


def parse_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise _bad_request(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
    return limit


def parse_status(value: str | None) -> TaskStatus | None:
    if value is None:
        return None
    if value not in TASK_STATUSES:
        raise _bad_request(f"status must be one of {', '.join(sorted(TASK_STATUSES))}")
    return cast(TaskStatus, value)


def parse_stream(value: str | None) -> LogStream:
    if value is None:
        return "all"
    if value not in LOG_STREAMS:
        raise _bad_request(f"stream must be one of {', '.join(sorted(LOG_STREAMS))}")
    return cast(LogStream, value)


def _task_response(row: TaskRow) -> TaskResponse:
    return TaskResponse(
        id=row.id,
        task_id=row.id,
        status=cast(TaskStatus, row.status),
        task_name=row.task_name,
        prompt=row.prompt,
        summary=row.summary,
        created_at=row.created_at,
        updated_at=row.updated_at,
        attachments=row.attachments,
        reason=row.reason,
    )


def _checked_prompt(prompt: str) -> str:
    if not prompt.strip():
        raise _bad_request("prompt is required")
    if "\x00" in prompt:
        raise _bad_request("prompt must not contain NUL characters")
    if len(prompt.encode()) > MAX_PROMPT_BYTES:
        raise _bad_request(f"prompt is longer than {MAX_PROMPT_BYTES} bytes")
    return prompt


def _checked_attachments(paths: list[str]) -> list[str]:
    kept: list[str] = []
    for path in (path.strip() for path in paths):
        if not path or "\x00" in path:
            raise _bad_request("attachments must be non-empty paths without NUL characters")
        if path not in kept:
            kept.append(path)
    return kept


def _base_name(request: CreateTaskRequest) -> str:
    if request.task_name is None:
        return name_from_prompt(request.prompt)
    name = normalize_name(request.task_name)
    if not name:
        raise _bad_request("task_name must contain letters or digits")
    return name


def _found(row: TaskRow | None) -> TaskRow:
    if row is None:
        raise ProblemError(HTTPStatus.NOT_FOUND, TASK_NOT_FOUND)
    return row


class TaskService:
    """Task rules over ``pool``; a user may have at most ``max_active_tasks`` queued or running tasks."""

    def __init__(self, pool: Pool, sandbox_image: str, *, max_active_tasks: int | None = None) -> None:
        self._pool = pool
        self._lookups = Coalescer(pool, repository.find_tasks, "task lookups")
        self._sandbox_image = sandbox_image
        self._max_active_tasks = max_active_tasks

    def _sandbox(self, request: CreateTaskRequest) -> SandboxSpec:
        if request.input_mode == "prompt":
            return prompt_sandbox(request.prompt, self._sandbox_image)
        return shell_sandbox(request.prompt, self._sandbox_image, use_inference=request.use_inference)

    async def create(self, user: CurrentUser, request: CreateTaskRequest) -> TaskResponse:
        prompt = _checked_prompt(request.prompt)
        attachments = _checked_attachments(request.attachments)
        base_name = _base_name(request)
        sandbox = self._sandbox(request)
        for _ in range(_NAME_ATTEMPTS):
            try:
                async with self._pool.connection() as conn:
                    outcome = await repository.create_task(
                        conn,
                        user_id=user.id,
                        project_id=request.project_id,
                        base_name=base_name,
                        prompt=prompt,
                        input_mode=request.input_mode,
                        payload=to_json_object(sandbox),
                        use_inference=sandbox.use_inference,
                        attachments=attachments,
                        max_active=self._max_active_tasks,
                    )
            except UniqueViolation:
                continue  # a racing create of this user took the name first
            if isinstance(outcome, repository.CreateRefused):
                raise self._refusal(user, outcome)
            row, job_id = outcome
            log.info(
                "task_created",
                extra={"task_id": str(row.id), "job_id": str(job_id), "input_mode": request.input_mode},
            )
            return _task_response(row)
        raise ProblemError(HTTPStatus.CONFLICT, "Could not give the task a unique name; try again")

    def _refusal(self, user: CurrentUser, refused: repository.CreateRefused) -> ProblemError:
        if refused.reason == "project_unusable":
            return _bad_request("project_id does not name a project you can use")
        log.info("task_cap_reached", extra={"user_id": str(user.id), "active": refused.active})
        return ProblemError(
            HTTPStatus.TOO_MANY_REQUESTS,
            f"you already have {refused.active} queued or running tasks (the limit is {self._max_active_tasks}); "
            "wait for some to finish",
            headers={"Retry-After": str(CAP_RETRY_AFTER_SECONDS)},
        )

    async def list_page(
        self, user: CurrentUser, *, status: TaskStatus | None, cursor: str | None, limit: int
    ) -> TaskListResponse:
        after = decode_cursor(cursor) if cursor is not None else None
        async with self._pool.connection() as conn:
            rows = await repository.list_tasks(conn, user.id, status=status, after=after, limit=limit + 1)
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            next_cursor = encode_cursor(PageAfter(created_at=last.created_at, id=last.id))
        return TaskListResponse(tasks=[_task_response(row) for row in page], next_cursor=next_cursor)

    async def _find(self, conn: Connection, user: CurrentUser, reference: str) -> TaskRow:
        [row] = await repository.find_tasks(conn, [(user.id, reference)])
        return _found(row)

    async def get(self, user: CurrentUser, reference: str) -> TaskResponse:
        # The hottest read (status polls, long-poll wake-ups): concurrent ones share a round trip.
        return _task_response(_found(await self._lookups.get((user.id, reference))))

    async def _task_and_jobs(self, user: CurrentUser, reference: str) -> tuple[TaskRow, list[repository.JobRow]]:
        # One snapshot, so the task status and its jobs never disagree.
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            task = await self._find(conn, user, reference)
            return task, await repository.task_jobs(conn, task.id)

    async def result(self, user: CurrentUser, reference: str) -> TaskResultResponse:
        task, jobs = await self._task_and_jobs(user, reference)
        return TaskResultResponse(
            task_id=task.id,
            status=cast(TaskStatus, task.status),
            jobs=[
                TaskResultJob(
                    id=job.id,
                    status=cast(TaskStatus, job.status),
                    node_slug=job.node_slug,
                    attempt=job.attempt,
                    started_at=job.started_at,
                    ended_at=job.ended_at,
                    result=job.result,
                    reason=job.reason,
                )
                for job in jobs
            ],
        )

    async def logs(self, user: CurrentUser, reference: str, stream: LogStream) -> TaskLogsResponse:
        task, jobs = await self._task_and_jobs(user, reference)

        def joined(name: str) -> str:
            if stream not in ("all", name):
                return ""
            return "".join(str(job.result.get(name) or "") for job in jobs if job.result is not None)

        return TaskLogsResponse(task_id=task.id, stdout=joined("stdout"), stderr=joined("stderr"))

    async def cancel(self, user: CurrentUser, reference: str) -> CancelTaskResponse:
        async with self._pool.connection() as conn, conn.transaction():
            task = await self._find(conn, user, reference)
            canceled = await repository.cancel_task(conn, task.id)
            current = await repository.get_task(conn, user.id, task.id)
        assert current is not None
        if canceled:
            log.info("task_canceled", extra={"task_id": str(task.id)})
        return CancelTaskResponse(task_id=task.id, canceled=canceled, status=cast(TaskStatus, current.status))
