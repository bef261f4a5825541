"""A batch's progress as Server-Sent Events: ``progress`` (the batch with its counts) when
opened and whenever its items move, then ``finished`` once every item ended.

Woken by the listener (``agentrun_batch_events``, NOTIFYed by the trigger of migration 0028
when an item's status changes); a wake-up reads the batch again (one statement, its counts
from an index) at most every ``MIN_INTERVAL_SECONDS``, so ten thousand items ending in a
second cost a few reads, not ten thousand."""

import asyncio
from collections.abc import AsyncIterator, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.batches import repository
from app.batches.repository import BatchRow
from app.events.listener import EventListener
from app.events.stream import KEEP_ALIVE

MIN_INTERVAL_SECONDS = 0.25


def frame(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


class BatchEventStream:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        listener: EventListener,
        batch_id: int,
        render: Callable[[BatchRow], str],
        *,
        keep_alive_seconds: float,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.listener = listener
        self.batch_id = batch_id
        self.render = render
        self.keep_alive_seconds = keep_alive_seconds

    async def _read(self) -> BatchRow | None:
        async with self.sessionmaker() as session:
            return await repository.get_batch(session, self.batch_id)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        last = None
        with self.listener.subscribe_batch(self.batch_id) as woken:
            while True:
                woken.clear()
                batch = await self._read()
                if batch is None:  # deleted with its agent meanwhile
                    return
                data = self.render(batch)
                if batch["finished_at"] is not None:
                    yield frame("finished", data)
                    return
                if data != last:
                    yield frame("progress", data)
                    last = data
                await asyncio.sleep(MIN_INTERVAL_SECONDS)
                try:
                    await asyncio.wait_for(woken.wait(), self.keep_alive_seconds)
                except TimeoutError:
                    yield KEEP_ALIVE
