"""A NUL character a model sends (``\\u0000`` in its JSON) is stored as U+FFFD, never refused.

PostgreSQL stores no NUL in text or jsonb; refused, the outcome's write failed, the execution
was run again and ended ``worker_lost``. The model here is tests/mock_openai.py over HTTP, so
the NUL arrives as a real provider sends it: escaped in the tool call's JSON arguments.
"""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import Factory
from tests.faults.conftest import mock_agent
from tests.mock_openai import MockOpenAI, Reply, call, tool_names
from tests.worker.harness import Worker, reload, roles, trace


def stopping(request: dict[str, Any]) -> Reply:
    return call("stop_execution", reason="No data for SKU\x00 42.")


def answering(request: dict[str, Any]) -> Reply:
    [result_tool] = [name for name in tool_names(request) if name.startswith("final_result")]
    # A NUL in a value and in a key; and the six characters \u0000, which are fine as they are.
    return call(result_tool, **{"text": "a\x00b", "ke\x00y": 1, "escaped": "\\u0000"})


async def run_with(
    responder: Any, worker: Worker, factory: Factory, mock_openai: MockOpenAI
) -> int:
    mock_openai.responder = responder
    owner, agent = await mock_agent(factory, mock_openai.url)
    execution = await factory.execution(
        agent, owner, input={"instructions": "Describe SKU 42.", "output_schema": None}
    )
    await worker.run(execution.id)
    return execution.id


async def test_a_nul_in_a_stop_execution_reason_fails_the_execution_once_with_it_replaced(
    worker: Worker,
    factory: Factory,
    mock_openai: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    execution_id = await run_with(stopping, worker, factory, mock_openai)

    done = await reload(sessionmaker, execution_id)
    assert (done.status, done.failure_code, done.attempts) == ("failed", "validation_failed", 1)
    assert done.failure_explanation == "No data for SKU\ufffd 42."
    assert len(mock_openai.requests) == 1
    messages = await trace(sessionmaker, done.conversation_id)
    assert roles(messages)[-2:] == ["tool_call", "failure"]
    assert messages[-1].content == "No data for SKU\ufffd 42."
    assert messages[-2].payload is not None
    assert messages[-2].payload["args"] == {"reason": "No data for SKU\ufffd 42."}


async def test_a_nul_in_the_result_is_stored_replaced_and_the_execution_finishes_once(
    worker: Worker,
    factory: Factory,
    mock_openai: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    execution_id = await run_with(answering, worker, factory, mock_openai)

    done = await reload(sessionmaker, execution_id)
    assert (done.status, done.failure_code, done.attempts) == ("finished", None, 1)
    assert done.result == {"text": "a\ufffdb", "ke\ufffdy": 1, "escaped": "\\u0000"}
    messages = await trace(sessionmaker, done.conversation_id)
    assert roles(messages)[-3:] == ["tool_call", "tool_result", "result"]
    assert messages[-3].payload is not None
    assert messages[-3].payload["args"] == done.result
    assert "\x00" not in messages[-3].content
