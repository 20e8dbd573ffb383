"""A new task's name: the base if free, else ``-N`` one more than the highest suffix in use, decided in the
database by ``cynode_free_task_name`` (real PostgreSQL) whatever the user's other names look like."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from cynode.db.pool import Connection
from cynode.tasks import repository


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        ([], "deploy"),
        (["deploy"], "deploy-2"),
        (["deploy", "deploy-2", "deploy-4"], "deploy-5"),
        (["deploy", "deploy-2", "deploy-3"], "deploy-4"),
        (["deploy", "deploy-7"], "deploy-8"),
        (["deploy-2"], "deploy"),  # the base itself is free
        (["deploy", "deploy-docs", "deploy-2-b", "deploy-", "deploy2"], "deploy-2"),  # not suffixes
        (["deploy", "deploy-99999999999999999999999"], "deploy-2"),  # too long to be one of ours
        (["deploy", "deploy-02"], "deploy-3"),  # read as 2
        (["deploy", "deploy-1", "deploy-0"], "deploy-2"),
        (["deploy", "other-2", "other-3"], "deploy-2"),
    ],
)
async def test_the_smallest_free_suffix_is_chosen(fresh_dsn: str, taken: list[str], expected: str) -> None:
    async with await psycopg.AsyncConnection.connect(fresh_dsn, autocommit=True, row_factory=dict_row) as conn:
        user_id = await _user_with_tasks(conn, taken)
        assert await _free_name(conn, user_id) == expected


async def test_other_users_names_do_not_count(fresh_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(fresh_dsn, autocommit=True, row_factory=dict_row) as conn:
        await _user_with_tasks(conn, ["deploy", "deploy-2"])
        user_id = await _user_with_tasks(conn, [])
        assert await _free_name(conn, user_id) == "deploy"


async def test_the_next_suffix_comes_from_the_index_however_many_tasks_share_the_base(fresh_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(fresh_dsn, autocommit=True, row_factory=dict_row) as conn:
        user_id = await _user_with_tasks(conn, ["deploy", *(f"deploy-{n}" for n in range(2, 5001))])
        await conn.execute("ANALYZE tasks")
        scans = await _name_index_scans(conn)
        assert await _free_name(conn, user_id) == "deploy-5001"
        assert await _name_index_scans(conn) > scans


async def _name_index_scans(conn: Connection) -> int:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    cursor = await conn.execute(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'tasks_name_suffix_idx'"
    )
    row = await cursor.fetchone()
    assert row is not None
    scans: int = row["idx_scan"]
    return scans


async def _free_name(conn: Connection, user_id: uuid.UUID) -> str:
    cursor = await conn.execute("SELECT cynode_free_task_name(%s, 'deploy') AS name", (user_id,))
    row = await cursor.fetchone()
    assert row is not None
    name: str = row["name"]
    return name


async def _user_with_tasks(conn: Connection, names: list[str]) -> uuid.UUID:
    cursor = await conn.execute("INSERT INTO users (handle) VALUES (%s) RETURNING id", (f"u-{uuid.uuid4().hex[:8]}",))
    row = await cursor.fetchone()
    assert row is not None
    user_id: uuid.UUID = row["id"]
    project_id = await repository.ensure_default_project(conn, user_id)
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO tasks (created_by, project_id, prompt, task_name) VALUES (%s, %s, 'p', %s)",
            [(user_id, project_id, name) for name in names],
        )
    return user_id
