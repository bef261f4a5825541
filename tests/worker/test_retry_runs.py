"""A retried execution runs as a new one: the retry of a failed run finishes on its own."""

from httpx import AsyncClient
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel

from tests.factories import Factory
from tests.worker.harness import Script, Worker, answer

TASK = {"instructions": "Describe Ada.", "output_schema": None}


def provider_down(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    raise ConnectionError("the provider is down")


async def test_the_retry_of_a_runtime_error_finishes_and_both_show_their_usage(
    worker: Worker, factory: Factory, client: AsyncClient
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type="structured-task")
    failed = await factory.execution(agent, owner, input=TASK)
    assert await worker.run(failed.id, FunctionModel(provider_down)) == "failed"

    for resume in (False, True):
        retried = await client.post(
            f"/api/agentic-executions/{failed.id}/retry/",
            json={"resume": resume},
            headers=owner.headers,
        )
        assert retried.status_code == 202
        new_id = retried.json()["id"]

        # Until the run's history is seeded from the earlier execution, a resumed retry runs
        # from the start too.
        assert await worker.run(new_id, Script(answer({"summary": "Ada"}))) == "finished"

        done = await client.get(f"/api/agentic-executions/{new_id}/", headers=owner.headers)
        assert done.json()["result"] == {"summary": "Ada"}
        assert done.json()["usage"]["requests"] == 1
    old = await client.get(f"/api/agentic-executions/{failed.id}/", headers=owner.headers)
    assert old.json()["failure_code"] == "runtime_error"
    assert len(old.json()["retried_by"]) == 2
    # Its model never answered: nothing was used.
    assert old.json()["usage"]["requests"] == 0
