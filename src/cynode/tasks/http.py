"""User API routes for tasks: ``/v1/tasks`` and its sub-resources (create, list, get, result, logs, cancel).

Get and result long-poll with ``?wait=N``; logs stream with ``?follow=1`` (:mod:`cynode.tasks.waiting`),
with a running job's output read live from its node (``live``, :mod:`cynode.tasks.live_output`).
The control plane serves ``GET /v1/orchestrator/tasks/{id}/output``, that output relayed to a gateway
running apart (:func:`task_output_relay_routes`).

Handlers only translate: they decode the body with the shared codec, read query parameters,
call :class:`TaskService` for the authenticated caller and encode its answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from cynode.context import OrchestratorContext
from cynode.contracts.job_output import TaskOutputResponse
from cynode.contracts.tasks import CreateTaskRequest
from cynode.http.output_query import byte_offset, output_stream
from cynode.http.paging import refuse_offset
from cynode.http.payloads import json_response, read_json
from cynode.http.problems import ProblemError
from cynode.identity.guard import CURRENT_USER, CurrentUser, current_user_provider
from cynode.tasks.endings import TaskEndings
from cynode.tasks.live_output import CONTROL_PLANE_TASKS_PATH, LiveOutput, Run
from cynode.tasks.service import TaskService, parse_limit, parse_status, parse_stream
from cynode.tasks.waiting import FOLLOW_MEDIA_TYPE, follow_logs, parse_follow, parse_wait, wait_for_terminal


def _task_service(ctx: OrchestratorContext) -> TaskService:
    return TaskService(
        ctx.pool, ctx.settings.dispatch.sandbox_image, max_active_tasks=ctx.settings.dispatch.max_active_tasks_per_user
    )


def _run(job_id: str | None, attempt: str | None) -> Run | None:
    """The run a relay caller has been following (both parameters or neither); a 400 problem otherwise."""
    if job_id is None and attempt is None:
        return None
    try:
        run = Run(uuid.UUID(job_id or ""), int(attempt or ""))
    except ValueError:
        run = None
    if run is None or run.attempt < 1:
        raise ProblemError(HTTPStatus.BAD_REQUEST, "job_id (a UUID) and attempt (from 1) go together")
    return run


def tasks_routes(ctx: OrchestratorContext, live: LiveOutput, endings: TaskEndings) -> Sequence[ControllerRouterHandler]:
    service = _task_service(ctx)
    signed_in = {CURRENT_USER: current_user_provider(ctx)}

    @post("/v1/tasks", dependencies=signed_in)
    async def create_task(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser]
    ) -> Response[bytes]:
        create_request = await read_json(request, CreateTaskRequest)
        return json_response(await service.create(current_user, create_request), HTTPStatus.CREATED)

    @get("/v1/tasks", dependencies=signed_in)
    async def list_tasks(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser]
    ) -> Response[bytes]:
        query = request.query_params
        refuse_offset(query)
        page = await service.list_page(
            current_user,
            status=parse_status(query.get("status")),
            cursor=query.get("cursor"),
            limit=parse_limit(query.get("limit")),
        )
        return json_response(page)

    @get("/v1/tasks/{task_ref:str}", dependencies=signed_in)
    async def get_task(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], task_ref: FromPath[str]
    ) -> Response[bytes]:
        wait = parse_wait(request.query_params.get("wait"))
        task = await wait_for_terminal(lambda: service.get(current_user, task_ref), endings, wait, task_ref)
        return json_response(task)

    @get("/v1/tasks/{task_ref:str}/result", dependencies=signed_in)
    async def task_result(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], task_ref: FromPath[str]
    ) -> Response[bytes]:
        wait = parse_wait(request.query_params.get("wait"))
        result = await wait_for_terminal(lambda: service.result(current_user, task_ref), endings, wait, task_ref)
        return json_response(result)

    @get("/v1/tasks/{task_ref:str}/logs", dependencies=signed_in)
    async def task_logs(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], task_ref: FromPath[str]
    ) -> Response[bytes] | Stream:
        stream = parse_stream(request.query_params.get("stream"))
        if parse_follow(request.query_params.get("follow")):
            await service.get(current_user, task_ref)  # a 404 before the stream starts, not inside it
            reader = live.reader(request.headers.get("authorization", ""))
            events = follow_logs(service, endings, reader, current_user, task_ref, stream)
            return Stream(events, media_type=FOLLOW_MEDIA_TYPE)
        return json_response(await service.logs(current_user, task_ref, stream))

    @post("/v1/tasks/{task_ref:str}/cancel", dependencies=signed_in, status_code=HTTPStatus.OK)
    async def cancel_task(current_user: NamedDependency[CurrentUser], task_ref: FromPath[str]) -> Response[bytes]:
        return json_response(await service.cancel(current_user, task_ref))

    return [create_task, list_tasks, get_task, task_result, task_logs, cancel_task]


def task_output_relay_routes(ctx: OrchestratorContext, live: LiveOutput) -> Sequence[ControllerRouterHandler]:
    """The control plane's relay of a running job's output to a gateway running apart (see
    :mod:`cynode.tasks.live_output`); the caller's token decides whose tasks it can see."""
    service = _task_service(ctx)

    @get(
        f"{CONTROL_PLANE_TASKS_PATH}/{{task_ref:str}}/output",
        dependencies={CURRENT_USER: current_user_provider(ctx)},
    )
    async def relay_task_output(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], task_ref: FromPath[str]
    ) -> Response[bytes]:
        query = request.query_params
        stream, after = output_stream(query.get("stream")), byte_offset(query.get("after"))
        run = _run(query.get("job_id"), query.get("attempt"))
        task = await service.get(current_user, task_ref)
        async with live.node_reader() as reader:
            chunk = await reader.read(task.id, stream, run, after)
        if chunk is None:
            return Response(b"", status_code=HTTPStatus.NO_CONTENT)
        relayed = TaskOutputResponse(
            version=1,
            task_id=str(task.id),
            job_id=str(chunk.run.job_id),
            attempt=chunk.run.attempt,
            output=chunk.output,
        )
        return json_response(relayed)

    return [relay_task_output]
