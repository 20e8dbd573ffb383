"""Task pages: the list (status filter, paging), the create form, a task's detail, its live feed and cancel.

Everything goes through :class:`TaskService` for the signed-in user, so another user's task is not
found here either. The detail page shows output as text; while the task is not finished, the
console script polls ``/tasks/{ref}/live`` and replaces the status and log text in place. While
the job runs, that feed carries its output so far, read from its node (``cynode.tasks.live_output``).
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Final, get_args

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from cynode.contracts.codec import PayloadError, convert
from cynode.contracts.job_output import OUTPUT_STREAMS
from cynode.contracts.tasks import TERMINAL_TASK_STATUSES, CreateTaskRequest, InputMode, TaskStatus
from cynode.contracts.web import LiveTaskResponse
from cynode.http.payloads import json_response
from cynode.http.problems import ProblemError
from cynode.tasks.service import parse_status
from cynode.web.console import Console, see_other
from cynode.web.session import Viewer

PAGE_SIZE: Final = 20
STATUSES: Final[tuple[TaskStatus, ...]] = get_args(TaskStatus)
INPUT_MODES: Final[tuple[InputMode, ...]] = get_args(InputMode)


def _create_request(form: Any) -> CreateTaskRequest:
    """The form as the API's create body; a 400 problem when a field does not fit it."""
    fields: dict[str, Any] = {
        "prompt": form.get("prompt") or "",
        "input_mode": form.get("input_mode") or "prompt",
        "use_inference": form.get("use_inference") == "on",
    }
    if task_name := (form.get("task_name") or "").strip():
        fields["task_name"] = task_name
    try:
        return convert(fields, CreateTaskRequest)
    except PayloadError as exc:
        raise ProblemError(HTTPStatus.BAD_REQUEST, str(exc)) from None


def routes(console: Console) -> Sequence[ControllerRouterHandler]:
    tasks = console.tasks

    def new_task_form(
        viewer: Viewer, status: int = HTTPStatus.OK, error: str | None = None, **values: Any
    ) -> Response[str]:
        return console.page(viewer, "task_new.html", status, modes=INPUT_MODES, error=error, values=values)

    @get("/tasks")
    async def task_list(request: Request[Any, Any, Any]) -> Response[str]:
        viewer = await console.viewer(request)
        query = request.query_params
        status = parse_status(query.get("status") or None)
        cursor = query.get("cursor") or None
        page = await tasks.list_page(viewer.user, status=status, cursor=cursor, limit=PAGE_SIZE)
        return console.page(
            viewer,
            "tasks.html",
            tasks=page.tasks,
            next_cursor=page.next_cursor,
            first_page=cursor is None,
            status_filter=status,
            statuses=STATUSES,
        )

    @get("/tasks/new")
    async def new_task(request: Request[Any, Any, Any]) -> Response[str]:
        return new_task_form(await console.viewer(request), input_mode="prompt")

    @post("/tasks")
    async def create_task(request: Request[Any, Any, Any]) -> Response[Any]:
        viewer = await console.viewer(request)
        form = await console.form(request, viewer.csrf_token)
        try:
            created = await tasks.create(viewer.user, _create_request(form))
        except ProblemError as problem:
            return new_task_form(viewer, problem.status, problem.detail, **dict(form.items()))
        return see_other(f"/tasks/{created.id}")

    @get("/tasks/{task_ref:str}")
    async def task_detail(request: Request[Any, Any, Any], task_ref: FromPath[str]) -> Response[str]:
        viewer = await console.viewer(request)
        task = await tasks.get(viewer.user, task_ref)
        result = await tasks.result(viewer.user, task_ref)
        logs = await tasks.logs(viewer.user, task_ref, "all")
        return console.page(
            viewer,
            "task_detail.html",
            task=task,
            jobs=result.jobs,
            logs=logs,
            finished=result.status in TERMINAL_TASK_STATUSES,
        )

    @get("/tasks/{task_ref:str}/live")
    async def task_live(request: Request[Any, Any, Any], task_ref: FromPath[str]) -> Response[bytes]:
        viewer = await console.viewer(request)
        logs = await tasks.logs(viewer.user, task_ref, "all")
        task = await tasks.get(viewer.user, task_ref)
        output = {"stdout": logs.stdout, "stderr": logs.stderr}
        if task.status == "running":
            async with console.live_output.reader(f"Bearer {viewer.access_token}") as reader:
                for stream in OUTPUT_STREAMS:
                    so_far = await reader.read(task.id, stream, None, 0)
                    if so_far is not None:
                        output[stream] = so_far.output.data
        return json_response(
            LiveTaskResponse(
                status=task.status,
                finished=task.status in TERMINAL_TASK_STATUSES,
                stdout=output["stdout"],
                stderr=output["stderr"],
            )
        )

    @post("/tasks/{task_ref:str}/cancel")
    async def cancel_task(request: Request[Any, Any, Any], task_ref: FromPath[str]) -> Response[Any]:
        viewer = await console.viewer(request)
        await console.form(request, viewer.csrf_token)
        canceled = await tasks.cancel(viewer.user, task_ref)
        return see_other(f"/tasks/{canceled.task_id}")

    return [task_list, new_task, create_task, task_detail, task_live, cancel_task]
