"""The ``agentrun`` command, run as a subprocess against the test database."""

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from tests.conftest import SERVER_URL
from tests.factories import Factory
from tests.worker.harness import reload

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


async def agentrun(database_url: str, *args: str) -> Result:
    env = {**os.environ, "AGENTRUN_DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


async def test_users_create_prints_a_token_that_authenticates(
    client: AsyncClient, settings: Settings
) -> None:
    result = await agentrun(settings.database_url, "users", "create", "carol", "--admin")

    assert result.code == 0, result.stderr
    token = last_line(result.stdout)
    me = await client.get("/api/users/me/", headers={"Authorization": f"Token {token}"})
    assert me.status_code == 200
    assert me.json()["username"] == "carol"
    assert me.json()["is_admin"] is True


async def test_users_create_makes_a_regular_user_by_default(
    client: AsyncClient, settings: Settings
) -> None:
    result = await agentrun(settings.database_url, "users", "create", "dave")

    token = last_line(result.stdout)
    me = await client.get("/api/users/me/", headers={"Authorization": f"Token {token}"})
    assert me.json()["is_admin"] is False


async def test_creating_an_existing_user_fails_with_exit_code_1(settings: Settings) -> None:
    first = await agentrun(settings.database_url, "users", "create", "erin")
    second = await agentrun(settings.database_url, "users", "create", "erin")

    assert first.code == 0
    assert second.code == 1
    assert "already exists" in second.stderr
    assert second.stdout == ""


async def test_tokens_create_adds_a_working_token_beside_the_first(
    client: AsyncClient, settings: Settings
) -> None:
    first = last_line((await agentrun(settings.database_url, "users", "create", "frank")).stdout)

    result = await agentrun(settings.database_url, "tokens", "create", "frank", "--name", "ci")

    assert result.code == 0, result.stderr
    second = last_line(result.stdout)
    assert second != first
    for token in (first, second):
        me = await client.get("/api/users/me/", headers={"Authorization": f"Token {token}"})
        assert me.json()["username"] == "frank"


async def test_tokens_create_for_an_unknown_user_fails_with_exit_code_1(
    settings: Settings,
) -> None:
    result = await agentrun(settings.database_url, "tokens", "create", "nobody")

    assert result.code == 1
    assert "nobody" in result.stderr


async def test_migrate_creates_the_schema_on_an_empty_database() -> None:
    name = f"agentrun_cli_{uuid.uuid4().hex[:10]}"
    server = await asyncpg.connect(SERVER_URL)
    await server.execute(f'CREATE DATABASE "{name}"')
    base = SERVER_URL.rsplit("/", 1)[0]
    try:
        url = f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
        result = await agentrun(url, "migrate")

        assert result.code == 0, result.stderr
        database = await asyncpg.connect(f"{base}/{name}")
        try:
            tables = {
                row["tablename"]
                for row in await database.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            }
            version = await database.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await database.close()
        assert {"users", "api_tokens", "datasets", "products", "agents"} <= tables
        assert {"agentic_executions", "conversations", "messages"} <= tables
        assert version
        # A user can be created right away on the migrated database.
        created = await agentrun(url, "users", "create", "first")
        assert created.code == 0, created.stderr
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


async def test_help_lists_the_commands(settings: Settings) -> None:
    result = await agentrun(settings.database_url, "--help")

    assert result.code == 0
    for command in ("migrate", "users", "tokens", "quotas", "limits", "serve", "worker"):
        assert command in result.stdout


async def test_users_disable_refuses_the_users_tokens_and_enable_restores_them(
    client: AsyncClient, settings: Settings
) -> None:
    token = last_line((await agentrun(settings.database_url, "users", "create", "gina")).stdout)
    headers = {"Authorization": f"Token {token}"}

    disabled = await agentrun(settings.database_url, "users", "disable", "gina")
    refused = await client.get("/api/users/me/", headers=headers)
    enabled = await agentrun(settings.database_url, "users", "enable", "gina")
    accepted = await client.get("/api/users/me/", headers=headers)
    unknown = await agentrun(settings.database_url, "users", "disable", "nobody")

    assert disabled.code == 0, disabled.stderr
    assert "disabled" in disabled.stdout
    assert refused.status_code == 401
    assert enabled.code == 0
    assert accepted.json()["is_active"] is True
    assert unknown.code == 1
    assert "No user named 'nobody'" in unknown.stderr


async def test_users_disable_cancels_his_queued_executions_and_with_a_flag_his_running_ones(
    settings: Settings, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    hana = await factory.account(username="hana")
    agent = await factory.agent(await factory.dataset(hana))
    queued = await factory.execution(agent, hana)
    running = await factory.execution(agent, hana, status="in_progress")

    first = await agentrun(settings.database_url, "users", "disable", "hana")
    after_first = await reload(sessionmaker, running.id)
    second = await agentrun(settings.database_url, "users", "disable", "hana", "--cancel-running")

    assert first.code == 0, first.stderr
    assert "1 executions not started cancelled" in first.stdout
    cancelled = await reload(sessionmaker, queued.id)
    assert (cancelled.status, cancelled.failure_explanation) == (
        "failed",
        "Cancelled by an operator.",
    )
    assert after_first.cancel_requested_at is None
    assert second.code == 0, second.stderr
    asked = await reload(sessionmaker, running.id)
    assert asked.cancel_requested_by == "an operator"
