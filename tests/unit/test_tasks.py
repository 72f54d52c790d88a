"""Stopping background tasks: a cancellation the task swallowed is asked for again."""

from __future__ import annotations

import asyncio

from scoreboard.tasks import stop


async def test_a_task_that_swallows_one_cancellation_is_still_stopped() -> None:
    swallowed = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            swallowed.append(True)  # as asyncio.wait_for may on Python 3.11
        await asyncio.sleep(60)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)

    await asyncio.wait_for(stop(task), 5)

    assert swallowed == [True]
    assert task.cancelled()


async def test_a_task_that_already_ended_with_an_error_is_stopped_quietly() -> None:
    async def failing() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)

    await stop(task)

    assert task.done()
