"""A retried execution runs as a new one: the retry of a failed run finishes on its own."""

from httpx import AsyncClient
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import Factory
from tests.worker.harness import Script, Worker, answer, call, trace

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


async def test_a_retry_with_resume_replays_what_the_failed_run_did_and_asks_only_the_rest(
    worker: Worker,
    factory: Factory,
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner = await factory.account()
    dataset = await factory.dataset(owner)
    await factory.product(dataset, "SKU-001")
    agent = await factory.agent(dataset, agent_type="catalog-enrichment")
    given = {"skus": ["SKU-001"], "additional_instructions": None}
    failed = await factory.execution(agent, owner, input=given)
    first = Script(call("update_product", sku="SKU-001", name="Mug"), provider_down)
    assert await worker.run(failed.id, first) == "failed"

    retried = await client.post(
        f"/api/agentic-executions/{failed.id}/retry/",
        json={"resume": True},
        headers=owner.headers,
    )
    assert retried.status_code == 202
    assert retried.json()["resume_from"] == failed.id
    rest = Script(answer({"SKU-001": "Product updated successfully"}))
    assert await worker.run(retried.json()["id"], rest) == "finished"

    # The new run was asked only the request the failed one never got answered, and it saw
    # the update the failed run had made: the tool was not run again.
    assert len(rest.requests) == 1
    [asked] = rest.requests
    assert [m.kind for m in asked].count("response") == 1
    new_trace = await trace(sessionmaker, retried.json()["conversation"])
    [tool_result] = [
        m for m in new_trace if m.role == "tool_result" and m.tool_name == "update_product"
    ]
    assert tool_result.payload["replayed"] is True
    resumed = next(m for m in new_trace if m.role == "attempt")
    assert resumed.payload["resumes_execution"] == failed.id
    done = await client.get(
        f"/api/agentic-executions/{retried.json()['id']}/", headers=owner.headers
    )
    assert done.json()["result"] == {"SKU-001": "Product updated successfully"}
    # Its usage counts the replayed response and the new one.
    assert done.json()["usage"]["requests"] == 2
