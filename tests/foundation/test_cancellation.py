"""Stopping tasks for certain, even one that lost its cancel the way Python 3.11's wait_for loses it."""

from __future__ import annotations

import asyncio

from cynode.cancellation import cancel_until_done


async def test_a_task_that_swallowed_its_cancel_is_cancelled_again() -> None:
    swallowed = asyncio.Event()

    async def loses_the_first_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()  # what a lost cancel looks like from outside: the task just carries on
        await asyncio.sleep(3600)

    task = asyncio.create_task(loses_the_first_cancel())
    await asyncio.sleep(0)
    assert await cancel_until_done([task], grace=0.05) == set()
    assert swallowed.is_set()
    assert task.cancelled()


async def test_clean_up_within_the_grace_is_not_interrupted() -> None:
    cleaned = asyncio.Event()

    async def cleans_up() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.05)
            cleaned.set()

    task = asyncio.create_task(cleans_up())
    await asyncio.sleep(0)
    await cancel_until_done([task], grace=30)
    assert cleaned.is_set()


async def test_giving_up_returns_what_is_still_running() -> None:
    refusing = True

    async def refuses_to_stop() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not refusing:
                    raise

    stubborn = asyncio.create_task(refuses_to_stop())
    polite = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    assert await cancel_until_done([stubborn, polite], grace=0.05, give_up_after=0.2) == {stubborn}
    assert polite.cancelled()
    refusing = False
    assert await cancel_until_done([stubborn]) == set()


async def test_finished_tasks_are_left_alone() -> None:
    done = asyncio.create_task(asyncio.sleep(0, result="kept"))
    await done
    assert await cancel_until_done([done]) == set()
    assert done.result() == "kept"
