"""Taking over a job whose orchestrator died after sending its run, against a real Worker API and
real PostgreSQL: the node is asked first, and its kept answer is stored, its run adopted, or (unknown
to the node) the job run again; the job never runs twice on the node."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import msgspec

from cynode.dispatch.claims import ClaimedJob
from tests.dispatch.test_hostile_answers import sent_by_a_dead_orchestrator
from tests.fixtures.podman import WORKER_TOKEN, RunningWorker, WorkerFactory
from tests.fixtures.tasks import FAST_DISPATCH, DispatchWorld, FakeWorker, eventually

AUTH = {"Authorization": f"Bearer {WORKER_TOKEN}"}
# Prints a fresh random id: an answer carrying it came from the one run that printed it.
ONCE = "cat /proc/sys/kernel/random/uuid"


def run_request(sent: ClaimedJob) -> dict[str, Any]:
    """The jobs:run body the dead orchestrator sent for its claim."""
    return {
        "version": 1,
        "task_id": str(sent.task_id),
        "job_id": str(sent.job_id),
        "sandbox": sent.payload,
        "attempt": sent.attempt,
    }


async def node_state(world: DispatchWorld, worker: RunningWorker, job_id: Any) -> str:
    answer = await world.http.get(f"{worker.base_url}/v1/worker/jobs/{job_id}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    state: str = answer.json()["state"]
    return state


async def orphaned_job(
    world: DispatchWorld, worker_factory: WorkerFactory, command: str
) -> tuple[RunningWorker, uuid.UUID, float, ClaimedJob]:
    """A real node, and a task running ``command`` claimed and marked sent by an orchestrator that
    then died (its 1 s lease runs out unrenewed); also the time just before the claim."""
    worker = worker_factory()
    await world.node(f"takeover-{worker.owner[-8:]}", worker.base_url, WORKER_TOKEN)
    task_id = await world.create(command)
    since = time.time()
    return worker, task_id, since, await sent_by_a_dead_orchestrator(world)


async def survivor_finishes(
    world: DispatchWorld, worker: RunningWorker, task_id: uuid.UUID, since: float
) -> dict[str, Any]:
    """Start the surviving dispatcher; its job ends with one container since ``since`` and the
    stored answer acknowledged to the node."""
    world.start(world.dispatcher(owner="survivor"))
    job = await world.wait_job(task_id)
    assert worker.containers_created_since(since) == 1
    deadline = time.monotonic() + 30
    while await node_state(world, worker, job["id"]) != "unknown":
        assert time.monotonic() < deadline, "the stored answer was never acknowledged to the node"
        await asyncio.sleep(0.05)
    return job


async def test_a_finished_run_is_stored_from_the_nodes_kept_answer(
    dispatch_world: DispatchWorld, worker_factory: WorkerFactory
) -> None:
    worker, task_id, since, sent = await orphaned_job(dispatch_world, worker_factory, ONCE)
    # The run reached the node and finished; its answer went back to nobody.
    lost = await dispatch_world.http.post(f"{worker.base_url}/v1/worker/jobs:run", json=run_request(sent), headers=AUTH)
    assert await node_state(dispatch_world, worker, sent.job_id) == "finished"

    job = await survivor_finishes(dispatch_world, worker, task_id, since)

    assert (job["status"], job["attempt"]) == ("completed", 1)
    assert job["result"]["stdout"] == lost.json()["stdout"]


async def test_a_run_still_going_is_adopted_and_its_answer_stored(
    dispatch_world: DispatchWorld, worker_factory: WorkerFactory
) -> None:
    worker, task_id, since, sent = await orphaned_job(dispatch_world, worker_factory, f"sleep 3; {ONCE}")
    call = asyncio.create_task(
        dispatch_world.http.post(f"{worker.base_url}/v1/worker/jobs:run", json=run_request(sent), headers=AUTH)
    )
    await eventually(lambda: worker.running_containers() == 1)
    call.cancel()  # the orchestrator dies: its connection to the node goes with it

    job = await survivor_finishes(dispatch_world, worker, task_id, since)

    assert (job["status"], job["attempt"], job["lease_owner"]) == ("completed", 1, None)
    assert len(job["result"]["stdout"].strip()) == 36  # the run printed its id to the end


async def test_a_job_the_node_does_not_know_runs_again(
    dispatch_world: DispatchWorld, worker_factory: WorkerFactory
) -> None:
    worker, task_id, since, sent = await orphaned_job(dispatch_world, worker_factory, ONCE)  # died before the call left
    assert await node_state(dispatch_world, worker, sent.job_id) == "unknown"

    job = await survivor_finishes(dispatch_world, worker, task_id, since)

    assert (job["status"], job["attempt"]) == ("completed", 2)
    assert worker.containers_created_since(since) == 1


async def test_a_dispatcher_whose_attempt_was_taken_over_leaves_the_run_alone(
    dispatch_world: DispatchWorld,
) -> None:
    fake = FakeWorker(delay=2).start()
    try:
        await dispatch_world.fake_node(fake)
        task_id = await dispatch_world.create("echo once")
        dispatch_world.start(dispatch_world.dispatcher(owner="slow"))
        await eventually(lambda: len(fake.runs) == 1)
        # What a takeover writes: same attempt, another lease (this dispatcher's renewal now fails).
        async with dispatch_world.pool.connection() as conn:
            await conn.execute(
                "UPDATE jobs SET lease_id = gen_random_uuid(), lease_owner = 'survivor', "
                "lease_expires_at = now() + interval '1 hour' WHERE task_id = %s",
                (task_id,),
            )
        job = await dispatch_world.wait_job(task_id)
        await eventually(lambda: bool(fake.acks))  # sent once the answer is stored
    finally:
        fake.stop()

    assert (job["status"], job["attempt"]) == ("completed", 1)
    assert fake.cancels == []  # the run the survivor adopted was not stopped under it
    assert fake.acks == [str(job["id"])]


async def test_an_expired_lease_is_taken_over_when_it_ends_not_at_the_next_poll(
    dispatch_world: DispatchWorld, worker_factory: WorkerFactory
) -> None:
    worker, task_id, since, _ = await orphaned_job(dispatch_world, worker_factory, ONCE)
    # Its 1 s lease has not run out yet when the survivor starts; no poll comes for ten minutes.
    slow_poll = msgspec.structs.replace(FAST_DISPATCH, safety_poll_seconds=600.0)
    dispatch_world.start(dispatch_world.dispatcher(slow_poll, owner="survivor"))
    job = await dispatch_world.wait_job(task_id, within=60)
    assert (job["status"], job["attempt"]) == ("completed", 2)
    assert worker.containers_created_since(since) == 1
