"""User API routes for tasks: ``/v1/tasks`` and its sub-resources (create, list, get, result, logs, cancel).

Get and result long-poll with ``?wait=N``; logs stream with ``?follow=1`` (:mod:`cynode.tasks.waiting`),
with a running job's output read live from its node (``live``, :mod:`cynode.tasks.live_output`).

Handlers only translate: they decode the body with the shared codec, read query parameters,
call :class:`TaskService` for the authenticated caller and encode its answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from cynode.context import OrchestratorContext
from cynode.contracts.tasks import CreateTaskRequest
from cynode.http.paging import refuse_offset
from cynode.http.payloads import json_response, read_json
from cynode.identity.guard import CURRENT_USER, CurrentUser, current_user_provider
from cynode.tasks.live_output import LiveOutput
from cynode.tasks.service import TaskService, parse_limit, parse_status, parse_stream
from cynode.tasks.waiting import FOLLOW_MEDIA_TYPE, follow_logs, parse_follow, parse_wait, wait_for_terminal


def tasks_routes(ctx: OrchestratorContext, live: LiveOutput) -> Sequence[ControllerRouterHandler]:
    service = TaskService(
        ctx.pool, ctx.settings.dispatch.sandbox_image, max_active_tasks=ctx.settings.dispatch.max_active_tasks_per_user
    )
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
        task = await wait_for_terminal(lambda: service.get(current_user, task_ref), lambda t: t.status, wait)
        return json_response(task)

    @get("/v1/tasks/{task_ref:str}/result", dependencies=signed_in)
    async def task_result(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], task_ref: FromPath[str]
    ) -> Response[bytes]:
        wait = parse_wait(request.query_params.get("wait"))
        result = await wait_for_terminal(lambda: service.result(current_user, task_ref), lambda r: r.status, wait)
        return json_response(result)

    @get("/v1/tasks/{task_ref:str}/logs", dependencies=signed_in)
    async def task_logs(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], task_ref: FromPath[str]
    ) -> Response[bytes] | Stream:
        stream = parse_stream(request.query_params.get("stream"))
        if parse_follow(request.query_params.get("follow")):
            await service.get(current_user, task_ref)  # a 404 before the stream starts, not inside it
            return Stream(follow_logs(service, live, current_user, task_ref, stream), media_type=FOLLOW_MEDIA_TYPE)
        return json_response(await service.logs(current_user, task_ref, stream))

    @post("/v1/tasks/{task_ref:str}/cancel", dependencies=signed_in, status_code=HTTPStatus.OK)
    async def cancel_task(current_user: NamedDependency[CurrentUser], task_ref: FromPath[str]) -> Response[bytes]:
        return json_response(await service.cancel(current_user, task_ref))

    return [create_task, list_tasks, get_task, task_result, task_logs, cancel_task]
