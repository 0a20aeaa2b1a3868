"""Work that runs beside a service for as long as a block lasts (a ticker, a reporter, a
sampler, an outbox worker): started on entry, cancelled and awaited on exit, so a cleanup
context never leaves a task behind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def background(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[
        asyncio.Task[None]]:
    task = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
