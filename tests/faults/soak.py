"""Soak: hundreds of executions through the real API and two workers, while one worker is
killed twice (SIGKILL, then restarted) and the queue is wiped once; every accepted execution
must end, none run twice at once.

    python -m tests.faults.soak                       # production intervals (heartbeat 10 s,
                                                      # stale after 30 s, reconcile every 15 s)
    python -m tests.faults.soak --executions 300 --stale 5 --heartbeat 1 --reconcile 2

Needs PostgreSQL and Redis on 127.0.0.1 (as the tests): it creates and drops a database of its
own and claims one of the tests' Redis databases. Prints the figures at the end.
"""

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from alembic import command
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.conversations.models import Message
from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker
from app.executions.models import AgenticExecution
from tests.conftest import REDIS_SERVER, SERVER_URL, TEST_REDIS_DATABASES, alembic_config
from tests.factories import Factory
from tests.faults.conftest import Service, Stack, mock_agent
from tests.mock_openai import MockOpenAI, default_responder


@dataclass
class ModelLog:
    """When each execution's model requests started and ended (by its instructions)."""

    calls: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def responder(self, latency: float) -> Any:
        async def respond(request: dict[str, Any]) -> Any:
            label = next(m["content"] for m in request["messages"] if m["role"] == "user")
            label = str(label).split("Instructions:\n", 1)[-1].split("\n", 1)[0]
            started = time.monotonic()
            await asyncio.sleep(latency)
            self.calls.setdefault(label, []).append((started, time.monotonic()))
            return default_responder(request)

        return respond

    def overlapping(self) -> int:
        """Executions with two model requests in flight at once: two live runs."""
        return sum(
            any(b[0] < a[1] for a, b in itertools.pairwise(spans))
            for spans in (sorted(s) for s in self.calls.values())
        )


@contextlib.asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    name = f"agentrun_soak_{uuid.uuid4().hex[:10]}"
    server = await asyncpg.connect(SERVER_URL)
    await server.execute(f'CREATE DATABASE "{name}"')
    url = SERVER_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(f"{url}/{name}"), "head")
        yield f"{url}/{name}"
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


@contextlib.asynccontextmanager
async def scratch_redis() -> AsyncIterator[str]:
    """One of the tests' Redis databases, claimed as a test run claims it."""
    claim = f"agentrun:soak:{uuid.uuid4().hex}"
    async with Redis.from_url(f"{REDIS_SERVER}/0") as registry:
        for number in TEST_REDIS_DATABASES:
            lock = f"agentrun:test-redis-db:{number}"
            if await registry.set(lock, claim, nx=True, ex=3600):
                break
        else:
            raise SystemExit("every test Redis database is taken")
        url = f"{REDIS_SERVER}/{number}"
        try:
            async with Redis.from_url(url) as db:
                await db.flushdb()
            yield url
        finally:
            async with Redis.from_url(url) as db:
                await db.flushdb()
            if await registry.get(lock) == claim.encode():
                await registry.delete(lock)


async def submit_all(
    api_url: str, headers: dict[str, str], agent_id: int, count: int, rate: float
) -> tuple[list[int], float]:
    """Start ``count`` executions at ``rate`` a second; their ids and when the last was in."""
    ids: list[int] = []
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as api:

        async def one(number: int) -> None:
            response = await api.post(
                f"/api/agents/{agent_id}/agentic-executions/",
                json={"execution_key": "structured-task", "input": {"instructions": f"#{number}"}},
            )
            if response.status_code == 202:
                ids.append(response.json()["id"])
            else:
                print(f"  submit #{number}: {response.status_code} {response.text}")

        tasks = []
        for number in range(count):
            tasks.append(asyncio.create_task(one(number)))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
    return ids, time.monotonic()


async def open_count(sessionmaker: async_sessionmaker[AsyncSession], ids: list[int]) -> int:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(AgenticExecution.status).where(AgenticExecution.id.in_(ids))
        )
        return sum(status in ("pending", "in_progress") for status in rows)


async def disrupt(
    stack: Stack, first: Service, redis_url: str, queue_name: str, options: Any
) -> list[tuple[str, float]]:
    """Kill the first worker at the given times (restarting it at once), wipe the queue once."""
    events: list[tuple[str, float]] = []
    plan = sorted([(t, "kill") for t in options.kill_at] + [(options.wipe_at, "wipe")])
    started = time.monotonic()
    current: asyncio.Task[Service] | Service = first
    for number, (at, what) in enumerate(plan, start=2):
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        if what == "kill":
            victim = current if isinstance(current, Service) else await current
            victim.signal(signal.SIGKILL)
            await victim.exited(10)
            events.append((f"SIGKILL {victim.name}", time.monotonic()))
            current = asyncio.create_task(stack.worker(f"worker-a{number}"))
        else:
            async with Redis.from_url(redis_url) as db:
                lost = await db.zcard(queue_name)
                await db.delete(queue_name)
            events.append((f"queue wiped ({lost} queued jobs lost)", time.monotonic()))
    if not isinstance(current, Service):
        await current
    return events


