"""Usage and limits as a run meets them: the model is tests/mock_openai.py over HTTP, named as
a model genai-prices knows (gpt-4o-mini), so that cost is priced as a provider's would be."""

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.budgets.usage import MAX_COUNT
from app.executions.models import AgenticExecution, ExecutionStatus
from tests.factories import Account, Factory
from tests.mock_openai import MockOpenAI, Reply, call, tool_names
from tests.worker.harness import Script, Worker, answer, reload, roles, trace

PRICED_MODEL = "openai:gpt-4o-mini"
TASK = {"instructions": "Describe SKU 42.", "output_schema": None}


def result_tool(request: dict[str, Any]) -> str:
    return next(name for name in tool_names(request) if name.startswith("final_result"))


def answering(usage: dict[str, Any] | None = None, *, no_usage: bool = False) -> Any:
    def responder(request: dict[str, Any]) -> Reply:
        return Reply(
            tool_calls=[(result_tool(request), {"summary": "ok"})],
            usage=usage,
            no_usage=no_usage,
        )

    return responder


def dawdling(request: dict[str, Any]) -> Reply:
    """Never gives a result: text, which pydantic-ai answers with a retry prompt."""
    return Reply(content="Let me think about it.", usage=tokens(1000, 50))


def tokens(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def priced_execution(
    factory: Factory,
    model_url: str,
    *,
    agent_limits: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
) -> tuple[Account, int]:
    owner = await factory.account()
    agent = await factory.agent(
        await factory.dataset(owner),
        agent_type="structured-task",
        model_settings={"name": PRICED_MODEL, "base_url": model_url},
        limits=agent_limits,
    )
    execution = await factory.execution(agent, owner, input=TASK, limits=limits)
    return owner, execution.id


async def read(client: AsyncClient, owner: Account, execution_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/agentic-executions/{execution_id}/", headers=owner.headers)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_a_finished_execution_shows_its_usage_with_the_cost_of_a_priced_model(
    worker: Worker, factory: Factory, mock_openai: MockOpenAI, client: AsyncClient
) -> None:
    mock_openai.responder = answering(tokens(1000, 100))
    owner, execution_id = await priced_execution(factory, mock_openai.url)

    assert await worker.run(execution_id) == "finished"

    usage = (await read(client, owner, execution_id))["usage"]
    # gpt-4o-mini: 0.15 USD per million input tokens, 0.60 per million output tokens.
    assert usage == {
        "requests": 1,
        "input_tokens": 1000,
        "output_tokens": 100,
        "cost": pytest.approx(1000 * 0.15e-6 + 100 * 0.6e-6),
    }


async def test_an_unpriced_model_shows_its_usage_with_cost_null(
    worker: Worker, factory: Factory, client: AsyncClient
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    execution = await factory.execution(agent, owner, input=TASK)

    await worker.run(execution.id, Script(answer({"summary": "ok"})))

    usage = (await read(client, owner, execution.id))["usage"]
    assert usage["requests"] == 1
    assert usage["input_tokens"] > 0
    assert usage["cost"] is None


async def test_a_failed_execution_shows_the_usage_it_reached(
    worker: Worker, factory: Factory, mock_openai: MockOpenAI, client: AsyncClient
) -> None:
    mock_openai.responder = lambda request: call("stop_execution", reason="No such SKU.")
    owner, execution_id = await priced_execution(factory, mock_openai.url)

    assert await worker.run(execution_id) == "failed"

    body = await read(client, owner, execution_id)
    assert body["failure_code"] == "validation_failed"
    assert body["usage"]["requests"] == 1
    assert body["usage"]["input_tokens"] > 0
    assert body["usage"]["cost"] > 0


async def test_a_pending_execution_shows_zero_usage(
    factory: Factory, mock_openai: MockOpenAI, client: AsyncClient
) -> None:
    owner, execution_id = await priced_execution(factory, mock_openai.url)

    usage = (await read(client, owner, execution_id))["usage"]

    assert usage == {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost": None}


async def test_more_model_requests_than_the_limit_fail_budget_exceeded(
    worker: Worker,
    factory: Factory,
    mock_openai: MockOpenAI,
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_openai.responder = dawdling
    owner, execution_id = await priced_execution(
        factory, mock_openai.url, limits={"max_model_requests": 2}
    )

    assert await worker.run(execution_id) == "failed"

    body = await read(client, owner, execution_id)
    assert body["failure_code"] == "budget_exceeded"
    assert "max_model_requests of the execution is 2" in body["failure_explanation"]
    assert "made 2 model requests" in body["failure_explanation"]
    assert body["usage"]["requests"] == 2
    assert len(mock_openai.requests) == 2
    messages = await trace(sessionmaker, body["conversation"])
    assert roles(messages)[-1] == "failure"
    assert messages[-1].payload == {"failure_code": "budget_exceeded", "attempt": 1}


async def test_more_tokens_than_the_limit_fail_budget_exceeded(
    worker: Worker, factory: Factory, mock_openai: MockOpenAI, client: AsyncClient
) -> None:
    mock_openai.responder = dawdling
    owner, execution_id = await priced_execution(
        factory, mock_openai.url, limits={"max_total_tokens": 1500}
    )

    await worker.run(execution_id)

    body = await read(client, owner, execution_id)
    assert body["failure_code"] == "budget_exceeded"
    # 1050 tokens after the first answer, 2100 after the second: stopped there.
    assert "max_total_tokens of the execution is 1500" in body["failure_explanation"]
    assert "used 2100 tokens" in body["failure_explanation"]
    assert body["usage"]["requests"] == 2
    assert body["usage"]["input_tokens"] + body["usage"]["output_tokens"] == 2100


async def test_more_cost_than_the_limit_fails_budget_exceeded(
    worker: Worker, factory: Factory, mock_openai: MockOpenAI, client: AsyncClient
) -> None:
    mock_openai.responder = dawdling
    # Each answer costs 1000 * 0.15e-6 + 50 * 0.6e-6 = 0.00018 USD.
    owner, execution_id = await priced_execution(
        factory, mock_openai.url, limits={"max_cost": 0.0005}
    )

    await worker.run(execution_id)

    body = await read(client, owner, execution_id)
    assert body["failure_code"] == "budget_exceeded"
    assert "max_cost of the execution is 0.0005 USD" in body["failure_explanation"]
    assert "cost 0.00054 USD" in body["failure_explanation"]
    assert body["usage"]["requests"] == 3
    assert body["usage"]["cost"] == pytest.approx(0.00054)


@pytest.mark.parametrize(
    ("agent_limits", "limits", "named"),
    [
        ({"max_model_requests": 5}, {"max_model_requests": 2}, "of the execution is 2"),
        ({"max_model_requests": 1}, {"max_model_requests": 3}, "of the agent is 1"),
        ({"max_model_requests": 2}, None, "of the agent is 2"),
    ],
)
async def test_the_stricter_of_the_agents_and_the_executions_limit_applies(
    agent_limits: dict[str, Any],
    limits: dict[str, Any] | None,
    named: str,
    worker: Worker,
    factory: Factory,
    mock_openai: MockOpenAI,
    client: AsyncClient,
) -> None:
    mock_openai.responder = dawdling
    owner, execution_id = await priced_execution(
        factory, mock_openai.url, agent_limits=agent_limits, limits=limits
    )

    await worker.run(execution_id)

    body = await read(client, owner, execution_id)
    assert body["failure_code"] == "budget_exceeded"
    assert f"max_model_requests {named}" in body["failure_explanation"]


async def test_a_run_within_its_limits_finishes(
    worker: Worker, factory: Factory, mock_openai: MockOpenAI
) -> None:
    mock_openai.responder = answering(tokens(100, 10))
    _, execution_id = await priced_execution(
        factory,
        mock_openai.url,
        agent_limits={"max_total_tokens": 1000},
        limits={"max_model_requests": 1, "max_cost": 1.0},
    )

    assert await worker.run(execution_id) == "finished"


async def test_a_model_answering_huge_usage_numbers_still_finishes_with_usage_capped(
    worker: Worker, factory: Factory, mock_openai: MockOpenAI, client: AsyncClient
) -> None:
    mock_openai.responder = answering(tokens(10**30, 10**40))
    owner, execution_id = await priced_execution(factory, mock_openai.url)

    assert await worker.run(execution_id) == "finished"

    body = await read(client, owner, execution_id)
    assert body["usage"]["input_tokens"] == body["usage"]["output_tokens"] == MAX_COUNT
    assert body["usage"]["requests"] == 1
    listed = await client.get("/api/agentic-executions/", headers=owner.headers)
    assert listed.json()["results"][0]["usage"] == body["usage"]


# pydantic-ai warns that limits cannot be held to unmeasured usage: that is the point here.
@pytest.mark.filterwarnings("ignore:Some responses omitted usage information")
async def test_a_model_answering_without_usage_still_finishes_with_zero_tokens(
    worker: Worker, factory: Factory, mock_openai: MockOpenAI, client: AsyncClient
) -> None:
    mock_openai.responder = answering(no_usage=True)
    owner, execution_id = await priced_execution(
        factory, mock_openai.url, limits={"max_total_tokens": 10, "max_cost": 0.01}
    )

    assert await worker.run(execution_id) == "finished"

    usage = (await read(client, owner, execution_id))["usage"]
    assert usage == {"requests": 1, "input_tokens": 0, "output_tokens": 0, "cost": None}


async def test_a_next_attempt_counts_on_from_the_usage_of_the_earlier_one(
    worker: Worker,
    factory: Factory,
    mock_openai: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_openai.responder = answering(tokens(1000, 100))
    _, execution_id = await priced_execution(
        factory, mock_openai.url, limits={"max_model_requests": 1}
    )
    # Attempt 1 got one answer into the trace (as workers/run/transcript.py writes a response's
    # first entry), then its worker died: in_progress, attempt 1, no heartbeat.
    async with sessionmaker() as session:
        execution = await session.get(AgenticExecution, execution_id)
        assert execution is not None
        execution.status = ExecutionStatus.IN_PROGRESS
        execution.attempts = 1
        await session.commit()
    await factory.message(
        execution.conversation_id,
        "assistant",
        "An earlier answer.",
        payload={
            "model_name": "gpt-4o-mini",
            "usage": {"input_tokens": 500, "output_tokens": 20, "cost": 0.0001},
        },
    )

    assert await worker.run(execution_id) == "failed"

    done = await reload(sessionmaker, execution_id)
    assert (done.failure_code, done.attempts) == ("budget_exceeded", 2)
    assert done.usage == {
        "requests": 1,
        "input_tokens": 500,
        "output_tokens": 20,
        "cost": pytest.approx(0.0001),
    }
    # The budget was spent by the first attempt: the second asks the model nothing.
    assert mock_openai.requests == []


async def test_no_failure_summary_is_asked_for_once_the_budget_is_spent(
    worker: Worker, factory: Factory, client: AsyncClient
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    person = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    execution = await factory.execution(
        agent,
        owner,
        input={"instructions": "Ada's age?", "output_schema": person},
        limits={"max_model_requests": 4},
    )
    wrong = answer({"name": "Ada"})
    # One answer and three retries exhaust the retries, and the budget with them.
    script = Script(wrong, wrong, wrong, wrong, summary="Not asked.")

    await worker.run(execution.id, script)

    body = await read(client, owner, execution.id)
    assert body["failure_code"] == "max_retries_exceeded"
    assert body["failure_explanation"].startswith("The model could not satisfy the validators")
    assert script.summary_requests == 0
    assert body["usage"]["requests"] == 4
