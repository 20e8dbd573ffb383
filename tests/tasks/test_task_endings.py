"""A long-poll is woken by its own task's ending notice, and polls again while notices cannot be heard.

Real gateway, dispatcher and PostgreSQL (the trigger of ``sql/0012_task_endings.sql``). The safety
re-read is set far beyond every wait here, so a waiter that answers was woken, not timed out; the
task service's reads are counted per task to show that nothing else re-read meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest

from cynode.db import notices
from cynode.tasks import endings
from cynode.tasks.service import TaskService
from tests.fixtures.stack import RunningStack
from tests.fixtures.tasks import FakeWorker, TaskApi, echo_job, fake_node

WAIT_SECONDS = 30
"""Every long-poll here asks for this long; none may take it."""
NEVER_SECONDS = 600.0
EVENTUALLY_SECONDS = 20


class Reads:
    """How often the task service read each task (by the reference it was given)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[str] = Counter()
        self._changed = threading.Condition()
        for method in ("get", "result"):
            monkeypatch.setattr(TaskService, method, self._counting(getattr(TaskService, method)))

    def _counting(self, read: Callable[..., Any]) -> Callable[..., Any]:
        async def counted(service: TaskService, user: Any, reference: str, *args: Any) -> Any:
            answer = await read(service, user, reference, *args)
            with self._changed:
                self.counts[reference] += 1
                self._changed.notify_all()
            return answer

        return counted

    def wait_for(self, reference: str, count: int) -> None:
        with self._changed:
            reached = self._changed.wait_for(lambda: self.counts[reference] >= count, EVENTUALLY_SECONDS)
        assert reached, f"{reference} read {self.counts[reference]} times, expected {count}"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    return Reads(monkeypatch)


@pytest.fixture
def listening(task_stack: RunningStack, monkeypatch: pytest.MonkeyPatch) -> RunningStack:
    """The task stack with its endings listener up and no safety re-read within any wait."""
    monkeypatch.setattr(endings, "SAFETY_RECHECK_SECONDS", NEVER_SECONDS)
    task_stack.run(_until(lambda: task_stack.stack.task_endings.listening))
    return task_stack


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(EVENTUALLY_SECONDS):
        while not condition():  # noqa: ASYNC110 - the listener task sets the flag
            await asyncio.sleep(0.01)


@pytest.fixture
def requests() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


def _long_poll(requests: ThreadPoolExecutor, tasks: TaskApi, path: str) -> Future[httpx.Response]:
    return requests.submit(tasks.get, f"{path}?wait={WAIT_SECONDS}")


def _answer(pending: Future[httpx.Response]) -> dict[str, Any]:
    response = pending.result(timeout=WAIT_SECONDS / 2)  # woken long before its wait ran out
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("resource", ["", "/result"])
def test_a_long_poll_answers_when_the_dispatcher_stores_the_result(
    listening: RunningStack,
    admin_tasks: TaskApi,
    fake_worker_factory: Callable[..., FakeWorker],
    reads: Reads,
    requests: ThreadPoolExecutor,
    resource: str,
) -> None:
    release = threading.Event()

    def gated(body: dict[str, Any]) -> tuple[int, Any]:
        release.wait(EVENTUALLY_SECONDS)
        return echo_job(body)

    fake = fake_worker_factory(behaviour=gated)
    fake_node(listening, fake)
    task_id = admin_tasks.create("echo gated", input_mode="commands")["id"]
    pending = _long_poll(requests, admin_tasks, f"/v1/tasks/{task_id}{resource}")
    reads.wait_for(task_id, 1)  # read with its waiter in place
    assert not pending.done()
    release.set()

    assert _answer(pending)["status"] == "completed"
    assert reads.counts[task_id] == 2  # one more read, on the notice, and no periodic re-reads


def test_another_tasks_ending_does_not_wake_a_waiter(
    listening: RunningStack, admin_tasks: TaskApi, reads: Reads, requests: ThreadPoolExecutor
) -> None:
    # No node: both tasks stay queued until canceled.
    waiting_id = admin_tasks.create("echo waits", input_mode="commands")["id"]
    other_id = admin_tasks.create("echo ends", input_mode="commands")["id"]
    waiting = _long_poll(requests, admin_tasks, f"/v1/tasks/{waiting_id}")
    other = _long_poll(requests, admin_tasks, f"/v1/tasks/{other_id}")
    reads.wait_for(waiting_id, 1)
    reads.wait_for(other_id, 1)

    admin_tasks.cancel(other_id)
    assert _answer(other)["status"] == "canceled"  # its notice has been heard and handled
    assert reads.counts[waiting_id] == 1
    assert not waiting.done()

    admin_tasks.cancel(waiting_id)
    assert _answer(waiting)["status"] == "canceled"
    assert reads.counts[waiting_id] == 2


@pytest.mark.parametrize("name", ["waits-by-name", str(uuid.uuid4())], ids=["name", "name-like-an-id"])
def test_a_long_poll_by_name_is_woken_by_its_tasks_ending(
    listening: RunningStack, admin_tasks: TaskApi, reads: Reads, requests: ThreadPoolExecutor, name: str
) -> None:
    created = admin_tasks.create("echo waits", input_mode="commands", task_name=name)
    assert created["task_name"] == name != created["id"]
    pending = _long_poll(requests, admin_tasks, f"/v1/tasks/{name}")
    reads.wait_for(name, 2)  # the first read finds the task's id, the next one has its waiter in place

    admin_tasks.cancel(created["id"])
    assert _answer(pending)["status"] == "canceled"
    assert reads.counts[name] == 3


def test_a_waiter_polls_while_the_listener_is_down(
    listening: RunningStack,
    admin_tasks: TaskApi,
    reads: Reads,
    requests: ThreadPoolExecutor,
    fresh_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(notices, "RETRY_SECONDS", NEVER_SECONDS)  # stays down once it drops
    task_id = admin_tasks.create("echo waits", input_mode="commands")["id"]
    pending = _long_poll(requests, admin_tasks, f"/v1/tasks/{task_id}")
    reads.wait_for(task_id, 1)

    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            (f"LISTEN {endings.CHANNEL}",),
        ).fetchall()
    assert killed == [(True,)]
    endings_of_stack = listening.stack.task_endings
    listening.run(_until(lambda: not endings_of_stack.listening))

    admin_tasks.cancel(task_id)  # its notice reaches nobody
    assert _answer(pending)["status"] == "canceled"
