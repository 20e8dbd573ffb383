"""Stopping asyncio tasks for certain.

On Python 3.11, ``asyncio.wait_for`` drops a cancel that lands in the same loop step as the result
it was waiting for, and the task carries on as if never cancelled. psycopg_pool waits for a free
connection that way, so a background loop stopped while the pool is still filling can sleep on for
an hour and hold up shutdown. Stopping therefore cancels again, after a grace for the task's own
clean-up, until every task has ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Final, TypeVar

CLEAN_UP_GRACE_SECONDS: Final = 10.0

log = logging.getLogger(__name__)

TaskT = TypeVar("TaskT", bound=asyncio.Future[Any])


async def cancel_until_done(
    tasks: Iterable[TaskT],
    *,
    grace: float = CLEAN_UP_GRACE_SECONDS,
    give_up_after: float | None = None,
) -> set[TaskT]:
    """Cancel ``tasks`` and wait for them to end, cancelling again every ``grace`` seconds.

    Returns the tasks still running after ``give_up_after`` seconds (never any without it).
    """
    loop = asyncio.get_running_loop()
    deadline = None if give_up_after is None else loop.time() + give_up_after
    pending = {task for task in tasks if not task.done()}
    rounds = 0
    while pending:
        wait = grace if deadline is None else min(grace, deadline - loop.time())
        if wait <= 0:
            break
        if rounds:
            log.warning("tasks_cancelled_again", extra={"tasks": sorted(map(_name, pending)), "round": rounds + 1})
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=wait)
        rounds += 1
    return pending


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
