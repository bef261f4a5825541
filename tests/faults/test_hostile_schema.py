"""One tenant's hostile output_schema does not slow another tenant's executions down, on real
worker processes: a catastrophic pattern, a reference to a port that never answers, a schema
nested past the limit (the last two stored around the submit-time check)."""

import json
import socket
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.executions.queue import enqueue_execution
from tests.factories import Account, Factory
from tests.faults.conftest import Stack, Submitter, mock_agent, requests_per_label, terminal, until
from tests.mock_openai import MockOpenAI, Reply, call, default_responder, text, tool_names
from tests.mock_openai import tool_schema as tool_schema_of

CATASTROPHIC_PATTERN = "^(a+)+$"
# Python's re needs minutes to tell that this does not match the pattern.
HOSTILE_ANSWER = "a" * 40 + "!"
LATENCY = 0.3


def answering(request: dict[str, Any]) -> Reply:
    """The default answers, except for the hostile tenant's schemas: a catastrophic answer
    first, then a matching one once the run was told it does not match."""
    tool = next((n for n in tool_names(request) if n.startswith("final_result")), None)
    if tool is None:
        return text("Done.")
    schema = json.dumps(tool_schema_of(request, tool))
    if CATASTROPHIC_PATTERN in schema:
        told = any(message["role"] == "tool" for message in request["messages"])
        return call(tool, code="aaaa" if told else HOSTILE_ANSWER)
    if "person" in schema:
        return call(tool, person={"name": "Ada"})
    return default_responder(request)


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


@pytest.fixture
def silent_port() -> Iterator[socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    try:
        yield listener
    finally:
        listener.close()


async def submit_schema(api_url: str, owner: Account, agent_id: int, schema: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api_url, headers=owner.headers) as api:
        return await api.post(
            f"/api/agents/{agent_id}/agentic-executions/",
            json={
                "execution_key": "structured-task",
                "input": {"instructions": "Hostile.", "output_schema": schema},
            },
        )


async def durations(
    sessionmaker: async_sessionmaker[AsyncSession], ids: list[int], within: float
) -> list[float]:
    rows = await until(sessionmaker, ids, terminal, within=within)
    assert [(row.status, row.attempts) for row in rows] == [("finished", 1)] * len(ids)
    return [row.duration_seconds or 0.0 for row in rows]


async def test_a_hostile_schema_does_not_slow_the_other_tenant_down(
    stack: Stack,
    factory: Factory,
    mock_model: MockOpenAI,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
    silent_port: socket.socket,
) -> None:
    mock_model.latency = LATENCY
    mock_model.responder = answering
    api_url = await stack.api()
    await stack.worker("worker-1")
    await stack.worker("worker-2")
    other_owner, other_agent = await mock_agent(factory, mock_model.url)
    other = Submitter(api_url, other_owner, other_agent.id)
    hostile_owner, hostile_agent = await mock_agent(factory, mock_model.url)

    # The other tenant alone: its normal time.
    normal = await durations(sessionmaker, await other.submit(6, "Alone"), within=30)

    silent = f"http://127.0.0.1:{silent_port.getsockname()[1]}/person.json"
    remote = {"type": "object", "properties": {"person": {"$ref": silent}}}
    # Rows stored before the submit-time check existed: the workers check them again.
    stored = [
        await factory.execution(
            hostile_agent, hostile_owner, input={"instructions": "Stored.", "output_schema": s}
        )
        for s in (remote, nested(260))
    ]
    catastrophic = {"type": "object", "properties": {"code": {"pattern": CATASTROPHIC_PATTERN}}}
    hostile = []
    for _ in range(4):
        response = await submit_schema(api_url, hostile_owner, hostile_agent.id, catastrophic)
        assert response.status_code == 202, response.text
        hostile.append(response.json()["id"])
    for execution in stored:
        await enqueue_execution(queue, execution.id)
    started = time.monotonic()
    beside = await durations(sessionmaker, await other.submit(6, "Beside"), within=30)

    print(
        f"\nother tenant: median {statistics.median(normal):.2f} s alone, "
        f"{statistics.median(beside):.2f} s beside the hostile schemas "
        f"(max {max(normal):.2f} / {max(beside):.2f} s)"
    )
    assert max(beside) < max(normal) + 2.0
    rows = await until(sessionmaker, hostile, terminal, within=30)
    assert [(r.status, r.attempts, r.result) for r in rows] == [
        ("finished", 1, {"code": "aaaa"})
    ] * 4
    rows = await until(sessionmaker, [e.id for e in stored], terminal, within=30)
    assert [(r.failure_code, r.attempts) for r in rows] == [("invalid_output_schema", 1)] * 2
    assert time.monotonic() - started < 30
    # Nothing was run twice: each of the other tenant's executions asked the model once.
    counts = requests_per_label(mock_model)
    assert all(counts[f"{label} {n}."] == 1 for label in ("Alone", "Beside") for n in range(6))
    assert "Stored." not in counts
    refused = await submit_schema(api_url, hostile_owner, hostile_agent.id, remote)
    assert refused.status_code == 400
    assert "only local references" in refused.json()["input"]["output_schema"]
    with pytest.raises(BlockingIOError):
        silent_port.accept()  # nothing was fetched
