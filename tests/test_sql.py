"""Statements compiled once and run on asyncpg (app/core/sql.py) store what SQLAlchemy would."""

from typing import Any

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.conversations.trace import TraceEntry, trace_insert, trace_values
from app.core import sql
from app.executions.models import OPEN_STATUSES, AgenticExecution
from tests.factories import Factory

PAYLOADS: list[Any] = [
    None,
    {"args": {"name": "Ada", "age": 36.5, "ok": True, "tags": ["a", None]}},
    {"text": "é ☃ \u2028 \U0001f600", "quote": '"', "backslash": "\\"},
    "plain",
    [1, "two", {"three": 3}],
]


async def test_json_is_stored_as_sqlalchemy_stores_it(
    engine: AsyncEngine, factory: Factory
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner))
    execution = await factory.execution(agent, owner, input={})
    statement = sql.compile_statement(trace_insert(1))

    for payload in PAYLOADS:
        entry = TraceEntry("x", payload=payload)
        async with engine.connect() as connection:
            values = trace_values(execution.conversation_id, [entry])
            await sql.execute(connection, statement, **{**values, "role_0": "asyncpg"})
        async with engine.begin() as connection:
            values = trace_values(execution.conversation_id, [entry])
            await connection.execute(trace_insert(1), {**values, "role_0": "sqlalchemy"})

    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text("SELECT role, payload::text, payload IS NULL FROM messages ORDER BY id")
            )
        ).all()
    through_asyncpg = [(row[1], row[2]) for row in rows if row[0] == "asyncpg"]
    through_sqlalchemy = [(row[1], row[2]) for row in rows if row[0] == "sqlalchemy"]
    assert len(through_asyncpg) == len(PAYLOADS)
    assert through_asyncpg == through_sqlalchemy
    # None is stored as JSON null (as SQLAlchemy does), not as SQL NULL.
    assert through_asyncpg[0] == ("null", False)


async def test_an_in_list_the_statement_fixes_is_compiled_in(
    engine: AsyncEngine, factory: Factory
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner))
    pending = await factory.execution(agent, owner, input={})
    await factory.execution(agent, owner, input={}, status="finished")
    statement = sql.compile_statement(
        select(AgenticExecution.id).where(AgenticExecution.status.in_(OPEN_STATUSES))
    )

    async with engine.connect() as connection:
        rows = await sql.fetch(connection, statement)

    assert [row["id"] for row in rows] == [pending.id]


def test_an_in_list_given_at_each_run_cannot_be_compiled_once() -> None:
    with pytest.raises(AssertionError):
        sql.compile_statement(
            select(AgenticExecution.id).where(
                AgenticExecution.status.in_(bindparam("statuses", expanding=True))
            )
        )
