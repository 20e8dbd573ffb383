"""The claim statement on its own: concurrent claimers, node slots, users' turns, the running counts."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from cynode.contracts.tasks import CreateTaskRequest
from cynode.dispatch import claims
from cynode.dispatch.claims import ClaimedJob
from cynode.dispatch.runner import CLAIM_BATCH, NodesSource
from cynode.nodes.dispatchable import DispatchableNode
from tests.dispatch.test_fair_share import another_user
from tests.fixtures.tasks import DispatchWorld

CLAIMERS = 8


async def dispatchable(world: DispatchWorld) -> list[DispatchableNode]:
    async with world.pool.connection() as conn:
        return await NodesSource(world.secret_box, 90)(conn)


async def claim_until_none(world: DispatchWorld, nodes: list[DispatchableNode], owner: str) -> list[ClaimedJob]:
    claimed = []
    while True:
        async with world.pool.connection() as conn:
            jobs = await claims.claim_jobs(conn, nodes, owner=owner, lease_seconds=60, limit=CLAIM_BATCH)
        if not jobs:
            return claimed
        claimed.extend(jobs)


async def claim_concurrently(world: DispatchWorld) -> list[ClaimedJob]:
    nodes = await dispatchable(world)
    batches = await asyncio.gather(*(claim_until_none(world, nodes, f"claimer-{n}") for n in range(CLAIMERS)))
    return [job for batch in batches for job in batch]


async def running_counts(world: DispatchWorld) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, int]]:
    """Per node: the kept running-jobs count, and the running jobs actually there."""
    async with world.pool.connection() as conn:
        kept = await conn.execute("SELECT node_id, running FROM node_running_jobs")
        kept_rows = await kept.fetchall()
        actual = await conn.execute(
            "SELECT node_id, count(*) AS running FROM jobs WHERE status = 'running' GROUP BY node_id"
        )
        actual_rows = await actual.fetchall()
    return (
        {row["node_id"]: row["running"] for row in kept_rows if row["running"]},
        {row["node_id"]: row["running"] for row in actual_rows},
    )


async def test_concurrent_claimers_fill_each_free_slot_once_and_no_more(dispatch_world: DispatchWorld) -> None:
    small = await dispatch_world.node("small", "http://127.0.0.1:9", "token-small", max_concurrency=2)
    large = await dispatch_world.node("large", "http://127.0.0.1:9", "token-large", max_concurrency=3)
    tasks = [await dispatch_world.create(f"echo {n}") for n in range(20)]

    claimed = await claim_concurrently(dispatch_world)

    assert Counter(job.node.node_id for job in claimed) == {small: 2, large: 3}
    assert len({job.job_id for job in claimed}) == 5
    assert {job.attempt for job in claimed} == {1}
    for job in claimed:
        row = await dispatch_world.job(job.task_id)
        assert (row["status"], row["task_status"], row["node_id"]) == ("running", "running", job.node.node_id)
    kept, actual = await running_counts(dispatch_world)
    assert kept == actual == {small: 2, large: 3}

    # A finished attempt frees exactly its slot, and the next claim takes it.
    first = claimed[0]
    async with dispatch_world.pool.connection() as conn:
        assert await claims.finish_attempt(
            conn, first.job_id, first.attempt, status="completed", result={"version": 1}, reason=None
        )
    again = await claim_concurrently(dispatch_world)
    assert [job.node.node_id for job in again] == [first.node.node_id]
    assert again[0].task_id in tasks


async def test_the_running_counts_follow_every_way_a_job_leaves_running(dispatch_world: DispatchWorld) -> None:
    node = await dispatch_world.node("counted", "http://127.0.0.1:9", "token-counted", max_concurrency=5)
    for n in range(5):
        await dispatch_world.create(f"echo {n}")
    finished, requeued, retried, canceled, deleted = await claim_concurrently(dispatch_world)

    async with dispatch_world.pool.connection() as conn:
        assert await claims.finish_attempt(
            conn, finished.job_id, finished.attempt, status="failed", result={"version": 1}, reason="exit_nonzero"
        )
        assert await claims.requeue(conn, requeued.job_id, requeued.attempt, "never started")
        assert await claims.requeue_or_fail(conn, retried.job_id, retried.attempt, "refused", "worker_refused") == (
            "queued"
        )
        await conn.execute("DELETE FROM tasks WHERE id = %s", (deleted.task_id,))
    await dispatch_world.tasks.cancel(dispatch_world.user, str(canceled.task_id))

    kept, actual = await running_counts(dispatch_world)
    assert kept == actual == {}
    assert (await dispatch_world.job(finished.task_id))["task_status"] == "failed"
    assert (await dispatch_world.job(requeued.task_id))["task_status"] == "queued"
    assert (await dispatch_world.job(canceled.task_id))["task_status"] == "canceled"
    # The two queued again are claimed again, on the node the counts say is empty.
    assert {job.task_id for job in await claim_concurrently(dispatch_world)} == {requeued.task_id, retried.task_id}
    kept, actual = await running_counts(dispatch_world)
    assert kept == actual == {node: 2}


async def test_a_stale_attempt_writes_nothing_and_frees_no_slot(dispatch_world: DispatchWorld) -> None:
    node = await dispatch_world.node("fenced", "http://127.0.0.1:9", "token-fenced", max_concurrency=1)
    await dispatch_world.create("echo once")
    (job,) = await claim_concurrently(dispatch_world)
    async with dispatch_world.pool.connection() as conn:
        assert await claims.requeue(conn, job.job_id, job.attempt, "never started")
    (again,) = await claim_concurrently(dispatch_world)

    async with dispatch_world.pool.connection() as conn:
        assert not await claims.finish_attempt(
            conn, job.job_id, job.attempt, status="completed", result={"stdout": "stale"}, reason=None
        )
        assert not await claims.requeue(conn, job.job_id, job.attempt, "stale")
        assert await claims.requeue_or_fail(conn, job.job_id, job.attempt, "stale", "worker_refused") is None

    assert again.attempt == job.attempt + 1
    row = await dispatch_world.job(job.task_id)
    assert (row["status"], row["task_status"], row["attempt"], row["result"]) == ("running", "running", 2, None)
    kept, actual = await running_counts(dispatch_world)
    assert kept == actual == {node: 1}


async def test_claims_take_turns_between_users_whatever_the_queue_lengths(dispatch_world: DispatchWorld) -> None:
    await dispatch_world.node("shared", "http://127.0.0.1:9", "token-shared", max_concurrency=4)
    a_tasks = [await dispatch_world.create(f"echo a{n}") for n in range(30)]
    user_b = await another_user(dispatch_world, "user-b")
    b_task = await dispatch_world.tasks.create(user_b, CreateTaskRequest(prompt="echo b", input_mode="commands"))

    nodes = await dispatchable(dispatch_world)
    order = await claim_until_none(dispatch_world, nodes, "one-claimer")

    # Both users start with nothing running, so A's older head goes first; then B, who has fewer.
    assert [job.task_id for job in order] == [a_tasks[0], b_task.id, a_tasks[1], a_tasks[2]]


async def test_a_job_carries_its_tasks_owner_whatever_a_write_says(dispatch_world: DispatchWorld) -> None:
    task_id = await dispatch_world.create("echo mine")
    other = await another_user(dispatch_world, "someone-else")
    async with dispatch_world.pool.connection() as conn:
        await conn.execute("UPDATE jobs SET owner_id = %s WHERE task_id = %s", (other.id, task_id))

    assert (await dispatch_world.job(task_id))["owner_id"] == dispatch_world.user.id


async def claim_once(world: DispatchWorld, nodes: list[DispatchableNode], limit: int) -> list[ClaimedJob]:
    async with world.pool.connection() as conn:
        return await claims.claim_jobs(conn, nodes, owner="one-claimer", lease_seconds=60, limit=limit)


async def test_one_claim_fills_the_least_loaded_nodes_free_slots_up_to_the_limit(
    dispatch_world: DispatchWorld,
) -> None:
    wide = await dispatch_world.node("wide", "http://127.0.0.1:9", "token-wide", max_concurrency=6)
    narrow = await dispatch_world.node("narrow", "http://127.0.0.1:9", "token-narrow", max_concurrency=2)
    tasks = [await dispatch_world.create(f"echo {n}") for n in range(20)]
    # Offered wide first: of two equally loaded nodes, the one offered first is filled first.
    nodes = sorted(await dispatchable(dispatch_world), key=lambda node: node.node_id != wide)

    first = await claim_once(dispatch_world, nodes, limit=4)
    second = await claim_once(dispatch_world, nodes, limit=4)
    third = await claim_once(dispatch_world, nodes, limit=4)
    fourth = await claim_once(dispatch_world, nodes, limit=4)

    # Each claim goes to the emptiest node (by share of its slots) and takes what it has free.
    assert [{job.node.node_id for job in batch} for batch in (first, second, third)] == [{wide}, {narrow}, {wide}]
    assert [len(batch) for batch in (first, second, third, fourth)] == [4, 2, 2, 0]
    assert [job.task_id for job in first + second + third] == tasks[:8]
    kept, actual = await running_counts(dispatch_world)
    assert kept == actual == {wide: 6, narrow: 2}


async def test_a_claim_for_jobs_needing_inference_goes_to_a_node_running_inference(
    dispatch_world: DispatchWorld,
) -> None:
    await dispatch_world.node("plain", "http://127.0.0.1:9", "token-plain", max_concurrency=4, inference_running=False)
    inferring = await dispatch_world.node(
        "inferring", "http://127.0.0.1:9", "token-inferring", max_concurrency=1, inference_running=True
    )
    prompt_task = await dispatch_world.create("echo $INFERENCE_PROXY_URL", use_inference=True)
    nodes = await dispatchable(dispatch_world)

    (job,) = await claim_once(dispatch_world, nodes, limit=4)
    assert (job.task_id, job.node.node_id) == (prompt_task, inferring)
    assert await claim_once(dispatch_world, nodes, limit=4) == []


async def test_a_node_another_claimer_is_filling_is_left_to_it(dispatch_world: DispatchWorld) -> None:
    busy = await dispatch_world.node("busy", "http://127.0.0.1:9", "token-busy", max_concurrency=4)
    free = await dispatch_world.node("free", "http://127.0.0.1:9", "token-free", max_concurrency=4)
    for n in range(3):
        await dispatch_world.create(f"echo {n}")
    nodes = await dispatchable(dispatch_world)

    async with dispatch_world.pool.connection() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM node_running_jobs WHERE node_id = %s FOR UPDATE", (busy,))
        claimed = await claim_once(dispatch_world, nodes, limit=4)

    assert {job.node.node_id for job in claimed} == {free}
    assert len(claimed) == 3


async def test_a_user_whose_old_jobs_all_ran_gets_no_head_start_over_a_newcomer(dispatch_world: DispatchWorld) -> None:
    await dispatch_world.node("turns", "http://127.0.0.1:9", "token-turns", max_concurrency=20)
    nodes = await dispatchable(dispatch_world)
    for n in range(3):
        await dispatch_world.create(f"echo old {n}")
    for job in await claim_once(dispatch_world, nodes, limit=20):
        async with dispatch_world.pool.connection() as conn:
            assert await claims.finish_attempt(
                conn, job.job_id, job.attempt, status="completed", result={"version": 1}, reason=None
            )

    # The queue is empty now. B, new, queues five; then A, whose turns went to jobs long done.
    user_b = await another_user(dispatch_world, "user-b")
    b_tasks = [
        (await dispatch_world.tasks.create(user_b, CreateTaskRequest(prompt=f"echo b{n}", input_mode="commands"))).id
        for n in range(5)
    ]
    a_task = await dispatch_world.create("echo a")

    order = [job.task_id for job in await claim_once(dispatch_world, nodes, limit=20)]
    # B's first job is the round being served, so A's next turn follows B's second: A neither
    # waits behind all of B's queue nor jumps ahead of B's first.
    assert order == [b_tasks[0], b_tasks[1], a_task, *b_tasks[2:]]
