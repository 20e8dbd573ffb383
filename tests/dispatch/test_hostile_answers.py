"""The dispatcher against Worker APIs that answer badly: NUL bytes, unstorable or oversized
answers, a node that accepts connections and never answers, and a dispatcher that dies after
sending a run. Each job runs exactly once and ends with a machine-readable reason.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from cynode.crypto import SecretBox
from cynode.dispatch import claims
from cynode.dispatch.claims import ClaimedJob
from cynode.dispatch.runner import NodesSource
from tests.fixtures.tasks import FAST_DISPATCH, DispatchWorld, FakeWorker, completed_response, eventually


def answering(**fields: Any) -> Any:
    def behaviour(body: dict[str, Any]) -> tuple[int, Any]:
        return HTTPStatus.OK, {**completed_response(body), **fields}

    return behaviour


async def run_once(world: DispatchWorld, fake: FakeWorker) -> dict[str, Any]:
    fake.start()
    try:
        await world.fake_node(fake)
        world.start(world.dispatcher())
        job = await world.wait_job(await world.create("cat /bin/true"))
        # A wrongly requeued job would be claimed again within a couple of polls.
        await asyncio.sleep(3 * FAST_DISPATCH.safety_poll_seconds)
    finally:
        fake.stop()
    assert len(fake.runs) == 1, "the job ran more than once"
    return job


async def test_nul_bytes_a_node_sends_are_stored_as_replacement_characters(dispatch_world: DispatchWorld) -> None:
    job = await run_once(dispatch_world, FakeWorker(behaviour=answering(stdout="a\x00b", stderr="ok")))

    assert (job["status"], job["reason"]) == ("completed", None)
    assert job["result"]["stdout"] == "a\ufffdb"
    assert job["result"]["replaced"] == {"stdout": True, "stderr": False}


async def test_an_answer_that_cannot_be_stored_fails_once_as_result_not_stored(dispatch_world: DispatchWorld) -> None:
    # PostgreSQL's jsonb cannot hold NUL anywhere; outside stdout/stderr nothing replaces it.
    job = await run_once(dispatch_world, FakeWorker(behaviour=answering(artifacts=[{"name": "x\x00y"}])))

    assert (job["status"], job["task_status"], job["reason"]) == ("failed", "failed", "result_not_stored")
    assert job["result"]["reason"] == "result_not_stored"
    assert job["result"]["error"].startswith("the node's answer could not be stored")


async def test_an_oversized_answer_is_cut_off_and_fails_without_a_rerun(dispatch_world: DispatchWorld) -> None:
    huge = "x" * (FAST_DISPATCH.worker_max_response_bytes + 1)
    job = await run_once(dispatch_world, FakeWorker(behaviour=answering(stdout=huge)))

    assert (job["status"], job["reason"]) == ("failed", "invalid_response")
    assert "larger than" in job["result"]["error"]


@pytest.fixture
def silent_node() -> Iterator[str]:
    """A port that accepts TCP connections (the kernel's backlog) and never answers anything."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        host, port = listener.getsockname()
        yield f"http://{host}:{port}"


async def test_a_node_that_never_answers_loses_its_job_and_others_keep_working(
    dispatch_world: DispatchWorld, silent_node: str
) -> None:
    healthy = FakeWorker().start()
    try:
        silent_id = await dispatch_world.node("a-silent", silent_node, "token-silent", max_concurrency=1)
        dispatch_world.start(dispatch_world.dispatcher())
        stuck = await dispatch_world.create("echo stuck")
        await dispatch_world.wait_job(stuck, {"running"})
        await dispatch_world.fake_node(healthy, "b-healthy")
        others = [await dispatch_world.create(f"echo {index}") for index in range(5)]
        finished = [await dispatch_world.wait_job(task_id) for task_id in others]
        lost = await dispatch_world.wait_job(stuck)
    finally:
        healthy.stop()

    assert {job["status"] for job in finished} == {"completed"}
    assert sorted(healthy.run_ids()) == sorted(str(job["id"]) for job in finished)
    assert (lost["status"], lost["reason"], lost["attempt"]) == ("failed", "node_lost", 1)
    assert await dispatch_world.held(silent_id)


async def sent_by_a_dead_orchestrator(world: DispatchWorld) -> ClaimedJob:
    """The oldest queued job, claimed and sent by an orchestrator that then died (lease of 1 s)."""
    async with world.pool.connection() as conn, conn.transaction():
        nodes = await NodesSource(world.secret_box, 90)(conn)
        (sent,) = await claims.claim_jobs(conn, nodes, owner="dead-orchestrator", lease_seconds=1, limit=1)
        assert await claims.mark_run_sent(conn, sent)
    return sent


async def test_a_lease_lost_after_the_run_was_sent_fails_the_job_instead_of_rerunning_it(
    dispatch_world: DispatchWorld,
) -> None:
    fake = FakeWorker().start()
    try:
        await dispatch_world.fake_node(fake)
        task_id = await dispatch_world.create("echo once")
        sent = await sent_by_a_dead_orchestrator(dispatch_world)
        dispatch_world.start(dispatch_world.dispatcher(owner="survivor"))
        job = await dispatch_world.wait_job(task_id)
        await eventually(lambda: bool(fake.cancels))
    finally:
        fake.stop()

    assert (job["status"], job["task_status"], job["reason"]) == ("failed", "failed", "lease_expired")
    assert fake.runs == []  # never sent a second time
    assert fake.cancels == [str(sent.job_id)]  # the possibly running attempt is stopped


async def test_a_node_token_that_no_longer_opens_does_not_stop_reaping_or_dispatching(
    dispatch_world: DispatchWorld,
) -> None:
    healthy = FakeWorker().start()
    try:
        # Sealed under another key (e.g. the key file was replaced): opening it raises.
        stranger = DispatchWorld(
            dispatch_world.pool,
            SecretBox(os.urandom(32)),
            dispatch_world.user,
            dispatch_world.tasks,
            dispatch_world.http,
        )
        await stranger.node("a-sealed-elsewhere", "http://127.0.0.1:9", "token")
        task_id = await dispatch_world.create("echo once")
        await sent_by_a_dead_orchestrator(dispatch_world)
        dispatch_world.start(dispatch_world.dispatcher(owner="survivor"))
        reaped = await dispatch_world.wait_job(task_id)
        await dispatch_world.fake_node(healthy, "b-healthy")
        later = await dispatch_world.wait_job(await dispatch_world.create("echo later"))
    finally:
        healthy.stop()

    assert (reaped["status"], reaped["reason"]) == ("failed", "lease_expired")
    assert later["status"] == "completed"
