"""Two real nodes on one orchestrator; one stops. Tasks submitted at once all complete on the other
and none fails: a node that says it is shutting down gets nothing during its heartbeat grace, and
one that vanished without a word (kill -9) refuses connections, which sends each job straight
back to the queue for the other node."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from cynode.contracts.tasks import CreateTaskRequest
from cynode.dispatch.holds import SHUTDOWN_HOLD
from cynode.identity.guard import CurrentUser
from cynode.tasks.service import TaskService
from tests.fixtures.nodemanager import NodeDeployment, wait_until

TASKS = 20


def run_tasks(deployment: NodeDeployment, count: int) -> list[dict[str, Any]]:
    """Submit ``count`` commands tasks at once as the admin and return their jobs once all ended."""
    ctx = deployment.context

    async def submit() -> list[uuid.UUID]:
        async with ctx.pool.connection() as conn:
            cursor = await conn.execute("SELECT id FROM users WHERE handle = 'admin'")
            row = await cursor.fetchone()
        assert row is not None
        admin = CurrentUser(id=row["id"], handle="admin", is_admin=True, session_id=uuid.uuid4())
        service = TaskService(ctx.pool, ctx.settings.dispatch.sandbox_image)
        created = await asyncio.gather(
            *(service.create(admin, CreateTaskRequest(prompt=f"echo {n}", input_mode="commands")) for n in range(count))
        )
        return [task.id for task in created]

    task_ids = deployment.control_plane.run(submit())

    async def jobs() -> list[dict[str, Any]]:
        async with ctx.pool.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT j.status, j.reason, j.attempt, n.node_slug FROM jobs j LEFT JOIN nodes n ON n.id = j.node_id
                WHERE j.task_id = ANY(%s)
                """,
                (task_ids,),
            )
            return [dict(row) for row in await cursor.fetchall()]

    def finished() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = deployment.control_plane.run(jobs())
        return rows if all(row["status"] not in ("queued", "running") for row in rows) else None

    result: list[dict[str, Any]] = wait_until(finished, 180, f"{count} tasks to end")
    return result


def holds_of(deployment: NodeDeployment) -> dict[uuid.UUID, str]:
    async def query() -> dict[uuid.UUID, str]:
        async with deployment.context.pool.connection() as conn:
            cursor = await conn.execute("SELECT node_id, reason FROM node_dispatch_holds")
            return {row["node_id"]: row["reason"] for row in await cursor.fetchall()}

    holds: dict[uuid.UUID, str] = deployment.control_plane.run(query())
    return holds


@pytest.mark.parametrize("stop", ["sigterm", "kill-9"])
def test_twenty_tasks_all_complete_on_the_node_that_is_left(node_deployment: NodeDeployment, stop: str) -> None:
    node_deployment.start_orchestrator()
    leaving = node_deployment.start_node()
    leaving_slug = node_deployment.slugs[0]
    staying_slug = node_deployment.new_slug()
    node_deployment.start_node(staying_slug)
    for slug in (leaving_slug, staying_slug):
        node_deployment.wait_dispatchable(slug)

    leaving.stop()
    # Its heartbeats are recent: only the shutdown notice (or a refused connection) keeps jobs away.
    assert leaving_slug in node_deployment.dispatchable()
    row = node_deployment.node_row(leaving_slug)
    assert row is not None
    assert holds_of(node_deployment) == {row["id"]: SHUTDOWN_HOLD}
    if stop == "kill-9":
        # A killed node sends no notice: only its refused connections tell.
        node_deployment.execute("DELETE FROM node_dispatch_holds")

    jobs = run_tasks(node_deployment, TASKS)

    assert [(job["status"], job["reason"]) for job in jobs] == [("completed", None)] * TASKS
    assert {job["node_slug"] for job in jobs} == {staying_slug}
