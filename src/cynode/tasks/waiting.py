"""Long-poll and follow on the task API: ``?wait=N`` on a task or its result, ``/logs?follow=1``.

A waiting request answers as soon as the task is terminal, or after ``wait`` seconds with its
current state. It sleeps on this process's :class:`~cynode.tasks.endings.TaskEndings`, which wakes
it the moment the task ends (a PostgreSQL notice, so whichever process ended it), and re-reads the
task (one indexed read) on each wake-up and at the pace the endings set: slowly while notices are
heard, every 0.2 s while they are not.

``follow=1`` streams NDJSON events: ``{"event": "status", "status": ...}`` whenever the status
changes, ``stdout`` and ``stderr`` events (each with ``data``) as the running job writes them (read
from its node every :data:`FOLLOW_READ_SECONDS`, :mod:`cynode.tasks.live_output`), then whatever of
its output the follower has not seen yet once the task is terminal (at once, woken by its ending),
and ``{"event": "end", "status": ...}`` last. Output of a task that already finished arrives whole,
after its status.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Final, Protocol, TypeVar

import msgspec

from cynode.contracts.job_output import OUTPUT_STREAMS
from cynode.contracts.tasks import TERMINAL_TASK_STATUSES, LogStream, TaskStatus
from cynode.http.problems import ProblemError
from cynode.identity.guard import CurrentUser
from cynode.tasks.endings import TaskEndings
from cynode.tasks.live_output import FollowedOutput, OutputReader
from cynode.tasks.service import TaskService

FOLLOW_READ_SECONDS: Final = 0.2
"""How often a follower reads a running job's output from its node."""
MAX_WAIT_SECONDS: Final = 60
MAX_FOLLOW_SECONDS: Final = 3600
"""A followed log stream ends after this long even if the task has not (the client may follow again)."""
FOLLOW_MEDIA_TYPE: Final = "application/x-ndjson"


class TaskSnapshot(Protocol):
    """What a long-poll reads: a task or its result."""

    @property
    def task_id(self) -> uuid.UUID: ...

    @property
    def status(self) -> TaskStatus: ...


Snapshot = TypeVar("Snapshot", bound=TaskSnapshot)


def parse_wait(value: str | None) -> float:
    """Seconds to wait (0 when absent); a 400 problem unless a number from 0 to MAX_WAIT_SECONDS."""
    if value is None:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_WAIT_SECONDS:  # also refuses nan
        raise ProblemError(HTTPStatus.BAD_REQUEST, f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS}")
    return seconds


def parse_follow(value: str | None) -> bool:
    if value in (None, "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise ProblemError(HTTPStatus.BAD_REQUEST, "follow must be 1 or 0")


async def wait_for_terminal(
    read: Callable[[], Awaitable[Snapshot]], endings: TaskEndings, wait_seconds: float, reference: str
) -> Snapshot:
    """``read()`` (the task ``reference`` names) until its status is terminal or ``wait_seconds``
    have passed, again each time the task may have ended.

    The waiter is in place before the read that decides to wait. A reference that is an id needs
    no read before that; a name's id is known only after one.
    """
    deadline = time.monotonic() + wait_seconds
    task_id = _as_id(reference)
    if task_id is None or wait_seconds <= 0:
        snapshot = await read()
        if snapshot.status in TERMINAL_TASK_STATUSES or wait_seconds <= 0:
            return snapshot
        task_id = snapshot.task_id
    with endings.waiter(task_id) as ended:
        while True:
            ended.clear()
            snapshot = await read()
            remaining = deadline - time.monotonic()
            if snapshot.status in TERMINAL_TASK_STATUSES or remaining <= 0:
                return snapshot
            if snapshot.task_id != task_id:
                break  # a name that looks like an id: wait under the id of the task it names
            await _until_set(ended, min(endings.recheck_seconds, remaining))
    return await wait_for_terminal(read, endings, remaining, str(snapshot.task_id))


def _as_id(reference: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(reference)
    except ValueError:
        return None


async def _until_set(event: asyncio.Event, seconds: float) -> None:
    # asyncio.timeout, not wait_for: on 3.11 wait_for can lose a cancel (cynode.cancellation).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def _event(**fields: str) -> bytes:
    return msgspec.json.encode(fields) + b"\n"


async def follow_logs(
    service: TaskService,
    endings: TaskEndings,
    reader: OutputReader,
    user: CurrentUser,
    reference: str,
    stream: LogStream,
) -> AsyncIterator[bytes]:
    """The NDJSON event stream of ``/logs?follow=1``; the task's existence is checked by the caller."""
    last: TaskStatus | None = None
    deadline = time.monotonic() + MAX_FOLLOW_SECONDS
    followed = FollowedOutput(tuple(name for name in OUTPUT_STREAMS if stream in ("all", name)))
    async with reader:
        task = await service.get(user, reference)
        # An ending before the waiter is in place is seen by the next read, one FOLLOW_READ_SECONDS on.
        with endings.waiter(task.id) as ended:
            while True:
                if task.status != last:
                    last = task.status
                    yield _event(event="status", status=task.status)
                if task.status in TERMINAL_TASK_STATUSES:
                    break
                if time.monotonic() >= deadline:
                    yield _event(event="end", status=task.status)
                    return
                if task.status == "running":
                    for name, data in await followed.fresh(reader, task.id):
                        yield _event(event=name, data=data)
                await _until_set(ended, FOLLOW_READ_SECONDS)
                ended.clear()
                task = await service.get(user, reference)
    logs = await service.logs(user, reference, stream)
    for name, text in (("stdout", logs.stdout), ("stderr", logs.stderr)):
        rest = followed.rest(name, text)
        if rest:
            yield _event(event=name, data=rest)
    yield _event(event="end", status=last)
