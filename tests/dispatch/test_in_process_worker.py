"""Dispatch to this process's own node: the same WorkerService calls as the Worker API, no HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cynode.context import LocalWorker
from cynode.sandbox import PodmanService
from cynode.worker import WorkerService
from tests.fixtures.podman import containers_of, remove_containers_of, sandbox_settings
from tests.fixtures.tasks import DispatchWorld, eventually

SLUG = "local-node"
TOKEN = "local-worker-token"
# Nothing listens here: a job that reached this URL would fail, so success proves the in-process path.
UNREACHABLE_URL = "http://127.0.0.1:9"


OWNER = f"test-{uuid.uuid4().hex[:12]}"
"""Container label owner of this module's workers."""


@pytest.fixture
async def local_worker(podman_service: PodmanService, sandbox_image: str, tmp_path: Path) -> AsyncIterator[LocalWorker]:
    owner = OWNER
    settings = sandbox_settings(tmp_path / "mounts", podman_service.url)
    service = WorkerService.from_settings(settings, state_dir=tmp_path / "state", owner=owner)
    await service.start()
    service.apply_config(bearer_token=TOKEN)
    yield LocalWorker(SLUG, service)
    await service.stop()
    remove_containers_of(podman_service.url, owner)


async def test_job_for_the_local_node_runs_in_process(dispatch_world: DispatchWorld, local_worker: LocalWorker) -> None:
    await dispatch_world.node(SLUG, UNREACHABLE_URL, TOKEN)
    dispatch_world.start(dispatch_world.dispatcher(local=local_worker))
    task_id = await dispatch_world.create("echo hello")

    job = await dispatch_world.wait_job(task_id)

    assert (job["status"], job["task_status"], job["attempt"]) == ("completed", "completed", 1)
    assert job["result"]["stdout"] == "hello\n"
    assert job["result"]["exit_code"] == 0


async def test_in_process_call_checks_the_node_token(dispatch_world: DispatchWorld, local_worker: LocalWorker) -> None:
    await dispatch_world.node(SLUG, UNREACHABLE_URL, "a-token-the-worker-never-got")
    dispatch_world.start(dispatch_world.dispatcher(local=local_worker))
    task_id = await dispatch_world.create("echo hello")

    job = await dispatch_world.wait_job(task_id)

    assert job["status"] == "failed"
    assert job["result"]["error"] == "worker api returned 401: Invalid or missing bearer token"


async def test_cancel_kills_the_in_process_container(
    dispatch_world: DispatchWorld, local_worker: LocalWorker, podman_service: PodmanService
) -> None:
    await dispatch_world.node(SLUG, UNREACHABLE_URL, TOKEN)
    dispatch_world.start(dispatch_world.dispatcher(local=local_worker))
    task_id = await dispatch_world.create("sleep 300")
    await dispatch_world.wait_job(task_id, {"running"})
    await eventually(lambda: any(c.attrs["State"] == "running" for c in containers_of(podman_service.url, OWNER)), 60)

    canceled = await dispatch_world.tasks.cancel(dispatch_world.user, str(task_id))

    assert canceled.canceled is True
    await eventually(lambda: not containers_of(podman_service.url, OWNER), 30)
    job = await dispatch_world.job(task_id)
    assert (job["status"], job["task_status"], job["result"]) == ("canceled", "canceled", None)


async def test_stopping_the_dispatcher_does_not_wait_for_running_jobs(
    dispatch_world: DispatchWorld, local_worker: LocalWorker, podman_service: PodmanService
) -> None:
    await dispatch_world.node(SLUG, UNREACHABLE_URL, TOKEN)
    running = dispatch_world.start(dispatch_world.dispatcher(local=local_worker))
    task_id = await dispatch_world.create("sleep 300")
    await eventually(lambda: any(c.attrs["State"] == "running" for c in containers_of(podman_service.url, OWNER)), 60)

    running.cancel()
    async with asyncio.timeout(5):
        await asyncio.gather(running, return_exceptions=True)

    job = await dispatch_world.job(task_id)
    assert job["status"] == "running"  # its lease expires, then the next dispatcher requeues it
