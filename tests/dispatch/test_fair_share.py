"""Fair sharing: claims interleave users, and one user's queued+running tasks are capped."""

from __future__ import annotations

import uuid
from http import HTTPStatus

import pytest

from cynode.contracts.tasks import CreateTaskRequest
from cynode.http.problems import ProblemError
from cynode.identity.guard import CurrentUser
from cynode.sandbox import DEFAULT_SANDBOX_IMAGE
from cynode.tasks.service import CAP_RETRY_AFTER_SECONDS, TaskService
from tests.fixtures.tasks import DispatchWorld, FakeWorker

CONCURRENCY = 2


async def another_user(world: DispatchWorld, handle: str) -> CurrentUser:
    async with world.pool.connection() as conn:
        cursor = await conn.execute("INSERT INTO users (handle) VALUES (%s) RETURNING id", (handle,))
        row = await cursor.fetchone()
    assert row is not None
    return CurrentUser(id=row["id"], handle=handle, is_admin=False, session_id=uuid.uuid4())


async def test_one_users_long_queue_does_not_starve_another_users_job(dispatch_world: DispatchWorld) -> None:
    fake = FakeWorker(delay=0.2).start()
    try:
        await dispatch_world.fake_node(fake, max_concurrency=CONCURRENCY)
        a_tasks = [await dispatch_world.create(f"sleep 1 # {n}") for n in range(200)]
        dispatch_world.start(dispatch_world.dispatcher())
        await dispatch_world.wait_job(a_tasks[0], {"running", "completed"})
        user_b = await another_user(dispatch_world, "user-b")
        b_task = await dispatch_world.tasks.create(user_b, CreateTaskRequest(prompt="echo b", input_mode="commands"))
        b_job = await dispatch_world.wait_job(b_task.id, within=30)
    finally:
        fake.stop()

    async with dispatch_world.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS ahead FROM jobs WHERE task_id = ANY(%s) AND started_at > %s AND started_at < %s",
            (a_tasks, b_task.created_at, b_job["started_at"]),
        )
        row = await cursor.fetchone()
    assert row is not None
    # B's job takes the first slot that frees up after it was queued, not a place after A's 200.
    assert b_job["status"] == "completed"
    assert row["ahead"] <= 1


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
