"""Long-poll and follow on the task API: ``?wait=N`` on a task or its result, ``/logs?follow=1``.

A waiting request re-reads the task every :data:`POLL_SECONDS` (one indexed primary-key read) and
answers as soon as the task is terminal, or after ``wait`` seconds with its current state. Polling
rather than LISTEN keeps no connection per waiter and works across gateway processes; the poll
interval bounds how late an answer can be (well within 0.5 s of the task ending).

``follow=1`` streams NDJSON events: ``{"event": "status", "status": ...}`` whenever the status
changes, ``stdout`` and ``stderr`` events (each with ``data``) as the running job writes them (read
from its node each poll, :mod:`cynode.tasks.live_output`), then whatever of its output the follower
has not seen yet once the task is terminal, and ``{"event": "end", "status": ...}`` last. Output of
a task that already finished arrives whole, after its status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Final, TypeVar

import msgspec

from cynode.contracts.job_output import OUTPUT_STREAMS
from cynode.contracts.tasks import TERMINAL_TASK_STATUSES, LogStream, TaskStatus
from cynode.http.problems import ProblemError
from cynode.identity.guard import CurrentUser
from cynode.tasks.live_output import FollowedOutput, OutputReader
from cynode.tasks.service import TaskService

POLL_SECONDS: Final = 0.2
MAX_WAIT_SECONDS: Final = 60
MAX_FOLLOW_SECONDS: Final = 3600
"""A followed log stream ends after this long even if the task has not (the client may follow again)."""
FOLLOW_MEDIA_TYPE: Final = "application/x-ndjson"

Snapshot = TypeVar("Snapshot", bound=msgspec.Struct)


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
    read: Callable[[], Awaitable[Snapshot]], status_of: Callable[[Snapshot], TaskStatus], wait_seconds: float
) -> Snapshot:
    """``read()`` again and again until its status is terminal or ``wait_seconds`` have passed."""
    deadline = time.monotonic() + wait_seconds
    while True:
        snapshot = await read()
        remaining = deadline - time.monotonic()
        if status_of(snapshot) in TERMINAL_TASK_STATUSES or remaining <= 0:
            return snapshot
        await asyncio.sleep(min(POLL_SECONDS, remaining))


def _event(**fields: str) -> bytes:
    return msgspec.json.encode(fields) + b"\n"


async def follow_logs(
    service: TaskService, reader: OutputReader, user: CurrentUser, reference: str, stream: LogStream
) -> AsyncIterator[bytes]:
    """The NDJSON event stream of ``/logs?follow=1``; the task's existence is checked by the caller."""
    last: TaskStatus | None = None
    deadline = time.monotonic() + MAX_FOLLOW_SECONDS
    followed = FollowedOutput(tuple(name for name in OUTPUT_STREAMS if stream in ("all", name)))
    async with reader:
        while True:
            task = await service.get(user, reference)
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
            await asyncio.sleep(POLL_SECONDS)
    logs = await service.logs(user, reference, stream)
    for name, text in (("stdout", logs.stdout), ("stderr", logs.stderr)):
        rest = followed.rest(name, text)
        if rest:
            yield _event(event=name, data=rest)
    yield _event(event="end", status=last)
