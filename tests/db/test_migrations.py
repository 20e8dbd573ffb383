"""Migrations apply once each, even when several processes start at the same moment."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from cynode.db.migrations import apply_migrations, load_migrations, migrations_dir

CYNODE = [sys.executable, "-m", "cynode.cli"]
QUEUE_RANK_VERSION = 11


def _applied_versions(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def test_two_migrate_commands_started_together_both_succeed(empty_dsn: str, tmp_path: Path) -> None:
    command = [*CYNODE, "migrate", "--database-url", empty_dsn, "--data-dir", str(tmp_path)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    everything = [m.version for m in load_migrations()]
    counts = sorted(int(out.split()[1]) for out, _ in outputs)
    assert counts == [0, len(everything)], outputs
    assert _applied_versions(empty_dsn) == everything


async def test_concurrent_runs_in_one_process_apply_each_migration_once(empty_dsn: str) -> None:
    results = await asyncio.gather(*(apply_migrations(empty_dsn) for _ in range(4)))
    applied = sorted(v for result in results for v in result)
    assert applied == [m.version for m in load_migrations()]
    assert await apply_migrations(empty_dsn) == []


async def test_a_failing_migration_leaves_nothing_half_applied(empty_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        await apply_migrations(empty_dsn, tmp_path)
    with psycopg.connect(empty_dsn) as conn:
        assert _applied_versions(empty_dsn) == [1]
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)


def test_badly_named_migration_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_oops.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


async def test_jobs_queued_before_the_queue_rank_keep_their_order_and_users_take_turns(
    empty_dsn: str, tmp_path: Path
) -> None:
    before_ranks = tmp_path / "before"
    before_ranks.mkdir()
    for migration in migrations_dir().glob("*.sql"):
        if int(migration.name.split("_", 1)[0]) < QUEUE_RANK_VERSION:
            (before_ranks / migration.name).write_text(migration.read_text())
    await apply_migrations(empty_dsn, before_ranks)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        users = {}
        for handle in ("ann", "bob"):
            row = conn.execute("INSERT INTO users (handle) VALUES (%s) RETURNING id", (handle,)).fetchone()
            assert row is not None
            users[handle] = row[0]
        for number, handle in enumerate(["ann", "ann", "bob", "ann"]):
            conn.execute(
                """
                WITH task AS (
                    INSERT INTO tasks (created_by, task_name, prompt, input_mode)
                    VALUES (%s, %s, 'true', 'commands') RETURNING id
                )
                INSERT INTO jobs (task_id, payload) SELECT id, '{}' FROM task
                """,
                (users[handle], f"task-{number}"),
            )

    await apply_migrations(empty_dsn)

    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        ranks = conn.execute(
            "SELECT t.task_name, j.queue_rank FROM jobs j JOIN tasks t ON t.id = j.task_id ORDER BY t.task_name"
        ).fetchall()
        assert ranks == [("task-0", 0), ("task-1", 1), ("task-2", 0), ("task-3", 2)]
        # Bob's next job takes his next turn; a newcomer joins the round being served.
        conn.execute(
            """
            WITH task AS (
                INSERT INTO tasks (created_by, task_name, prompt, input_mode)
                VALUES (%s, 'task-4', 'true', 'commands') RETURNING id
            )
            INSERT INTO jobs (task_id, payload) SELECT id, '{}' FROM task
            """,
            (users["bob"],),
        )
        assert conn.execute(
            "SELECT j.queue_rank FROM jobs j JOIN tasks t ON t.id = j.task_id WHERE t.task_name = 'task-4'"
        ).fetchone() == (1,)
