"""Fair sharing: claims interleave users, and one user's queued+running tasks are capped."""

from __future__ import annotations

import asyncio
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from cynode.contracts.tasks import CreateTaskRequest
from cynode.http.problems import ProblemError
from cynode.identity.guard import CurrentUser
from cynode.sandbox import DEFAULT_SANDBOX_IMAGE, PodmanService
from cynode.settings import Role
from cynode.tasks.service import CAP_RETRY_AFTER_SECONDS, TaskService
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, IDENTITY_ENV, USER_PASSWORD, create_user, login
from tests.fixtures.nodemanager import wait_until
from tests.fixtures.podman import containers_of
from tests.fixtures.stack import StackFactory, start_all_in_one
from tests.fixtures.tasks import DispatchWorld, TaskApi

CONCURRENCY = 2
A_TASKS = 200


async def another_user(world: DispatchWorld, handle: str) -> CurrentUser:
    async with world.pool.connection() as conn:
        cursor = await conn.execute("INSERT INTO users (handle) VALUES (%s) RETURNING id", (handle,))
        row = await cursor.fetchone()
    assert row is not None
    return CurrentUser(id=row["id"], handle=handle, is_admin=False, session_id=uuid.uuid4())


def test_one_users_long_queue_does_not_starve_another_users_job(
    stack_factory: StackFactory, podman_service: PodmanService, sandbox_image: str, tmp_path: Path, db: Any
) -> None:
    slug = f"fair-{uuid.uuid4().hex[:8]}"
    node_yaml = (
        "inference:\n  mode: disabled\n"
        f"sandbox:\n  max_concurrency: {CONCURRENCY}\n  podman_socket: {podman_service.url}\n"
    )
    stack = start_all_in_one(stack_factory, tmp_path, node_slug=slug, env=IDENTITY_ENV, node_yaml_extra=node_yaml)
    gateway = stack.client(Role.GATEWAY)
    admin = login(gateway, ADMIN_HANDLE, ADMIN_PASSWORD)
    users = {}
    for handle in ("user-a", "user-b"):
        create_user(gateway, admin, handle)
        users[handle] = TaskApi(gateway, login(gateway, handle, USER_PASSWORD))
    user_a, user_b = users["user-a"], users["user-b"]

    a_tasks = [user_a.create(f"sleep 1 # {n}", input_mode="commands")["id"] for n in range(A_TASKS)]
    b_task = user_b.create("echo b", input_mode="commands")["id"]
    b_done = user_b.wait_for_status(b_task, timeout=120)
    # A's queue is not needed any more: cancel what is left of it, running jobs included.
    for task_id in a_tasks:
        user_a.cancel(task_id)

    assert b_done["status"] == "completed", b_done
    order = db.execute(
        """
        SELECT count(*) FILTER (WHERE j.started_at > b.created_at) AS after_b_queued,
               count(*) AS before_b_started
        FROM jobs j, tasks b, jobs bj
        WHERE b.id = %s AND bj.task_id = b.id AND j.task_id = ANY(%s) AND j.started_at < bj.started_at
        """,
        (b_task, a_tasks),
    ).fetchone()
    # B's job takes one of the first slots that free up after it was queued, not a place after A's 200.
    assert order["after_b_queued"] <= CONCURRENCY, order
    assert order["before_b_started"] < A_TASKS // 2, order

    # The cancel path stops A's running jobs on the node and removes their containers.
    endings = db.execute(
        """
        SELECT status, reason, count(*) FILTER (WHERE started_at IS NOT NULL) AS started
        FROM jobs WHERE task_id = ANY(%s) GROUP BY status, reason
        """,
        (a_tasks,),
    ).fetchall()
    started_by_ending = {(row["status"], row["reason"]): row["started"] for row in endings}
    assert set(started_by_ending) == {("completed", None), ("canceled", "canceled")}, endings
    assert started_by_ending[("canceled", "canceled")] >= 1, "no running job was canceled"
    wait_until(lambda: not containers_of(podman_service.url, slug), 60, "the canceled jobs' containers to go")


async def test_racing_creates_never_pass_the_cap_and_never_share_a_name(dispatch_world: DispatchWorld) -> None:
    capped = TaskService(dispatch_world.pool, DEFAULT_SANDBOX_IMAGE, max_active_tasks=3)
    racer = await another_user(dispatch_world, "racer")
    request = CreateTaskRequest(prompt="echo race", input_mode="commands", task_name="race")
    outcomes = await asyncio.gather(*(capped.create(racer, request) for _ in range(6)), return_exceptions=True)
    created = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, ProblemError)]
    assert sorted(task.task_name for task in created) == ["race", "race-2", "race-3"]
    assert [problem.status for problem in refused] == [HTTPStatus.TOO_MANY_REQUESTS] * 3

    uncapped = TaskService(dispatch_world.pool, DEFAULT_SANDBOX_IMAGE, max_active_tasks=None)
    names = await asyncio.gather(*(uncapped.create(racer, request) for _ in range(5)))
    assert sorted(task.task_name for task in names) == ["race-4", "race-5", "race-6", "race-7", "race-8"]


async def test_a_user_over_the_cap_gets_429_with_retry_after_and_nothing_is_created(
    dispatch_world: DispatchWorld,
) -> None:
    capped = TaskService(dispatch_world.pool, DEFAULT_SANDBOX_IMAGE, max_active_tasks=3)
    for n in range(3):
        await capped.create(dispatch_world.user, CreateTaskRequest(prompt=f"echo {n}", input_mode="commands"))

    with pytest.raises(ProblemError) as refused:
        await capped.create(dispatch_world.user, CreateTaskRequest(prompt="echo 4", input_mode="commands"))

    assert refused.value.status == HTTPStatus.TOO_MANY_REQUESTS
    assert refused.value.headers == {"Retry-After": str(CAP_RETRY_AFTER_SECONDS)}
    async with dispatch_world.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS tasks FROM tasks WHERE created_by = %s", (dispatch_world.user.id,)
        )
        row = await cursor.fetchone()
    assert row is not None
    assert row["tasks"] == 3
    # Another user is not held back by the first one's cap; a finished task frees a place.
    other = await another_user(dispatch_world, "other")
    await capped.create(other, CreateTaskRequest(prompt="echo other", input_mode="commands"))
    listed = await capped.list_page(dispatch_world.user, status=None, cursor=None, limit=1)
    await capped.cancel(dispatch_world.user, str(listed.tasks[0].id))
    await capped.create(dispatch_world.user, CreateTaskRequest(prompt="echo again", input_mode="commands"))
