"""A user's default project is found or created in one statement, and two transactions creating it
at the same moment both end up with the one project (real PostgreSQL)."""

from __future__ import annotations

import asyncio

import psycopg
from psycopg.rows import dict_row

from cynode.db.pool import Connection
from cynode.tasks import repository
from tests.fixtures.identity import insert_user

CREATOR_WAITS_SECONDS = 10


async def _connect(dsn: str) -> Connection:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row)


async def test_the_default_project_is_created_once_and_then_found(fresh_dsn: str) -> None:
    async with await _connect(fresh_dsn) as conn:
        user_id = await insert_user(conn)
        created = await repository.ensure_default_project(conn, user_id)
        assert await repository.ensure_default_project(conn, user_id) == created
        cursor = await conn.execute("SELECT count(*) AS projects FROM projects WHERE owner_id = %s", (user_id,))
        assert await cursor.fetchone() == {"projects": 1}


async def test_a_creator_racing_another_gets_the_project_the_other_committed(fresh_dsn: str) -> None:
    async with (
        await _connect(fresh_dsn) as first,
        await _connect(fresh_dsn) as second,
        await _connect(fresh_dsn) as observer,
    ):
        user_id = await insert_user(first)
        async with first.transaction():
            created = await repository.ensure_default_project(first, user_id)
            # The second one's statement starts before the first commits: it cannot see the new row
            # and its insert waits on it, then gives way.
            racing = asyncio.create_task(repository.ensure_default_project(second, user_id))
            await _until_waiting_on_a_lock(observer, second)
        async with asyncio.timeout(CREATOR_WAITS_SECONDS):
            assert await racing == created


async def _until_waiting_on_a_lock(observer: Connection, waiter: Connection) -> None:
    async with asyncio.timeout(CREATOR_WAITS_SECONDS):
        while True:
            cursor = await observer.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (waiter.info.backend_pid,)
            )
            row = await cursor.fetchone()
            if row is not None and row["wait_event_type"] == "Lock":
                return
            await asyncio.sleep(0.01)
