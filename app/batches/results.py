"""A batch's results as NDJSON, one line an item in submission order, read from the database
a chunk at a time (keyset pagination on the batch's item index, a short session a chunk):
memory stays that of one chunk whatever the batch's size, and no connection is held while the
client reads. Items not ended yet are there too, with their status and a null result."""

from collections.abc import AsyncIterator

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.batches import repository
from app.batches.schemas import RESULT_FIELDS

# Items a read: a result may be large (a model's output), so the chunk is kept small.
CHUNK = 200


async def result_lines(
    sessionmaker: async_sessionmaker[AsyncSession], batch_id: int, chunk: int = CHUNK
) -> AsyncIterator[bytes]:
    after = -1
    while True:
        async with sessionmaker() as session:
            rows = await repository.results_after(session, batch_id, after, chunk)
        if rows:
            yield b"".join(
                to_json({field: row[field] for field in RESULT_FIELDS}) + b"\n" for row in rows
            )
            after = rows[-1]["item"]
        if len(rows) < chunk:
            return
