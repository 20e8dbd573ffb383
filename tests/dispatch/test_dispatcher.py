"""The dispatcher against scripted Worker APIs over real HTTP, driven on the test's event loop.

Short leases and polls (``FAST_DISPATCH``) let lease expiry and requeueing play out in seconds.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from http import HTTPStatus
from typing import Any

import msgspec

from cynode.dispatch import claims, leases
from cynode.dispatch.runner import Dispatcher, NodesSource
from cynode.dispatch.worker_client import HttpWorkerClient, WorkerClients
from cynode.nodes.dispatchable import DispatchableNode
from cynode.tasks.repository import Connection
from tests.fixtures.tasks import FAST_DISPATCH, DispatchWorld, FakeWorker, echo_job, eventually


def refusing(status: int, detail: str) -> Any:
    def behaviour(_: dict[str, Any]) -> tuple[int, Any]:
        return status, {"type": "about:blank", "title": "refused", "status": status, "detail": detail}

    return behaviour


async def dispatch_one(world: DispatchWorld, fake: FakeWorker, prompt: str = "true") -> dict[str, Any]:
    """Run one commands task through a dispatcher to ``fake`` (started here) and return its job row."""
    fake.start()
    try:
        await world.fake_node(fake)
        world.start(world.dispatcher())
        return await world.wait_job(await world.create(prompt))
    finally:
        fake.stop()


async def test_job_runs_on_the_node_with_its_token_and_the_result_is_stored_as_an_object(
    dispatch_world: DispatchWorld,
) -> None:
    fake = FakeWorker()
    job = await dispatch_one(dispatch_world, fake, "echo hi")

    assert (job["status"], job["task_status"], job["attempt"]) == ("completed", "completed", 1)
    assert fake.paths == ["/v1/worker/jobs:run"]
    assert fake.authorizations == [f"Bearer {fake.token}"]
    [sent] = fake.runs
    assert sent["version"] == 1
    assert sent["attempt"] == 1
    assert sent["task_id"] == str(job["task_id"])
    assert sent["sandbox"]["command"] == ["sh", "-c", "echo hi"]
    assert job["result"]["stdout"] == f"ran {job['id']} attempt 1\n"
    assert job["result"]["exit_code"] == 0
    assert job["lease_id"] is None


async def test_worker_refusal_fails_the_job_with_a_dispatch_error_and_no_token(dispatch_world: DispatchWorld) -> None:
    fake = FakeWorker(behaviour=refusing(HTTPStatus.BAD_REQUEST, "image not allowed"))
    job = await dispatch_one(dispatch_world, fake)

    assert (job["status"], job["task_status"]) == ("failed", "failed")
    assert job["result"] == {
        "version": 1,
        "status": "failed",
        "exit_code": -1,
        "error": "worker api returned 400: image not allowed",
        "reason": "worker_refused",
    }
    assert job["reason"] == "worker_refused"
    assert fake.token is not None
    assert fake.token not in json.dumps(job["result"]) + str(job["error"])


async def test_unusable_answer_fails_the_job(dispatch_world: DispatchWorld) -> None:
    fake = FakeWorker(behaviour=lambda _: (HTTPStatus.OK, b'{"version": 1, "status": "completed"}'))
    job = await dispatch_one(dispatch_world, fake)

    assert job["status"] == "failed"
    assert job["result"]["error"].startswith("worker api returned an invalid response: Object missing required field")


async def wait_held(world: DispatchWorld, node_id: uuid.UUID) -> None:
    async with asyncio.timeout(30):
        while not await world.held(node_id):  # noqa: ASYNC110 - the state is in the database
            await asyncio.sleep(0.05)


async def test_unreachable_node_is_held_and_its_job_runs_once_on_another_node(dispatch_world: DispatchWorld) -> None:
    healthy = FakeWorker().start()
    # Bound but not listening: every connection is refused, and no other server can take the port.
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        host, port = closed_port.getsockname()
        try:
            gone_id = await dispatch_world.node("a-gone", f"http://{host}:{port}", "token-gone")
            dispatch_world.start(dispatch_world.dispatcher())
            task_id = await dispatch_world.create("true")
            await wait_held(dispatch_world, gone_id)
            job = await dispatch_world.job(task_id)
            assert (job["status"], job["attempt"]) == ("queued", 1)  # given back at once, not failed

            await dispatch_world.fake_node(healthy, "b-healthy")
            job = await dispatch_world.wait_job(task_id)
        finally:
            healthy.stop()

    assert (job["status"], job["reason"]) == ("completed", None)
    assert healthy.run_ids() == [str(job["id"])]  # run once, on the node that answers


async def test_held_node_gets_jobs_again_once_it_is_heard_from(dispatch_world: DispatchWorld) -> None:
    fake = FakeWorker(behaviour=refusing(HTTPStatus.SERVICE_UNAVAILABLE, "worker config not applied"))
    fake.start()
    try:
        node_id = await dispatch_world.fake_node(fake)
        dispatch_world.start(dispatch_world.dispatcher())
        task_id = await dispatch_world.create("true")
        await wait_held(dispatch_world, node_id)
        assert (await dispatch_world.job(task_id))["status"] == "queued"
        await asyncio.sleep(3 * FAST_DISPATCH.safety_poll_seconds)
        assert len(fake.runs) == 1  # held: not asked again while silent

        fake.behaviour = echo_job
        await dispatch_world.heartbeat(node_id)
        job = await dispatch_world.wait_job(task_id)
    finally:
        fake.stop()

    assert (job["status"], job["attempt"]) == ("completed", 2)
    assert not await dispatch_world.held(node_id)


async def test_busy_node_gives_the_job_back_without_using_up_its_attempts(dispatch_world: DispatchWorld) -> None:
    busy = FakeWorker(behaviour=refusing(HTTPStatus.TOO_MANY_REQUESTS, "all 2 sandbox slots are busy")).start()
    spare = FakeWorker().start()
    try:
        await dispatch_world.fake_node(busy, "a-busy")
        dispatch_world.start(dispatch_world.dispatcher())
        task_id = await dispatch_world.create("true")
        await eventually(lambda: len(busy.runs) == 1)
        await dispatch_world.fake_node(spare, "b-spare")
        job = await dispatch_world.wait_job(task_id)
    finally:
        busy.stop()
        spare.stop()

    assert (job["status"], job["attempt"], job["max_attempts"]) == ("completed", 2, 4)
    assert [run["attempt"] for run in busy.runs] == [1]
    assert [run["attempt"] for run in spare.runs] == [2]


async def test_two_dispatchers_run_every_job_exactly_once_within_node_capacity(dispatch_world: DispatchWorld) -> None:
    fakes = [FakeWorker(delay=0.05).start() for _ in range(2)]
    try:
        for index, fake in enumerate(fakes):
            await dispatch_world.fake_node(fake, f"fake-{index}", max_concurrency=2)
        task_ids = [await dispatch_world.create(f"echo {index}") for index in range(30)]
        dispatch_world.start(dispatch_world.dispatcher(owner="dispatcher-a"))
        dispatch_world.start(dispatch_world.dispatcher(owner="dispatcher-b"))
        jobs = [await dispatch_world.wait_job(task_id) for task_id in task_ids]
    finally:
        for fake in fakes:
            fake.stop()

    run_ids = [job_id for fake in fakes for job_id in fake.run_ids()]
    assert sorted(run_ids) == sorted(str(job["id"]) for job in jobs)
    assert {(job["status"], job["attempt"]) for job in jobs} == {("completed", 1)}
    assert all(fake.max_in_flight <= 2 for fake in fakes)


async def test_job_needing_inference_waits_for_a_node_running_inference(dispatch_world: DispatchWorld) -> None:
    plain = FakeWorker().start()
    inference = FakeWorker().start()
    try:
        await dispatch_world.fake_node(plain, "plain", inference_running=False)
        dispatch_world.start(dispatch_world.dispatcher())
        task_id = await dispatch_world.create("echo $INFERENCE_PROXY_URL", use_inference=True)
        await asyncio.sleep(3 * FAST_DISPATCH.safety_poll_seconds)
        assert (await dispatch_world.job(task_id))["status"] == "queued"

        await dispatch_world.fake_node(inference, "inference", inference_running=True)
        job = await dispatch_world.wait_job(task_id)
    finally:
        plain.stop()
        inference.stop()

    assert job["status"] == "completed"
    assert plain.runs == []
    assert [run["sandbox"]["use_inference"] for run in inference.runs] == [True]


async def test_expired_lease_is_requeued_and_the_stale_attempt_cannot_write(dispatch_world: DispatchWorld) -> None:
    fake = FakeWorker().start()
    try:
        await dispatch_world.fake_node(fake, "fake-lease")
        task_id = await dispatch_world.create("echo once")
        # An orchestrator claims the job and dies before its Worker API call.
        async with dispatch_world.pool.connection() as conn, conn.transaction():
            nodes = await NodesSource(dispatch_world.secret_box, 90)(conn)
            (stale,) = await claims.claim_jobs(conn, nodes, owner="dead-orchestrator", lease_seconds=1, limit=1)
        assert stale.attempt == 1
        assert (await dispatch_world.job(task_id))["task_status"] == "running"

        dispatch_world.start(dispatch_world.dispatcher(owner="survivor"))
        job = await dispatch_world.wait_job(task_id)
        async with dispatch_world.pool.connection() as conn, conn.transaction():
            stale_written = await claims.finish_attempt(
                conn, stale.job_id, stale.attempt, status="failed", result={"stdout": "stale"}, reason=None
            )
    finally:
        fake.stop()

    assert stale_written is False
    assert fake.cancels == []  # its call was never sent, so nothing runs on the node
    assert [run["attempt"] for run in fake.runs] == [2]
    assert (job["status"], job["task_status"], job["attempt"]) == ("completed", "completed", 2)
    assert job["result"]["stdout"] == f"ran {stale.job_id} attempt 2\n"
    assert job["lease_owner"] is None


async def test_expired_lease_on_the_last_attempt_fails_the_job(dispatch_world: DispatchWorld) -> None:
    fake = FakeWorker().start()
    try:
        await dispatch_world.fake_node(fake)
        task_id = await dispatch_world.create("echo once")
        async with dispatch_world.pool.connection() as conn, conn.transaction():
            await conn.execute("UPDATE jobs SET max_attempts = 1 WHERE task_id = %s", (task_id,))
            nodes = await NodesSource(dispatch_world.secret_box, 90)(conn)
            assert await claims.claim_jobs(conn, nodes, owner="dead-orchestrator", lease_seconds=0.5, limit=1)
        dispatch_world.start(dispatch_world.dispatcher())
        job = await dispatch_world.wait_job(task_id)
    finally:
        fake.stop()

    assert (job["status"], job["task_status"]) == ("failed", "failed")
    assert job["result"]["error"] == "lease of attempt 1 expired"
    assert fake.runs == []


async def test_cancel_reaches_the_node_and_the_late_result_is_discarded(dispatch_world: DispatchWorld) -> None:
    fake = FakeWorker(delay=2.0).start()
    try:
        await dispatch_world.fake_node(fake)
        dispatch_world.start(dispatch_world.dispatcher())
        task_id = await dispatch_world.create("sleep 300")
        await dispatch_world.wait_job(task_id, {"running"})
        await eventually(lambda: bool(fake.runs))

        canceled = await dispatch_world.tasks.cancel(dispatch_world.user, str(task_id))
        assert (canceled.canceled, canceled.status) == (True, "canceled")
        await eventually(lambda: bool(fake.cancels))
        await asyncio.sleep(2.5)  # the worker's (late) answer has arrived by now
        job = await dispatch_world.job(task_id)
    finally:
        fake.stop()

    # Sent on the cancel notification, and again when the lease renewal finds the job gone.
    assert set(fake.cancels) == {str(job["id"])}
    assert (job["status"], job["task_status"], job["result"]) == ("canceled", "canceled", None)


async def test_missed_notifications_are_caught_by_the_safety_poll(dispatch_world: DispatchWorld) -> None:
    fake = FakeWorker(behaviour=echo_job).start()
    try:
        await dispatch_world.fake_node(fake)
        dispatcher = dispatch_world.dispatcher()
        dispatch_world.start(dispatcher)
        await asyncio.sleep(0.3)
        # A job queued without any notification (as if the listener was reconnecting).
        async with dispatch_world.pool.connection() as conn:
            await conn.execute("ALTER TABLE jobs DISABLE TRIGGER jobs_queued_notify")
            task_id = await dispatch_world.create("true")
            await conn.execute("ALTER TABLE jobs ENABLE TRIGGER jobs_queued_notify")
        job = await dispatch_world.wait_job(task_id, within=5)
    finally:
        fake.stop()

    assert job["status"] == "completed"


class CountedNodes(NodesSource):
    """The real nodes source, counting the dispatcher's passes (each reads the nodes once)."""

    passes = 0

    async def __call__(self, conn: Connection) -> list[DispatchableNode]:
        self.passes += 1
        return await super().__call__(conn)


