"""The worker's heartbeat: proof, in PostgreSQL, that the executions it runs are still alive.

Every ``heartbeat_seconds`` one UPDATE bumps ``heartbeat_at`` of all the executions this worker
process runs. A worker killed mid-run stops beating; once the heartbeat is older than
``stale_after_seconds`` the reconciler (``workers.background.reconciler``) hands the execution to
another worker, which runs it again as the next attempt.

The same UPDATE tells the worker about its runs what Redis may have failed to: a run taken
over by another worker (this worker lost PostgreSQL for longer than ``stale_after_seconds``)
is stopped without writing anything, and a run a user cancelled (the abort through Redis was
lost) is stopped and recorded as cancelled.

It beats on a connection of its own (``workers.process.startup``), whose statements are cancelled
after one interval: runs holding every connection of the pool, or a statement stuck behind a
lock, cannot keep it from beating (their executions would be taken for orphans).
"""

import asyncio
import enum
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.database_errors import is_database_outage
from app.executions.transitions import beat

logger = logging.getLogger(__name__)

# After a failed beat, try again soon: the sooner PostgreSQL hears from us once it is back,
# the less likely another worker's reconciler finds our executions stale meanwhile.
RETRY_AFTER_FAILURE_SECONDS = 1.0


class StopReason(enum.StrEnum):
    """Why this worker stopped one of its runs itself."""

    # Another attempt took the execution over, or it ended elsewhere: nothing more is written.
    SUPERSEDED = "superseded"
    # A user asked to cancel it (the abort through Redis was lost): recorded as cancelled.
    CANCEL_REQUESTED = "cancel requested"


@dataclass
class HeldRun:
    """One execution this worker runs: the attempt it holds and the task running it."""

    attempt: int
    task: asyncio.Task[Any]
    # Why this worker stopped the run itself, if it did.
    stop_reason: StopReason | None = None
    # Set once the run is over and its outcome is being written: the run is no longer stopped.
    ending: bool = False

    def stop(self, reason: StopReason) -> None:
        # A task already being cancelled (an arq abort, the worker stopping) is left alone: a
        # second cancellation would interrupt the writes it is doing to end well.
        if self.ending or self.task.done() or self.task.cancelling():
            return
        self.stop_reason = reason
        self.task.cancel()


@dataclass
class Runs:
    """The executions this worker process runs right now, by id."""

    held: dict[int, HeldRun] = field(default_factory=dict)
    # time.monotonic() of the last failure to reach PostgreSQL seen by the heartbeat or the
    # reconciler: until heartbeats had time to recover, staleness proves nothing.
    database_trouble_at: float | None = None

    def hold(self, execution_id: int, attempt: int) -> HeldRun:
        task = asyncio.current_task()
        assert task is not None, "runs are held from inside a task"
        run = HeldRun(attempt, task)
        self.held[execution_id] = run
        return run

    def drop(self, execution_id: int, run: HeldRun) -> None:
        if self.held.get(execution_id) is run:
            del self.held[execution_id]

    def note_database_trouble(self) -> None:
        self.database_trouble_at = time.monotonic()

    def recently_troubled(self, within: float) -> bool:
        return (
            self.database_trouble_at is not None
            and time.monotonic() - self.database_trouble_at < within
        )


async def beat_once(sessionmaker: async_sessionmaker[AsyncSession], runs: Runs) -> int:
    """Bump the heartbeat of every held run; stop the runs that are no longer ours or that a
    user cancelled. Answers how many heartbeats were bumped."""
    held = {execution_id: run.attempt for execution_id, run in runs.held.items()}
    if not held:
        return 0
    async with sessionmaker() as session, session.begin():
        alive = await beat(session, held)
    for execution_id, attempt in held.items():
        run = runs.held.get(execution_id)
        if run is None or run.attempt != attempt or run.ending:
            continue  # ended meanwhile
        if execution_id not in alive:
            logger.warning(
                "execution %s: attempt %s was ended or taken over elsewhere; stopping it",
                execution_id,
                attempt,
            )
            run.stop(StopReason.SUPERSEDED)
        elif alive[execution_id]:
            logger.info("execution %s: cancelled by a user; stopping it", execution_id)
            run.stop(StopReason.CANCEL_REQUESTED)
    return len(alive)


async def keep_beating(
    sessionmaker: async_sessionmaker[AsyncSession], runs: Runs, settings: Settings
) -> None:
    """The worker's heartbeat task, from startup to shutdown, on ``sessionmaker`` (the
    heartbeat's own connection: ``workers.process.startup``)."""
    while True:
        pause = settings.heartbeat_seconds
        try:
            # On a connection of its own, never waiting for the runs' pool.
            await beat_once(sessionmaker, runs)
        except Exception as exc:
            if is_database_outage(exc):
                runs.note_database_trouble()
                logger.warning("heartbeat: PostgreSQL unavailable (%s)", type(exc).__name__)
            else:
                logger.exception("heartbeat failed")
            pause = min(pause, RETRY_AFTER_FAILURE_SECONDS)
        await asyncio.sleep(pause)
