"""How a run ends: result, retries, exhausted retries, errors and the time limit."""

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.definitions.base import ExecutionDefinition
from app.definitions.run import ExecutionRun
from app.definitions.validators import Fail, Verdict
from tests.factories import Factory
from tests.worker.harness import Script, Worker, answer, reload, roles, trace
from workers.run.loop import run_definition
from workers.run.transcript import Transcript

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


async def structured_task(factory: Factory, schema: dict[str, Any] | None = PERSON) -> Any:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    return await factory.execution(
        agent, owner, input={"instructions": "Describe Ada.", "output_schema": schema}
    )


async def test_valid_result_finishes_with_result_usage_and_trace(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await structured_task(factory)

    status = await worker.run(execution.id, Script(answer({"name": "Ada", "age": 36})))

    assert status == "finished"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result, done.failure_code) == (
        "finished",
        {"name": "Ada", "age": 36},
        None,
    )
    assert done.attempts == 1
    assert done.finished_at is not None
    assert done.duration_seconds is not None
    assert done.duration_seconds > 0
    assert done.usage is not None
    assert done.usage["requests"] == 1
    assert done.usage["input_tokens"] > 0
    assert done.usage["output_tokens"] > 0
    messages = await trace(sessionmaker, execution.conversation_id)
    assert roles(messages) == ["system", "user", "tool_call", "tool_result", "result"]
    assert "Describe Ada." in messages[1].content
    assert messages[2].tool_name == "final_result"
    assert messages[2].payload is not None
    assert messages[2].payload["args"]["name"] == "Ada"
    assert [m.created_at for m in messages] == sorted(m.created_at for m in messages)


async def test_result_failing_a_validator_is_retried_with_its_feedback(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await structured_task(factory)
    script = Script(answer({"name": "Ada", "age": "old"}), answer({"name": "Ada", "age": 36}))

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"name": "Ada", "age": 36})
    assert done.usage is not None
    assert done.usage["requests"] == 2
    messages = await trace(sessionmaker, execution.conversation_id)
    assert roles(messages) == [
        "system",
        "user",
        "tool_call",
        "validation",
        "retry",
        "tool_call",
        "tool_result",
        "result",
    ]
    assert 'at $.age: "old" is not of type "integer"' in messages[3].content
    assert messages[4].content == messages[3].content
    # The model saw the feedback in its second request.
    assert 'is not of type "integer"' in str(script.requests[1][-1])


