"""Task lookups by id or name, many in one round trip (``repository.find_tasks``), on real
PostgreSQL: answers in the order asked, scoped to each lookup's user, the id winning over a name."""

from __future__ import annotations

import uuid

import psycopg
from psycopg.rows import dict_row

from cynode.db.pool import Connection
from cynode.tasks import repository
from tests.fixtures.identity import insert_user


async def _task(conn: Connection, user_id: uuid.UUID, name: str) -> uuid.UUID:
    project_id = await repository.ensure_default_project(conn, user_id)
    cursor = await conn.execute(
        "INSERT INTO tasks (created_by, project_id, prompt, task_name) VALUES (%s, %s, 'p', %s) RETURNING id",
        (user_id, project_id, name),
    )
    row = await cursor.fetchone()
    assert row is not None
    task_id: uuid.UUID = row["id"]
    return task_id


async def test_each_lookup_finds_its_users_task_by_id_or_name_in_the_order_asked(fresh_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(fresh_dsn, autocommit=True, row_factory=dict_row) as conn:
        alice, bob = await insert_user(conn), await insert_user(conn)
        build = await _task(conn, alice, "build")
        deploy = await _task(conn, alice, "deploy")
        bobs = await _task(conn, bob, "build")
        # A task named like another task's id: the id wins.
        await _task(conn, alice, str(deploy))
        found = await repository.find_tasks(
            conn,
            [
                (alice, "deploy"),
                (alice, str(build)),
                (bob, str(build)),  # alice's task, asked for as bob
                (bob, "build"),
                (alice, "missing"),
                (alice, str(deploy)),
                (alice, str(uuid.uuid4())),
                (alice, "build"),
                (alice, "bu\x00ild"),  # PostgreSQL text cannot hold it: not found, and the rest still are
            ],
        )
        expected = [deploy, build, None, bobs, None, deploy, None, build, None]
        assert [None if row is None else row.id for row in found] == expected
        assert await repository.find_tasks(conn, []) == []
