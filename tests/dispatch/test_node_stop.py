"""Two nodes as separate ``cynode serve`` processes on one orchestrator process; one node stops, by
SIGTERM or by SIGKILL. Tasks submitted at once all complete on the other node and none fails: a
node that says it is shutting down gets nothing during its heartbeat grace, and one killed without
a word refuses connections, which sends each job straight back to the queue for the other node."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from cynode.dispatch.holds import SHUTDOWN_HOLD
from cynode.nodes.repository import select_dispatchable
from cynode.nodes.settings import NodePolicySettings
from cynode.tasks.repository import Connection
from tests.fixtures.deploy import SplitDeployment
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD
from tests.fixtures.nodemanager import wait_until

TASKS = 20
HEARTBEAT_GRACE = NodePolicySettings().heartbeat_grace_seconds


def dispatchable_slugs(dsn: str) -> set[str]:
    """The nodes the dispatch rule (heartbeat grace, applied config) would hand jobs to, holds aside."""

    async def query() -> set[str]:
        conn: Connection
        async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
            return {row.node_slug for row in await select_dispatchable(conn, HEARTBEAT_GRACE)}

    return asyncio.run(query())


def submit_at_once(deployment: SplitDeployment, count: int) -> list[str]:
    """``count`` commands tasks created concurrently through the gateway as the admin."""
    gateway = deployment.gateway
    assert gateway is not None

    async def create_all() -> list[str]:
        base_url = gateway.url(gateway.gateway, "")
        async with httpx.AsyncClient(base_url=base_url, verify=deployment.trust, timeout=60) as client:
            signed_in = await client.post("/v1/auth/login", json={"handle": ADMIN_HANDLE, "password": ADMIN_PASSWORD})
            assert signed_in.status_code == 200, signed_in.text
            headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
            created = await asyncio.gather(
                *(
                    client.post("/v1/tasks", json={"prompt": f"echo {n}", "input_mode": "commands"}, headers=headers)
                    for n in range(count)
                )
            )
        assert all(response.status_code == 201 for response in created), [r.text for r in created]
        return [response.json()["id"] for response in created]

    return asyncio.run(create_all())


def holds(db: Any) -> dict[str, str]:
    """The nodes dispatch holds back, by slug, with why."""
    rows = db.execute("SELECT n.node_slug, h.reason FROM node_dispatch_holds h JOIN nodes n ON n.id = h.node_id")
    return {row["node_slug"]: row["reason"] for row in rows.fetchall()}


def jobs_when_all_ended(db: Any, task_ids: list[str]) -> list[dict[str, Any]]:
    def ended() -> list[dict[str, Any]] | None:
        rows = db.execute(
            """
            SELECT j.status, j.reason, n.node_slug FROM jobs j LEFT JOIN nodes n ON n.id = j.node_id
            WHERE j.task_id = ANY(%s::uuid[])
            """,
            (task_ids,),
        ).fetchall()
        return rows if all(row["status"] not in ("queued", "running") for row in rows) else None

    rows: list[dict[str, Any]] = wait_until(ended, 180, f"{len(task_ids)} tasks to end")
    return rows


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_twenty_tasks_all_complete_on_the_node_that_is_left(
    split_deployment: SplitDeployment, fresh_dsn: str, db: Any, stop: signal.Signals
) -> None:
    split_deployment.start_gateway()
    control_plane = split_deployment.start_orchestrator()
    leaving_slug, staying_slug = (f"{role}-{uuid.uuid4().hex[:8]}" for role in ("leaving", "staying"))
    leaving = split_deployment.start_node(leaving_slug, control_plane)
    split_deployment.start_node(staying_slug, control_plane)
    wait_until(
        lambda: {leaving_slug, staying_slug} <= dispatchable_slugs(fresh_dsn), 90, "both nodes to be dispatchable"
    )

    leaving.process.send_signal(stop)
    leaving.process.communicate(timeout=60)
    assert leaving.process.returncode == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
    # Its heartbeats are recent: only the shutdown notice (or a refused connection) keeps jobs away.
    assert leaving_slug in dispatchable_slugs(fresh_dsn)
    # A killed node sends no notice.
    assert holds(db) == ({leaving_slug: SHUTDOWN_HOLD} if stop == signal.SIGTERM else {})

    jobs = jobs_when_all_ended(db, submit_at_once(split_deployment, TASKS))

    assert [(job["status"], job["reason"]) for job in jobs] == [("completed", None)] * TASKS
    assert {job["node_slug"] for job in jobs} == {staying_slug}
    # Only the stopped node is held: by its own notice, or (killed) by a refused run given back to the queue.
    [(held_slug, why)] = holds(db).items()
    assert held_slug == leaving_slug
    assert (why == SHUTDOWN_HOLD) == (stop == signal.SIGTERM), why
