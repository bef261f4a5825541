"""The arq worker the service runs: arq's own, woken when a job is enqueued, and holding only
the jobs that wait in its queue.

Two changes to how arq finds work, each through a method arq's ``Worker`` calls:

- **Woken, not only polling.** Whoever enqueues a job also pushes a token on the queue's wake
  list (``app.executions.queue.wake_key``). Between polls the worker waits on that list
  (BLPOP) for at most ``poll_delay``, so a job is picked up within a round trip of its enqueue,
  while an idle worker polls only every ``poll_delay`` (0.5 s). A token wakes one worker, not
  every one; a worker with no free slot does not take tokens (it waits for a slot instead).
  The poll stays the fallback: a token lost or taken by a worker that found nothing to start
  delays a job by at most ``poll_delay``.
- **Running jobs leave the queue.** arq leaves a job in its queue until it ends, and a poll
  reads at most ``queue_read_limit`` ids from the oldest: with hundreds of executions waiting
  on their models, every poll of every worker read (and checked) the running jobs first, and
  past that limit a fleet read only running ones and started nothing more, however many slots
  were free. Here one script (``_START``) moves each job a worker starts out of the queue and
  sets arq's in-progress key, atomically, so the queue holds only waiting jobs; a job to be
  run again (arq's retry, or a worker stopping) is put back by ``finish_job``. A job whose
  in-progress key exists (a worker of the previous release, which leaves its running jobs in
  the queue) is left where it is. A killed worker's job is in neither: the reconciler finds its
  execution in PostgreSQL (stale heartbeat) and enqueues it again, as for a lost job.

- **Fair dispatch when the fleet is full.** A poll that leaves slots free (arq's queue had no
  job for them) releases waiting executions from PostgreSQL for them
  (``workers.process.dispatcher``); at most once per ``poll_delay`` while jobs do come through the
  queue. Their enqueue wakes a worker at once.

arq 0.28 is pinned; tests/worker/test_arq_seams.py pins what this module relies on.
"""

import asyncio
import logging
import time
from functools import partial
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker

from app.core.redis_scripts import LuaScript
from app.executions.queue import wake_key, wake_workers
from workers.process.dispatcher import dispatch
from workers.run.state import STATE_KEY, WorkerState

logger = logging.getLogger(__name__)

# KEYS: the queue, then each job's in-progress key; ARGV: now (ms), how long the in-progress
# key lasts (ms), then the job ids in the order of their keys. Starts each job that is due,
# still queued and run by no one: takes it out of the queue and marks it in progress. Answers
# the started ids, each followed by its score (arq's run_job wants it).
_START = LuaScript(
    """
    local started = {}
    for index = 2, #KEYS do
        local job_id = ARGV[index + 1]
        local score = redis.call('ZSCORE', KEYS[1], job_id)
        if score and tonumber(score) <= tonumber(ARGV[1])
                and redis.call('EXISTS', KEYS[index]) == 0 then
            redis.call('ZREM', KEYS[1], job_id)
            redis.call('PSETEX', KEYS[index], ARGV[2], '1')
            started[#started + 1] = job_id
            started[#started + 1] = score
        end
    end
    return started
    """
)


class ExecutionWorker(Worker):
    """arq's ``Worker``; ``poll_delay`` is how long it waits for a wake-up between polls."""

    def __init__(self, *args: Any, poll_delay: float = 0.5, **kwargs: Any) -> None:
        # arq's own loop sleeps what is left of its poll delay after each poll, whatever woke
        # the worker: it gets 0, and the wait happens in _wait_for_work.
        super().__init__(*args, poll_delay=0, **kwargs)
        self.wait_seconds = poll_delay
        self.wake_key = wake_key(self.queue_name)
        # Set when a job ends: a worker that was full polls again at once.
        self.slot_freed = asyncio.Event()
        # The score each running job had in the queue, to put it back with it (finish_job).
        self.scores: dict[str, int] = {}
        # Whether the last poll found jobs in the queue; when the dispatcher last ran.
        self.found_jobs = False
        self.dispatched_at = 0.0
        self.dispatch_failing = False

    async def _poll_iteration(self) -> None:
        self.found_jobs = False
        await super()._poll_iteration()
        await self._dispatch()
        await self._wait_for_work()

    async def _dispatch(self) -> None:
        free = self.max_jobs - self.job_counter
        state = self.ctx.get(STATE_KEY)
        if not self.allow_pick_jobs or free <= 0 or not isinstance(state, WorkerState):
            return
        now = time.monotonic()
        if self.found_jobs and now - self.dispatched_at < self.wait_seconds:
            return
        self.dispatched_at = now
        try:
            released = await dispatch(state, self.pool, free)
        except Exception as exc:
            # PostgreSQL or Redis away: what waits stays in PostgreSQL; the next poll tries again.
            if not self.dispatch_failing:
                logger.warning("dispatcher: %s: %s", type(exc).__name__, exc)
            self.dispatch_failing = True
            return
        self.dispatch_failing = False
        if released:
            # Their enqueue pushed wake-ups: the next poll comes at once and starts them.
            self.dispatched_at = 0.0

    async def _wait_for_work(self) -> None:
        if self.allow_pick_jobs and self.job_counter < self.max_jobs:
            # Redis answers when a token is pushed, else after the wait (a None).
            # Redis takes the timeout in seconds as a float; redis-py's stubs say int.
            timeout: Any = self.wait_seconds
            await self.pool.blpop([self.wake_key], timeout=timeout)  # type: ignore[misc]
            return
        # Full (or stopping): a token taken now would be a poll that can start nothing.
        self.slot_freed.clear()
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self.slot_freed.wait()
        except TimeoutError:
            pass

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        free = self.max_jobs - self.job_counter
        if not job_ids or free <= 0:
            return
        self.found_jobs = True
        ids = [job_id.decode() for job_id in job_ids[:free]]
        keys = [self.queue_name, *(in_progress_key_prefix + job_id for job_id in ids)]
        in_progress_ms = int(self.in_progress_timeout_s * 1000)
        started = await _START(self.pool, keys, [timestamp_ms(), in_progress_ms, *ids])
        for index in range(0, len(started), 2):
            job_id, score = started[index].decode(), int(float(started[index + 1]))
            # arq's bookkeeping of a started job, as its own start_jobs does it (the semaphore
            # has a slot: the job counter is under max_jobs).
            await self.sem.acquire()
            self.job_counter += 1
            self.scores[job_id] = score
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(partial(self._job_ended, job_id))
            self.tasks[job_id] = task

    def _job_ended(self, job_id: str, _: "asyncio.Task[None]") -> None:
        self._release_sem_dec_counter_on_complete()
        self.scores.pop(job_id, None)
        self.slot_freed.set()

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        requeue = not finish
        if requeue:
            # arq runs the job again by leaving it in the queue (adding incr_score to its
            # score when deferred); it left the queue when it started, so it goes back first,
            # with its old score, which arq's own step then moves on.
            score = self.scores.get(job_id, timestamp_ms())
            await self.pool.zadd(self.queue_name, {job_id: score}, nx=True)
        await super().finish_job(
            job_id,
            finish,
            result_data,
            result_timeout_s,
            keep_result_forever,
            incr_score,
            keep_in_progress,
        )
        if requeue:
            await wake_workers(self.pool, self.queue_name)
