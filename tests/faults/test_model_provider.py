"""A model provider rate-limiting or timing out: bounded retries, then a failure that names it."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import Factory
from tests.faults.conftest import mock_agent
from tests.mock_openai import ErrorReply, MockOpenAI, Reply, default_responder
from tests.worker.harness import Worker, reload

RATE_LIMITED = ErrorReply(
    429, "Rate limit reached for requests. Try again in 0s.", headers={"Retry-After": "0"}
)


async def execution_for(factory: Factory, model_url: str) -> int:
    owner, agent = await mock_agent(factory, model_url)
    execution = await factory.execution(agent, owner, input={"instructions": "Say hi."})
    return execution.id


async def test_rate_limited_twice_then_answered_finishes(
    worker: Worker,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    answers: list[ErrorReply | Reply] = [RATE_LIMITED, RATE_LIMITED]

    def responder(request: dict[str, Any]) -> ErrorReply | Reply:
        return answers.pop(0) if answers else default_responder(request)

    mock_model.responder = responder
    execution_id = await execution_for(factory, mock_model.url)

    assert await worker.run(execution_id) == "finished"

    done = await reload(sessionmaker, execution_id)
    assert done.status == "finished"
    assert len(mock_model.requests) == 3
    assert done.usage is not None
    assert done.usage["requests"] == 1


async def test_always_rate_limited_fails_as_runtime_error_naming_the_429(
    worker: Worker,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mock_model.responder = lambda request: RATE_LIMITED
    execution_id = await execution_for(factory, mock_model.url)

    assert await worker.run(execution_id) == "failed"

    done = await reload(sessionmaker, execution_id)
    assert (done.status, done.failure_code) == ("failed", "runtime_error")
    assert done.failure_explanation == (
        "ModelRateLimitError: the model provider answered HTTP 429 (rate limited) for model mock."
    )
    # The first request and AGENTRUN_MODEL_MAX_RETRIES (2) retries.
    assert len(mock_model.requests) == 3


async def test_retries_and_request_timeout_follow_the_settings(
    worker: Worker,
    factory: Factory,
    mock_model: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    worker.state.models.settings = worker.state.settings.model_copy(
        update={"model_max_retries": 1, "model_timeout_seconds": 0.3}
    )
    mock_model.latency = 2
    execution_id = await execution_for(factory, mock_model.url)

    assert await worker.run(execution_id) == "failed"

    done = await reload(sessionmaker, execution_id)
    assert (done.failure_code, done.failure_explanation) == (
        "runtime_error",
        "ModelTimeoutError: Request timed out.",
    )
    assert len(mock_model.requests) == 2
