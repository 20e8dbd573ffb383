"""Who in this process waits for a task to end, and waking them the moment it does.

Owns the waiters of one process (long-polls and followed log streams), keyed by task id, and the
process's one connection listening on ``cynode_task_ended`` (sent by the trigger of
``sql/0012_task_endings.sql`` whenever a task's status becomes terminal, whoever wrote it). A
notice wakes that task's waiters, which then read the task again; nothing else is trusted to
the notice. While the listener is down nothing can be heard, so waiters fall back to re-reading
every :data:`POLL_SECONDS`; while it is up they still re-read every :data:`SAFETY_RECHECK_SECONDS`
in case a notice is lost. Both changes wake every waiter, so it re-reads and picks the new pace.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import psycopg

from cynode.db import notices

CHANNEL: Final = "cynode_task_ended"
POLL_SECONDS: Final = 0.2
"""How often a waiter re-reads its task while no notice can be heard."""
SAFETY_RECHECK_SECONDS: Final = 2.0
"""How often a waiter re-reads its task while notices are heard, should one be lost."""


class TaskEndings:
    def __init__(self) -> None:
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._listening = False

    @property
    def listening(self) -> bool:
        return self._listening

    @property
    def recheck_seconds(self) -> float:
        """How long a waiter may sleep before it reads its task again, unless woken."""
        return SAFETY_RECHECK_SECONDS if self._listening else POLL_SECONDS

    @contextmanager
    def waiter(self, task_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set when ``task_id`` may have ended; register it BEFORE reading the task, then
        clear it before each read, so an ending between the read and the wait is never missed."""
        event = asyncio.Event()
        self._waiters.setdefault(task_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._waiters[task_id]
            waiting.discard(event)
            if not waiting:
                del self._waiters[task_id]

    async def listen(self, conninfo: str) -> None:
        """Hear task endings until cancelled (one per process that serves the task API)."""
        await notices.listen(
            conninfo,
            [CHANNEL],
            self._on_notice,
            on_up=lambda: self._switch(listening=True),
            on_down=lambda: self._switch(listening=False),
            failure_event="task_endings_listen_failed",
        )

    def _on_notice(self, notice: psycopg.Notify) -> None:
        try:
            task_id = uuid.UUID(notice.payload)
        except ValueError:
            return
        for event in self._waiters.get(task_id, ()):
            event.set()

    def _switch(self, *, listening: bool) -> None:
        # Up: whatever ended while nobody listened must be read. Down: waiters must poll from now on.
        self._listening = listening
        for waiting in self._waiters.values():
            for event in waiting:
                event.set()
