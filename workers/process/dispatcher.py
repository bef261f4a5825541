"""A worker's share of the dispatch: when it has free slots and arq's queue has no job for
them, it releases waiting executions (app/executions/dispatch.py: fairly, under the fleet's
one lock) and enqueues them; its next poll, woken by their enqueue, starts them.

Released rows are committed before their jobs are enqueued, so a worker killed in between
leaves released executions without a job: the reconciler enqueues them once they look stale,
as any job Redis lost. Nothing is released twice (the release is a conditional UPDATE under
the lock) and nothing waiting is lost (it stays in PostgreSQL until released).
"""

from arq.connections import ArqRedis
from sqlalchemy import select

from app.executions.dispatch import NOTHING_WAITS, release_waiting
from app.executions.queue import enqueue_execution
from workers.run.database import autocommit_engine
from workers.run.state import WorkerState

ANYTHING_WAITS = select(~NOTHING_WAITS)


async def dispatch(state: WorkerState, queue: ArqRedis, slots: int) -> int:
    """Release up to ``slots`` waiting executions and enqueue them; how many it released."""
    # An idle worker asks every poll: one autocommit statement (no BEGIN, no COMMIT).
    async with autocommit_engine(state.sessionmaker).connect() as connection:
        if not await connection.scalar(ANYTHING_WAITS):
            return 0
    async with state.sessionmaker() as session, session.begin():
        released = await release_waiting(session, state.settings, slots)
    for execution_id in released:
        await enqueue_execution(queue, execution_id)
    return len(released)