async def test_an_idle_dispatcher_waits_for_a_notice_or_its_safety_poll(dispatch_world: DispatchWorld) -> None:
    # No job runs, so no lease can run out: after the first pass and the one once its listener is
    # up (for whatever was queued meanwhile), only a notice or the 5 s poll may start another.
    settings = msgspec.structs.replace(FAST_DISPATCH, safety_poll_seconds=5.0)
    nodes = CountedNodes(dispatch_world.secret_box, 90)
    clients = WorkerClients(HttpWorkerClient(dispatch_world.http, settings), None)
    dispatch_world.start(Dispatcher(dispatch_world.pool, clients, nodes, settings))
    await asyncio.sleep(1.5)
    assert nodes.passes == 2
    async with dispatch_world.pool.connection() as conn:
        assert await leases.seconds_to_next_expiry(conn) is None


async def test_the_lease_probe_says_when_the_first_running_lease_runs_out(dispatch_world: DispatchWorld) -> None:
    first, second = await dispatch_world.create("true"), await dispatch_world.create("true")
    async with dispatch_world.pool.connection() as conn:
        await conn.execute(
            "UPDATE jobs SET status = 'running', lease_id = gen_random_uuid(), lease_expires_at = now() + %s::interval"
            " WHERE task_id = %s",
            ("30 seconds", first),
        )
        assert 25 < (await leases.seconds_to_next_expiry(conn) or 0) <= 30
        await conn.execute(
            "UPDATE jobs SET status = 'running', lease_id = gen_random_uuid(), lease_expires_at = now() - %s::interval"
            " WHERE task_id = %s",
            ("1 second", second),
        )
        assert await leases.seconds_to_next_expiry(conn) == 0


async def test_a_freed_slot_is_filled_on_the_databases_notice_without_waiting_for_the_poll(
    dispatch_world: DispatchWorld,
) -> None:
    fake = FakeWorker(delay=0.2).start()
    try:
        await dispatch_world.fake_node(fake, max_concurrency=1)
        first, second = await dispatch_world.create("echo 1"), await dispatch_world.create("echo 2")
        dispatch_world.start(
            dispatch_world.dispatcher(msgspec.structs.replace(FAST_DISPATCH, safety_poll_seconds=30.0))
        )
        jobs = [await dispatch_world.wait_job(task_id, within=5) for task_id in (first, second)]
    finally:
        fake.stop()

    assert [job["status"] for job in jobs] == ["completed", "completed"]
    assert fake.max_in_flight == 1
    # The second started as the first ended, not a safety poll (30 s) later.
    assert (jobs[1]["started_at"] - jobs[0]["ended_at"]).total_seconds() < 2