async def soak(options: argparse.Namespace) -> int:
    async with scratch_database() as database_url, scratch_redis() as redis_url:
        directory = Path(tempfile.mkdtemp(prefix="agentrun-soak-"))
        settings = Settings(
            database_url=database_url,
            redis_url=redis_url,
            queue_name=f"agentrun:soak:{uuid.uuid4().hex[:8]}",
            media_root=directory / "media",
            _env_file=None,  # type: ignore[call-arg]
        )
        overrides = {
            "heartbeat_seconds": options.heartbeat,
            "stale_after_seconds": options.stale,
            "reconcile_seconds": options.reconcile,
            "worker_concurrency": options.concurrency,
            "worker_database_retry_seconds": 120,
        }
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        log = ModelLog()
        stack = Stack(settings, directory, overrides=overrides)
        try:
            async with MockOpenAI(log.responder(options.latency)) as model:
                owner, agent = await mock_agent(Factory(sessionmaker, settings), model.url)
                api_url = await stack.api()
                first = await stack.worker("worker-a1")
                await stack.worker("worker-b")
                print(f"soak: {options.executions} executions, model latency {options.latency}s")
                print(f"logs in {directory}")
                began = time.monotonic()
                submitting = asyncio.create_task(
                    submit_all(api_url, owner.headers, agent.id, options.executions, options.rate)
                )
                events = await disrupt(stack, first, redis_url, settings.queue_name, options)
                ids, submitted = await submitting
                while await open_count(sessionmaker, ids):
                    if time.monotonic() - began > options.timeout:
                        break
                    await asyncio.sleep(0.25)
                ended = time.monotonic()
                return await report(sessionmaker, ids, log, events, began, submitted, ended, stack)
        finally:
            await stack.stop_all()
            await engine.dispose()


async def report(
    sessionmaker: async_sessionmaker[AsyncSession],
    ids: list[int],
    log: ModelLog,
    events: list[tuple[str, float]],
    began: float,
    submitted: float,
    ended: float,
    stack: Stack,
) -> int:
    async with sessionmaker() as session:
        rows = list(
            await session.scalars(select(AgenticExecution).where(AgenticExecution.id.in_(ids)))
        )
        trace = (
            await session.execute(
                select(Message.conversation_id, Message.role)
                .where(Message.role.in_(["result", "failure", "attempt"]))
                .order_by(Message.id)
            )
        ).all()
    statuses = Counter(row.status for row in rows)
    codes = Counter(row.failure_code for row in rows if row.status == "failed")
    attempts = Counter(row.attempts for row in rows)
    requests = Counter(len(spans) for spans in log.calls.values())
    double_ends = doubly_ended(trace)
    dropped = sum(s.output().count("outcome is dropped") for s in stack.services)
    print("\n== soak results ==")
    print(f"accepted: {len(ids)}")
    print(f"statuses: {dict(statuses)}")
    print(f"failed by code: {dict(codes) or '-'}")
    print(f"attempts: {dict(sorted(attempts.items()))}")
    print(f"model requests per execution: {dict(sorted(requests.items()))}")
    for what, at in events:
        print(f"  t={at - began:5.1f}s {what}")
    kills = [(what, at) for what, at in events if what.startswith("SIGKILL")]
    reruns: dict[str, list[float]] = {what: [] for what, _ in kills}
    for spans in (sorted(s) for s in log.calls.values()):
        if len(spans) > 1:
            # The kill that ended the first attempt: the first one after its request.
            what, at = next(((w, t) for w, t in kills if spans[0][0] < t < spans[1][0]), ("", 0))
            if what:
                reruns[what].append(spans[1][0] - at)
    for what, delays in reruns.items():
        if delays:
            print(
                f"{what}: {len(delays)} executions' model call repeated "
                f"{min(delays):.1f}-{max(delays):.1f} s after the kill "
                f"(median {statistics.median(delays):.1f} s)"
            )
        else:
            print(f"{what}: no model call in flight")
    print(f"submitting took {submitted - began:.1f} s; all terminal after {ended - began:.1f} s")
    print(f"two model requests in flight for one execution: {log.overlapping()}")
    print(f"attempts whose trace has two endings: {double_ends}")
    print(f"outcomes dropped (their attempt no longer held the execution): {dropped}")
    still_open = statuses["pending"] + statuses["in_progress"]
    ok = still_open == 0 and log.overlapping() == 0 and double_ends == 0
    print("OK" if ok else f"NOT OK: {still_open} executions not terminal")
    return 0 if ok else 1


def doubly_ended(trace: Sequence[Any]) -> int:
    """Attempts whose trace holds two endings (a result or failure): two runs of one attempt.
    A killed attempt may have written its ending before its outcome; the next attempt begins
    with an "attempt" note, so its ending is counted apart."""
    endings: Counter[tuple[int, int]] = Counter()
    segment: Counter[int] = Counter()
    for conversation_id, role in trace:
        if role == "attempt":
            segment[conversation_id] += 1
        else:
            endings[(conversation_id, segment[conversation_id])] += 1
    return sum(count > 1 for count in endings.values())


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0, help="submissions per second")
    parser.add_argument("--latency", type=float, default=0.5, help="model answer, seconds")
    parser.add_argument("--concurrency", type=int, default=5, help="per worker")
    parser.add_argument("--heartbeat", type=float, default=10.0)
    parser.add_argument("--stale", type=float, default=30.0)
    parser.add_argument("--reconcile", type=float, default=15.0)
    parser.add_argument(
        "--kill-at",
        type=float,
        nargs="+",
        help="seconds after the first submission (default: 3, and once the executions whose "
        "jobs the wipe lost run again)",
    )
    parser.add_argument("--wipe-at", type=float, default=6.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    options = parser.parse_args()
    options.kill_at = options.kill_at or [3.0, options.wipe_at + options.stale + 4]
    sys.exit(asyncio.run(soak(options)))


if __name__ == "__main__":
    main()
