#!/usr/bin/env python3
"""Queue claims per second: the dispatcher's claim step under contention, no containers.

Starts a private PostgreSQL, stores a few dispatchable nodes and 10,000 queued jobs (tasks of
several users), then lets 8 concurrent claimers do what each dispatcher does: read the
dispatchable nodes once, then run the claim statement (which takes as many jobs as the least loaded
node has free slots, up to the dispatcher's batch) until the queue is empty. Two rounds: the claim
query alone (the nodes have a free slot for every job), then claims on nodes of 16 slots where each
attempt is recorded as completed right away (as an instantly finishing sandbox would, so slots keep
freeing up). Prints jobs claimed per second (and claim statements per second) beside the rate of a
plain ``SELECT 1`` round trip on the same pool and concurrency.

A measurement, not a test: it never fails on a slow result.

Usage: .venv/bin/python scripts/bench/queue_claims.py [--jobs N] [--claimers N]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime

from psycopg.types.json import Jsonb
from report import private_database

from cynode.crypto import SecretBox
from cynode.db.migrations import apply_migrations
from cynode.db.pool import Pool, open_pool
from cynode.dispatch import claims
from cynode.dispatch.runner import CLAIM_BATCH, NodesSource

NODES = 4
BUSY_NODE_SLOTS = 16
USERS = 4
HEARTBEAT_GRACE_SECONDS = 3600


def capability(slug: str, slots: int) -> dict[str, object]:
    return {
        "version": 1,
        "reported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "node": {"node_slug": slug, "labels": []},
        "platform": {"os": "linux", "arch": "amd64"},
        "compute": {"cpu_cores": 2, "ram_mb": 4096},
        "sandbox": {"supported": True, "features": [], "max_concurrency": slots},
        "worker_api": {"base_url": f"http://{slug}.invalid:12090"},
    }


async def seed(pool: Pool, jobs: int, slots: int) -> None:
    async with pool.connection() as conn, conn.transaction():
        for number in range(NODES):
            slug = f"bench-node-{number}"
            cursor = await conn.execute(
                """
                INSERT INTO nodes (node_slug, status, config_version, config_ack_status, config_ack_version,
                                   worker_api_target_url, worker_api_bearer_token_ciphertext, last_seen_at)
                VALUES (%s, 'active', 'v1', 'applied', 'v1', %s, %s, now() + interval '1 day')
                RETURNING id
                """,
                (slug, f"http://{slug}.invalid:12090", b"sealed"),
            )
            row = await cursor.fetchone()
            assert row is not None
            await conn.execute(
                "INSERT INTO node_capabilities (node_id, reported_at, capability_hash, capability_snapshot)"
                " VALUES (%s, now(), 'sha256:bench', %s)",
                (row["id"], Jsonb(capability(slug, slots))),
            )
        users = [uuid.uuid4() for _ in range(USERS)]
        for user_id in users:
            await conn.execute("INSERT INTO users (id, handle) VALUES (%s, %s)", (user_id, f"bench-{user_id.hex[:8]}"))
        await conn.execute(
            """
            WITH made AS (
                INSERT INTO tasks (created_by, task_name, prompt, input_mode)
                SELECT (%(users)s::uuid[])[1 + n %% %(user_count)s], 'bench-' || n, 'true', 'commands'
                FROM generate_series(1, %(jobs)s) AS n
                RETURNING id
            )
            INSERT INTO jobs (task_id, payload)
            SELECT id, '{"command": ["true"]}'::jsonb FROM made
            """,
            {"users": users, "user_count": USERS, "jobs": jobs},
        )


async def claimer(pool: Pool, nodes_source: NodesSource, owner: str, *, finish: bool) -> tuple[int, int]:
    """Claim like a dispatcher until nothing is left; the jobs claimed and the claim statements run."""
    claimed = statements = 0
    async with pool.connection() as conn:
        nodes = await nodes_source(conn)
    while True:
        async with pool.connection() as conn:
            jobs = await claims.claim_jobs(conn, nodes, owner=owner, lease_seconds=60, limit=CLAIM_BATCH)
            statements += 1
            if not jobs:
                return claimed, statements
            if finish:
                for job in jobs:
                    await claims.finish_attempt(
                        conn, job.job_id, job.attempt, status="completed", result={"version": 1}, reason=None
                    )
        claimed += len(jobs)


async def select_one_loop(pool: Pool, until: float) -> int:
    count = 0
    while time.perf_counter() < until:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        count += 1
    return count


async def claim_round(pool: Pool, jobs: int, concurrency: int, *, finish: bool) -> tuple[float, float]:
    """Claims and claim statements per second until ``jobs`` queued jobs are all claimed; the tables
    are emptied after."""
    await seed(pool, jobs, BUSY_NODE_SLOTS if finish else jobs)
    nodes = NodesSource(SecretBox(secrets.token_bytes(32)), HEARTBEAT_GRACE_SECONDS)
    started = time.perf_counter()
    counts = await asyncio.gather(*(claimer(pool, nodes, f"bench-{n}", finish=finish) for n in range(concurrency)))
    seconds = time.perf_counter() - started
    claimed = sum(count for count, _ in counts)
    if claimed != jobs:
        raise SystemExit(f"{claimed} of {jobs} jobs claimed")
    async with pool.connection() as conn:
        await conn.execute("TRUNCATE nodes, users CASCADE")
    return jobs / seconds, sum(statements for _, statements in counts) / seconds


async def bench(dsn: str, jobs: int, concurrency: int) -> None:
    await apply_migrations(dsn)
    pool = await open_pool(dsn, max_size=concurrency)
    try:
        alone = await claim_round(pool, jobs, concurrency, finish=False)
        cycled = await claim_round(pool, jobs, concurrency, finish=True)
        until = time.perf_counter() + 3
        selects = await asyncio.gather(*(select_one_loop(pool, until) for _ in range(concurrency)))
    finally:
        await pool.close()
    select_rate = sum(selects) / 3
    print(f"{jobs} queued jobs, {concurrency} claimers, {NODES} nodes, up to {CLAIM_BATCH} jobs per claim statement")
    print(f"claims, the claim query alone:                            {alone[0]:7.0f}/s ({alone[1]:.0f} statements/s)")
    print(
        f"claims, each attempt then finished ({BUSY_NODE_SLOTS} slots per node):  {cycled[0]:7.0f}/s"
        f" ({cycled[1]:.0f} statements/s)"
    )
    print(f"SELECT 1 round trips, same pool and concurrency:          {select_rate:7.0f}/s")
    print(f"ratio (claims, query alone / SELECT 1): {alone[0] / select_rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--claimers", type=int, default=8)
    args = parser.parse_args()
    if args.jobs < 1 or args.claimers < 1:
        parser.error("--jobs and --claimers must be at least 1")
    with private_database("claims") as (_, dsn):
        asyncio.run(bench(dsn, args.jobs, args.claimers))


if __name__ == "__main__":
    sys.exit(main())