async def test_the_model_is_sent_each_message_once(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await structured_task(factory)
    script = Script(answer({"name": "Ada", "age": "old"}), answer({"name": "Ada", "age": 36}))

    await worker.run(execution.id, script)

    def parts(request: list[ModelMessage]) -> list[list[str]]:
        return [[part.part_kind for part in message.parts] for message in request]

    # The prompt; then the prompt, the answer and the feedback on it: nothing twice (a prompt
    # sent again costs its tokens again at every request).
    assert [parts(request) for request in script.requests] == [
        [["system-prompt", "user-prompt"]],
        [["system-prompt", "user-prompt"], ["tool-call"], ["tool-return"]],
    ]


async def test_exhausted_retries_fail_with_the_models_own_summary(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await structured_task(factory)
    wrong = answer({"name": "Ada"})
    script = Script(wrong, wrong, wrong, wrong, summary="I never knew Ada's age.")

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code) == ("failed", "max_retries_exceeded")
    assert done.failure_explanation == "I never knew Ada's age."
    assert done.result is None
    assert done.finished_at is not None
    # One answer and three retries (max_retries=3), then the summary request.
    assert len(script.requests) == 4
    assert script.summary_requests == 1
    assert done.usage is not None
    assert done.usage["requests"] == 5
    messages = await trace(sessionmaker, execution.conversation_id)
    assert roles(messages).count("validation") == 4
    assert roles(messages)[-3:] == ["user", "assistant", "failure"]
    assert messages[-2].content == "I never knew Ada's age."
    assert messages[-1].payload == {"failure_code": "max_retries_exceeded", "attempt": 1}


async def test_without_a_summary_the_explanation_is_the_last_feedback(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await structured_task(factory)
    wrong = answer({"name": "Ada"})
    script = Script(wrong, wrong, wrong, wrong, summary=RuntimeError("provider gone"))

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert done.failure_code == "max_retries_exceeded"
    assert done.failure_explanation is not None
    assert done.failure_explanation.startswith(
        "The model could not satisfy the validators after 3 retries. Last feedback:"
    )
    assert '"age" is a required property' in done.failure_explanation


async def test_unexpected_exception_is_a_runtime_error_naming_it(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await structured_task(factory)

    def broken(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise KeyError("boom")

    await worker.run(execution.id, FunctionModel(broken))

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code) == ("failed", "runtime_error")
    assert done.failure_explanation == "KeyError: 'boom'"
    messages = await trace(sessionmaker, execution.conversation_id)
    assert roles(messages) == ["system", "user", "failure"]


async def test_run_past_the_time_limit_fails_saying_so(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    worker.state.settings = worker.state.settings.model_copy(
        update={"execution_timeout_seconds": 0.2}
    )
    execution = await structured_task(factory)

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    started = asyncio.get_running_loop().time()
    await worker.run(execution.id, FunctionModel(slow))

    assert asyncio.get_running_loop().time() - started < 2
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code) == ("failed", "runtime_error")
    assert done.failure_explanation == "TimeoutError: the execution timed out after 0.2 seconds."


async def test_invalid_output_schema_fails_before_any_model_call(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await structured_task(factory, schema={"type": "thing"})
    script = Script()

    await worker.run(execution.id, script)

    done = await reload(sessionmaker, execution.id)
    assert done.failure_code == "invalid_output_schema"
    assert done.failure_explanation is not None
    assert done.failure_explanation.startswith("output_schema is not a valid JSON schema")
    assert script.requests == []


async def test_non_object_schema_result_is_stored_unwrapped(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 2}
    execution = await structured_task(factory, schema=schema)

    await worker.run(
        execution.id, Script(answer({"result": ["a"]}), answer({"result": ["a", "b"]}))
    )

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", ["a", "b"])


async def test_without_schema_any_object_is_the_result(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await structured_task(factory, schema=None)

    await worker.run(execution.id, Script(answer({"anything": [1, 2]})))

    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"anything": [1, 2]})


async def test_a_value_postgresql_refuses_fails_the_execution_at_its_first_attempt(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # jsonb refuses Infinity (no JSON number): the trace cannot store the model's answer, and
    # the execution ends at once as a runtime_error rather than being run again.
    execution = await structured_task(factory, schema=None)

    status = await worker.run(execution.id, Script(answer({"x": float("inf")})))

    assert status == "failed"
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code, done.result) == ("failed", "runtime_error", None)
    assert done.attempts == 1
    assert done.failure_explanation is not None
    # PostgreSQL's own words, not the statement and its parameters around them.
    assert 'Token "Infinity" is invalid' in done.failure_explanation
    assert "INSERT" not in done.failure_explanation
    assert done.usage is not None
    assert done.usage["requests"] == 1
    messages = await trace(sessionmaker, execution.conversation_id)
    assert roles(messages) == ["system", "user", "failure"]


def refuse_without_code(run: ExecutionRun, output: Any) -> Verdict:
    return Fail("Refused, for no stated reason.", code=None)


def refuse_out_of_stock(run: ExecutionRun, output: Any) -> Verdict:
    return Fail("Nothing left to sell.", code="out_of_stock")


class NoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


async def test_validator_failure_without_code_is_unknown_and_own_codes_are_kept(
    factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await structured_task(factory)
    outcomes = []
    for validator in (refuse_without_code, refuse_out_of_stock):

        class Definition(ExecutionDefinition):
            key = agent_type = name = "refusing"
            Input = NoInput
            validators = (validator,)

        run = ExecutionRun(
            execution_id=execution.id,
            agent_id=execution.agent_id,
            dataset_id=0,
            user_id=execution.user_id,
            conversation_id=execution.conversation_id,
            input=NoInput(),
            sessionmaker=sessionmaker,
            media_root=factory.settings.media_root,
        )
        outcomes.append(
            await run_definition(
                Definition(),
                run,
                Script(answer({"x": 1})).model,
                Transcript(
                    sessionmaker, execution.conversation_id, execution_id=execution.id, attempt=1
                ),
                timeout_seconds=5,
            )
        )

    assert [(o.failure_code, o.failure_explanation) for o in outcomes] == [
        ("unknown", "Refused, for no stated reason."),
        ("out_of_stock", "Nothing left to sell."),
    ]
