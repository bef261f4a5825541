"""One owner of each transaction (app/core/db.py): a request, or a command, is stored whole or
not at all, and what must follow its commit runs after it, never after a rollback."""

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.catalog.models import Dataset
from app.core.config import Settings
from app.core.db import after_commit
from app.core.dependencies import SessionDep
from app.core.errors import Invalid
from app.main import create_app
from tests.cli.test_cli import agentrun, last_line


async def test_a_command_refused_halfway_stores_nothing(
    client: AsyncClient, settings: Settings
) -> None:
    # The user is valid, its first token's name is not: the command is refused whole, so the
    # same user can be created right after (it was left behind without a token before).
    refused = await agentrun(
        settings.database_url, "users", "create", "ivan", "--token-name", "x" * 101
    )
    created = await agentrun(settings.database_url, "users", "create", "ivan")

    assert refused.code == 1
    assert "token name" in refused.stderr
    assert created.code == 0, created.stderr
    token = last_line(created.stdout)
    me = await client.get("/api/users/me/", headers={"Authorization": f"Token {token}"})
    assert me.json()["username"] == "ivan"


@pytest.fixture
async def probe_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, list[int]]]:
    """The application with one more route that stores a dataset, registers work to follow
    the commit (which reads, from a session of its own, how many datasets are committed),
    then answers or fails as asked."""
    app = create_app(settings)
    seen_after_commit: list[int] = []

    async def committed_datasets(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        async with sessionmaker() as other:
            seen_after_commit.append(await other.scalar(select(func.count(Dataset.id))) or 0)

    @app.post("/probe/{outcome}")
    async def probe(outcome: str, session: SessionDep) -> dict[str, str]:
        session.add(Dataset(name="probe"))
        await session.flush()
        after_commit(session, lambda: committed_datasets(app.state.sessionmaker))
        if outcome == "fail":
            raise Invalid("Refused after writing.")
        return {"outcome": outcome}

    async with app.router.lifespan_context(app):
        yield app, seen_after_commit


async def test_a_request_is_committed_before_its_answer_and_its_after_work_runs_after(
    probe_app: tuple[FastAPI, list[int]], session: AsyncSession
) -> None:
    app, seen_after_commit = probe_app
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        answered = await client.post("/probe/ok")
        stored = await session.scalar(select(func.count(Dataset.id)))

    assert answered.status_code == 200
    assert stored == 1
    assert seen_after_commit == [1]


async def test_a_request_that_fails_after_writing_stores_nothing_and_runs_no_after_work(
    probe_app: tuple[FastAPI, list[int]], session: AsyncSession
) -> None:
    app, seen_after_commit = probe_app
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        refused = await client.post("/probe/fail")
        stored = await session.scalar(select(func.count(Dataset.id)))

    assert refused.status_code == 400
    assert refused.json() == {"detail": "Refused after writing."}
    assert stored == 0
    assert seen_after_commit == []
