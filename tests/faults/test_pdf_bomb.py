"""A tenant uploading PDF bombs, beside a tenant whose executions read a small text file: the
real API and worker processes, the model served by tests/mock_openai.py.

Each model reads the execution's file (``read_file``), then answers.
"""

import asyncio
import json
import re
import time
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import Account, Factory
from tests.faults.conftest import Stack, requests_per_label, terminal, until
from tests.mock_openai import MockOpenAI, Reply, call, default_responder
from tests.pdfs import pdf_bomb

NOTE = b"SKU-001 is blue"  # 16 bytes with the newline
BOMBS = 6
OTHERS = 4


def reading_responder(request: dict[str, Any]) -> Reply:
    """Read the execution's file first, then answer through the result tool."""
    if any(message["role"] == "tool" for message in request["messages"]):
        return default_responder(request)
    prompt = next(m["content"] for m in request["messages"] if m["role"] == "user")
    filename = re.search(r"^- (\S+) \(", str(prompt), re.MULTILINE)
    assert filename is not None, prompt
    return call("read_file", filename=filename[1])


def tool_answers(mock: MockOpenAI) -> dict[str, str]:
    """What ``read_file`` answered, by the execution's instructions."""
    answers = {}
    for request in mock.requests:
        messages = request["messages"]
        prompt = next(m["content"] for m in messages if m["role"] == "user")
        label = str(prompt).split("Instructions:\n", 1)[-1].split("\n", 1)[0]
        for message in messages:
            if message["role"] == "tool":
                answers[label] = message["content"]
    return answers


async def file_agent(factory: Factory, model_url: str) -> tuple[Account, int]:
    owner = await factory.account()
    agent = await factory.agent(
        await factory.dataset(owner),
        agent_type="structured-task",
        file_upload=True,
        model_settings={"name": "openai:mock", "base_url": model_url},
    )
    return owner, agent.id


async def submit(
    api_url: str, account: Account, agent_id: int, label: str, filename: str, data: bytes
) -> tuple[int, float]:
    """Start one execution with one file; its id and how long the POST took."""
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=api_url, headers=account.headers, timeout=60) as api:
        response = await api.post(
            f"/api/agents/{agent_id}/agentic-executions/",
            data={"execution_key": "structured-task", "input": json.dumps({"instructions": label})},
            files=[("files[]", (filename, data, "application/octet-stream"))],
        )
    assert response.status_code == 202, response.text
    return response.json()["id"], time.monotonic() - began


async def other_tenant_run(
    stack: Stack, sessionmaker: async_sessionmaker[AsyncSession], account: Account, agent: int,
    phase: str,
) -> list[float]:  # fmt: skip
    """Submit ``OTHERS`` executions reading a 16-byte file, one after the other; each one's
    time from the POST to its result."""
    latencies = []
    for number in range(OTHERS):
        began = time.monotonic()
        execution_id, _ = await submit(
            stack.api_url, account, agent, f"{phase} {number}.", "notes.txt", NOTE + b"\n"
        )
        await until(sessionmaker, [execution_id], terminal, within=60)
        latencies.append(time.monotonic() - began)
    return latencies


async def test_pdf_bombs_do_not_delay_another_tenants_executions(
    stack: Stack,
    mock_model: MockOpenAI,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_model.responder = reading_responder
    stack.overrides = {"extraction_cpu_seconds": 2, "extraction_timeout_seconds": 30}
    await stack.api()
    await stack.worker()
    bomber, bomb_agent = await file_agent(factory, mock_model.url)
    other, other_agent = await file_agent(factory, mock_model.url)

    await other_tenant_run(stack, sessionmaker, other, other_agent, "Warm-up")
    alone = await other_tenant_run(stack, sessionmaker, other, other_agent, "Alone")
    bombs = asyncio.gather(
        *(
            submit(stack.api_url, bomber, bomb_agent, f"Bomb {n}.", "bomb.pdf", pdf_bomb())
            for n in range(BOMBS)
        )
    )
    await asyncio.sleep(0.5)  # the API is extracting the bombs
    beside_bombs = await other_tenant_run(stack, sessionmaker, other, other_agent, "Beside")
    submitted = await bombs

    bomb_ids = [execution_id for execution_id, _ in submitted]
    rows = await until(sessionmaker, bomb_ids, terminal, within=60)
    print(f"other tenant alone {alone}, beside bombs {beside_bombs}")
    print(f"bomb POSTs {[round(seconds, 2) for _, seconds in submitted]}")
    # Normal time: within a generous bound of the time alone (the bombs' children still share
    # the machine's cores), far below one bomb's unlimited 16 s of CPU.
    assert max(beside_bombs) < max(3 * max(alone), max(alone) + 2.0)
    assert {row.status for row in rows} == {"finished"}
    assert {row.attempts for row in rows} == {1}
    answers = tool_answers(mock_model)
    assert {answers[f"Bomb {n}."] for n in range(BOMBS)} == {
        "Could not extract text from 'bomb.pdf': it needed more than the 2-second CPU limit."
    }
    assert {answers[f"Beside {n}."] for n in range(OTHERS)} == {(NOTE + b"\n").decode()}
    # Nothing run twice: one read and one answer an execution.
    assert set(requests_per_label(mock_model).values()) == {2}
