"""Status transitions, attempts after a worker died, and executions another worker ended."""

from datetime import UTC, datetime

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.executions.models import AgenticExecution
from app.executions.transitions import mark_failed, mark_in_progress
from tests.factories import Factory
from tests.worker.harness import Script, Worker, answer, reload, roles, trace


async def task(factory: Factory, **fields: object) -> AgenticExecution:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    return await factory.execution(
        agent, owner, input={"instructions": "Say hi.", "output_schema": None}, **fields
    )


async def test_execution_found_in_progress_is_run_again_as_a_second_attempt(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await task(factory, status="in_progress", attempts=1)

    status = await worker.run(execution.id, Script(answer({"hi": True})))

    assert status == "finished"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.attempts, done.result) == ("finished", 2, {"hi": True})
    messages = await trace(sessionmaker, execution.conversation_id)
    assert messages[0].role == "attempt"
    assert messages[0].content == "Attempt 2: an earlier attempt stopped before it finished."


async def test_execution_whose_worker_died_too_often_fails_as_worker_lost(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await task(factory, status="in_progress", attempts=2)
    script = Script()

    status = await worker.run(execution.id, script)

    assert status == "worker_lost"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code, done.attempts) == ("failed", "worker_lost", 2)
    assert done.failure_explanation == (
        "The worker running this execution stopped 2 times before it finished "
        "(crash, restart or lost connection); it is not tried again."
    )
    assert done.finished_at is not None
    assert script.requests == []


async def test_terminal_execution_is_left_alone(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    finished_at = datetime(2025, 4, 10, 14, 0, 16, tzinfo=UTC)
    execution = await task(
        factory, status="finished", result={"done": 1}, attempts=1, finished_at=finished_at
    )
    script = Script()

    status = await worker.run(execution.id, script)

    assert status == "already finished"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result, done.attempts, done.finished_at) == (
        "finished",
        {"done": 1},
        1,
        finished_at,
    )
    assert script.requests == []
    assert await trace(sessionmaker, execution.conversation_id) == []


async def test_unknown_execution_is_a_no_op(worker: Worker) -> None:
    assert await worker.run(12345, Script()) == "missing"


async def test_late_worker_cannot_overwrite_an_execution_ended_meanwhile(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await task(factory)

    async def answer_after_someone_else_ended_it(
        messages: list[ModelMessage], info: AgentInfo
    ) -> ModelResponse:
        async with sessionmaker() as session, session.begin():
            assert await mark_failed(session, execution.id, "worker_lost", "Taken over.")
        step = answer({"late": True})
        assert callable(step)
        return step(messages, info)

    status = await worker.run(execution.id, Script(answer_after_someone_else_ended_it))

    assert status == "superseded"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code, done.result) == ("failed", "worker_lost", None)
    # Nothing of the late answer is written: the attempt no longer held the execution.
    assert roles(await trace(sessionmaker, execution.conversation_id)) == ["system", "user"]


async def test_transitions_only_move_from_the_expected_status(
    factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await task(factory)
    usage = {"requests": 1, "input_tokens": 2, "output_tokens": 3}

    async with sessionmaker() as session, session.begin():
        # An attempt's end needs the execution in progress under that attempt.
        assert not await mark_failed(session, execution.id, "runtime_error", "Early.", attempt=1)
        assert await mark_in_progress(session, execution.id)
        assert not await mark_in_progress(session, execution.id)
        assert await mark_failed(session, execution.id, "runtime_error", "Failed.", usage)
        assert not await mark_failed(session, execution.id, "runtime_error", "Too late.")

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_explanation, done.usage, done.attempts) == (
        "failed",
        "Failed.",
        usage,
        1,
    )
    assert done.failure_code == "runtime_error"
    assert done.finished_at is not None
