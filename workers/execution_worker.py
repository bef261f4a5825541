"""The arq worker the service runs: arq's own, asking Redis less about jobs already running.

arq leaves a job in its queue until the job ends. Each poll reads the queue and, before starting
a job it finds there, checks with WATCH, EXISTS, ZSCORE and UNWATCH (four round trips) that no
worker runs it yet. An execution waits on its model for seconds, so most of what a poll finds
is running already, on this worker or another; without this, a worker with hundreds of
executions in flight spends its polls asking about them, and every worker asks about every
other worker's too. One script now drops the jobs whose in-progress key exists, in one round
trip; the jobs still waiting get arq's check as before, which keeps starting a job atomic.
"""

from arq.constants import in_progress_key_prefix
from arq.worker import Worker

from app.core.redis_scripts import LuaScript

# The positions (from 1) of the keys in KEYS that do not exist: the jobs no worker runs.
_NOT_RUNNING = LuaScript(
    """
    local waiting = {}
    for position, key in ipairs(KEYS) do
        if redis.call('EXISTS', key) == 0 then waiting[#waiting + 1] = position end
    end
    return waiting
    """
)


class ExecutionWorker(Worker):
    async def start_jobs(self, job_ids: list[bytes]) -> None:
        if job_ids:
            keys = [in_progress_key_prefix + job_id.decode() for job_id in job_ids]
            waiting = await _NOT_RUNNING(self.pool, keys, [])
            job_ids = [job_ids[position - 1] for position in waiting]
        await super().start_jobs(job_ids)
