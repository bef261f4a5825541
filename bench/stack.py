"""The system under test: a scratch database, a Redis db, and the processes the harness runs.

Everything listens on 127.0.0.1. Every process started here is stopped by ``Stack.close`` (the
harness calls it in a ``finally``, also on failure and Ctrl-C), and the scratch database
``agentrun_bench_<random>`` is dropped.
"""

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncpg
import httpx
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
POSTGRES = "postgres@127.0.0.1:5432"
# Not 15 (tests) nor 0 (dev): the harness owns this db and flushes it.
REDIS_DB = 14
REDIS_URL = f"redis://{HOST}:6379/{REDIS_DB}"
STOP_TIMEOUT_SECONDS = 15.0
START_TIMEOUT_SECONDS = 60.0
# High enough never to answer 429, so that the limiter's Redis round trip stays in the path.
RATE_LIMIT_PER_MINUTE = 1_000_000_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class Stack:
    work_dir: Path
    database: str = field(default_factory=lambda: f"agentrun_bench_{secrets.token_hex(4)}")
    queue_name: str = field(default_factory=lambda: f"agentrun:bench:{secrets.token_hex(4)}")
    processes: list[Process] = field(default_factory=list)
    database_created: bool = False
    keep_database: bool = False

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://{POSTGRES}/{self.database}"

    @property
    def dsn(self) -> str:
        return f"postgresql://{POSTGRES}/{self.database}"

    def env(self, **extra: str) -> dict[str, str]:
        # Nothing of the developer's own configuration leaks in.
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AGENTRUN_", "OPENAI_", "ANTHROPIC_"))
        }
        media = self.work_dir / "media"
        media.mkdir(parents=True, exist_ok=True)
        return {
            **base,
            "AGENTRUN_DATABASE_URL": self.database_url,
            "AGENTRUN_REDIS_URL": REDIS_URL,
            "AGENTRUN_QUEUE_NAME": self.queue_name,
            "AGENTRUN_MEDIA_ROOT": str(media),
            "AGENTRUN_LOG_LEVEL": "WARNING",
            "AGENTRUN_METRICS_PORT": "0",
            "AGENTRUN_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT_PER_MINUTE),
            # The mock ignores it; the OpenAI client refuses to start without one.
            "OPENAI_API_KEY": "bench-no-key",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    # -- the database and Redis --------------------------------------------------------------

    async def create_database(self) -> None:
        connection = await asyncpg.connect(f"postgresql://{POSTGRES}/postgres")
        try:
            await connection.execute(f'CREATE DATABASE "{self.database}"')
            self.database_created = True
        finally:
            await connection.close()
        await self.cli("migrate")

    async def drop_database(self) -> None:
        if not self.database_created:
            return
        if self.keep_database:
            print(f"kept the database {self.database} (DROP DATABASE it when done)")
            self.database_created = False
            return
        connection = await asyncpg.connect(f"postgresql://{POSTGRES}/postgres")
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self.database_created = False
        finally:
            await connection.close()

    async def flush_redis(self) -> None:
        redis: Redis = Redis.from_url(REDIS_URL)
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()

    async def cli(self, *args: str) -> str:
        """Run ``agentrun ARGS`` against the scratch database; its stdout."""
        done = await asyncio.to_thread(
            subprocess.run,
            [str(BIN / "agentrun"), *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"agentrun {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    # -- processes --------------------------------------------------------------------------

    def start(
        self, name: str, argv: list[str], *, port: int | None = None, env: dict[str, str]
    ) -> Process:
        log_path = self.work_dir / f"{name}.log"
        log = log_path.open("ab")
        popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group: a Ctrl-C reaches the harness, which stops them in order.
            start_new_session=True,
        )
        process = Process(name, popen, log_path, log, port)
        self.processes.append(process)
        return process

    def stop(self, process: Process) -> None:
        if process.alive():
            process.popen.send_signal(signal.SIGTERM)
            try:
                process.popen.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(5)
        process.log.close()
        with contextlib.suppress(ValueError):
            self.processes.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.processes)):
            self.stop(process)

    async def wait_http(self, process: Process, path: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        async with httpx.AsyncClient(base_url=process.url, timeout=2) as client:
            while True:
                if not process.alive():
                    raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(path)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{process.name} did not start:\n{process.log_tail()}")
                await asyncio.sleep(0.1)

    async def start_model_server(self) -> Process:
        port = free_port()
        process = self.start(
            "model",
            [sys.executable, "-m", "bench.mock_model", "--port", str(port)],
            port=port,
            env=self.env(),
        )
        await self.wait_http(process, "/_bench/stats")
        return process

    async def start_uvicorn(
        self, name: str, module: str, *, env: dict[str, str], ready_path: str
    ) -> Process:
        """``uvicorn MODULE`` as the API is served, returned once ``ready_path`` answers 200."""
        port = free_port()
        argv = [str(BIN / "uvicorn"), module, "--host", HOST, "--port", str(port)]
        argv += ["--no-proxy-headers", "--no-access-log", "--log-level", "warning"]
        process = self.start(name, argv, port=port, env=env)
        await self.wait_http(process, ready_path)
        return process

    async def start_api(self) -> Process:
        return await self.start_uvicorn(
            "api", "app.main:app", env=self.env(), ready_path="/healthz"
        )

    def bare_env(self, queue_name: str) -> dict[str, str]:
        """The configuration of the bare submit endpoint (bench/bare.py)."""
        return self.env(
            BENCH_BARE_DSN=self.dsn, BENCH_BARE_REDIS_URL=REDIS_URL, BENCH_BARE_QUEUE=queue_name
        )

    async def start_api_with_bare(self, queue_name: str) -> Process:
        """An API process serving the real application with the bare endpoint mounted on it
        (bench/bare_app.py): the submit scenario's baseline in the same process. Ready when
        /readyz answers 200, which needs what the application's own lifespan opens."""
        return await self.start_uvicorn(
            "api-with-bare",
            "bench.bare_app:app",
            env=self.bare_env(queue_name),
            ready_path="/readyz",
        )

    async def start_floor_api(self, queue_name: str) -> Process:
        """The bare endpoint alone in a plain FastAPI app and its own process, no middleware
        (bench/floor_app.py): the submit scenario's floor."""
        return await self.start_uvicorn(
            "floor-api", "bench.floor_app:app", env=self.bare_env(queue_name), ready_path="/healthz"
        )

    async def start_worker(self, **extra: str) -> Process:
        """A worker process, returned once it polls the queue (its health-check key is set)."""
        process = self.start("worker", [str(BIN / "agentrun"), "worker"], env=self.env(**extra))
        redis: Redis = Redis.from_url(REDIS_URL)
        key = f"{self.queue_name}:health-check"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        try:
            await redis.delete(key)
            while not await redis.exists(key):
                if not process.alive():
                    raise RuntimeError(f"the worker exited:\n{process.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not start:\n{process.log_tail()}")
                await asyncio.sleep(0.1)
        finally:
            await redis.aclose()
        return process

    def start_redis(self, name: str) -> tuple[Process, str]:
        """A private redis-server (no persistence) on a free port: its URL. For figures of
        Redis alone (INFO commandstats, its CPU), untouched by others using the shared one."""
        port = free_port()
        argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", ""]
        argv += ["--appendonly", "no", "--protected-mode", "no"]
        process = self.start(name, argv, port=port, env=self.env())
        return process, f"redis://{HOST}:{port}/0"

    async def start_workers(self, count: int, redis_url: str, **extra: str) -> list[Process]:
        """``count`` worker processes on ``redis_url``, returned once each waits for jobs
        (blocked on the queue's wake list)."""
        env = self.env(AGENTRUN_REDIS_URL=redis_url, **extra)
        workers = [
            self.start(f"worker-{n}", [str(BIN / "agentrun"), "worker"], env=env)
            for n in range(count)
        ]
        redis: Redis = Redis.from_url(redis_url)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS * max(1, count / 2)
        try:
            while True:
                clients = await redis.client_list()
                if sum(client.get("cmd") == "blpop" for client in clients) >= count:
                    return workers
                for process in workers:
                    if not process.alive():
                        raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the workers did not start:\n{workers[0].log_tail()}")
                await asyncio.sleep(0.1)
        finally:
            await redis.aclose()

    async def close(self) -> None:
        self.stop_all()
        with contextlib.suppress(Exception):
            await self.flush_redis()
        await self.drop_database()


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (no psutil needed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
