"""The core's own background loops (the hub's session sweep, the change feed's heartbeat, SQLite's
checkpointer): started on the running event loop when first needed, and cancelled at stop.

A task belongs to the loop that made it; tests run each on a new loop, so "running" means running
on this one.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


def ensure_running(task: asyncio.Task[None] | None, start: Callable[[], Coroutine[Any, Any, None]],
                   name: str) -> asyncio.Task[None] | None:
    """`task` if it runs on the current loop, else a new one from `start()`; None outside a loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return task
    if task is None or task.done() or task.get_loop() is not loop:
        return loop.create_task(start(), name=name)
    return task


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancels `task` (if it runs on this loop) and waits for it to end."""
    if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
