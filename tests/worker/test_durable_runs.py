"""Durable runs: an attempt that takes over an interrupted execution replays its journal (model
responses and tool results) instead of asking the model and running the tools again, and treats
a tool call left without a result as the tool declared (app/definitions/effects.py)."""

import asyncio
from collections.abc import Callable
from typing import Any

from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.catalog.models import Dataset, Product
from app.definitions.inputs import read_stored_input
from app.definitions.registry import find_definition
from app.definitions.run import ExecutionRun
from app.executions.models import AgenticExecution
from app.journal.models import ExecutionStep
from app.journal.repository import load_resume_state, load_steps
from tests.factories import Factory
from tests.worker.harness import Script, Step, Worker, answer, call, reload, trace
from tests.worker.test_catalog_enrichment import enrichment
from tests.worker.test_invoice_scanning import UPDATED as STOCK_UPDATED
from tests.worker.test_invoice_scanning import invoice_run
from workers.run.claim import claim_pending
from workers.run.database import in_one_statement
from workers.run.durability import RunJournal
from workers.run.loop import run_definition
from workers.run.transcript import Transcript

UPDATED = "Product updated successfully"


class Interrupted:
    """A model playing ``steps``, then hanging on the next request (its worker is about to be
    stopped): ``hanging`` is set once it does."""

    def __init__(self, *steps: Step) -> None:
        self.script = Script(*steps)
        self.hanging = asyncio.Event()

    async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if self.script.steps:
            return self.script(messages, info)
        self.hanging.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    @property
    def model(self) -> FunctionModel:
        return FunctionModel(self)


async def interrupt(worker: Worker, execution_id: int, model: FunctionModel, when: Any) -> None:
    """Run the first attempt until ``when`` (an awaitable) is done, then stop it as a worker that
    shuts down does: the execution is handed back for the next attempt."""
    job = asyncio.create_task(worker.run(execution_id, model))
    waiting = asyncio.ensure_future(when)
    done, _ = await asyncio.wait({job, waiting}, return_when=asyncio.FIRST_COMPLETED)
    assert waiting in done, "the first attempt ended before it was interrupted"
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)


async def journal(
    sessionmaker: async_sessionmaker[AsyncSession], execution_id: int
) -> list[tuple[int, str, int, bool]]:
    """(step, "model" or the tool's name, attempt, finished) of each row, in order."""
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(ExecutionStep)
            .where(ExecutionStep.execution_id == execution_id)
            .order_by(ExecutionStep.step, ExecutionStep.started_at)
        )
        return [
            (r.step, "model" if r.kind == "model" else r.name, r.attempt, r.finished_at is not None)
            for r in rows
        ]


async def a_tool_waits_for_the_lock(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    # A new transaction each time: pg_stat_activity is a snapshot per transaction.
    for _ in range(400):
        async with sessionmaker() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'SELECT products%'"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no tool waits for the lock")


async def product(
    sessionmaker: async_sessionmaker[AsyncSession], dataset: Dataset, sku: str
) -> Product:
    async with sessionmaker() as session:
        found = await session.scalar(
            select(Product).where(Product.dataset_id == dataset.id, Product.sku == sku)
        )
        assert found is not None
        return found


def tool_returns(messages: list[ModelMessage]) -> dict[str, Any]:
    return {
        part.tool_name: part.content
        for message in messages
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    }


def replying(check: Callable[[list[ModelMessage]], None], then: Step) -> Step:
    """A step that checks the request it answers."""

    def step(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        check(messages)
        return then if isinstance(then, ModelResponse) else then(messages, info)

    return step


async def two_skus(factory: Factory) -> tuple[Dataset, AgenticExecution]:
    return await enrichment(
        factory, ["SKU-001", "SKU-002"], **{"SKU-001": {"name": "Mug"}, "SKU-002": {}}
    )


async def test_a_resumed_run_asks_the_model_only_what_it_was_not_asked_and_writes_once(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dataset, execution = await two_skus(factory)
    first = Interrupted(
        call("read_products", skus=["SKU-001", "SKU-002"]),
        call("update_product", sku="SKU-001", description="A white mug."),
    )
    await interrupt(worker, execution.id, first.model, first.hanging.wait())
    assert len(first.script.requests) == 2

    second = Script(
        replying(
            lambda messages: None,
            call("update_product", sku="SKU-002", name="Teapot", description="A teapot."),
        ),
        answer({"SKU-001": UPDATED, "SKU-002": UPDATED}),
    )
    status = await worker.run(execution.id, second)

    assert status == "finished"
    done = await reload(sessionmaker, execution.id)
    assert (done.attempts, done.result) == (2, {"SKU-001": UPDATED, "SKU-002": UPDATED})
    # The second attempt was asked the third request only, with the first attempt's results.
    assert len(second.requests) == 2
    asked = second.requests[0]
    assert [m.kind for m in asked].count("response") == 2
    assert tool_returns(asked)["update_product"] == "Product SKU-001 updated."
    # Each step was done once, by the attempt that did it first.
    assert await journal(sessionmaker, execution.id) == [
        (1, "model", 1, True),
        (1, "read_products", 1, True),
        (2, "model", 1, True),
        (2, "update_product", 1, True),
        (3, "model", 2, True),
        (3, "update_product", 2, True),
        (4, "model", 2, True),
    ]
    assert (await product(sessionmaker, dataset, "SKU-001")).description == "A white mug."
    # The trace: each entry says which attempt wrote it; the resume is noted where it happened,
    # and what the first attempt wrote is not written again.
    messages = await trace(sessionmaker, execution.conversation_id)
    attempts = [(m.role, (m.payload or {}).get("attempt")) for m in messages]
    assert attempts[:6] == [
        ("system", 1),
        ("user", 1),
        ("tool_call", 1),
        ("tool_result", 1),
        ("tool_call", 1),
        ("tool_result", 1),
    ]
    assert ("attempt", 2) in attempts
    resumed = next(m for m in messages if m.role == "attempt" and m.payload["attempt"] == 2)
    assert resumed.payload["resumed"] is True
    assert "resumes from the journal" in resumed.content
    after = messages[messages.index(resumed) + 1 :]
    assert [m.role for m in after][:2] == ["tool_result", "tool_call"]
    assert after[0].payload == {"outcome": "success", "attempt": 2, "replayed": True}
    assert all((m.payload or {}).get("attempt") == 2 for m in after)


async def test_validators_see_the_writes_a_resumed_run_replayed(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # claims_match_updates checks that update_product ran in this run: the replayed call counts.
    _, execution = await enrichment(factory, ["SKU-001"], **{"SKU-001": {}})
    first = Interrupted(call("update_product", sku="SKU-001", name="Mug", description="A mug."))
    await interrupt(worker, execution.id, first.model, first.hanging.wait())

    second = Script(answer({"SKU-001": UPDATED}))
    assert await worker.run(execution.id, second) == "finished"
    assert len(second.requests) == 1


async def test_an_at_most_once_tool_left_without_result_is_not_run_again_and_the_model_is_told(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dataset, execution = await enrichment(factory, ["SKU-001"], **{"SKU-001": {"name": "Old"}})
    first = Script(call("update_product", sku="SKU-001", name="First"))
    async with sessionmaker() as holder, holder.begin():
        # The product is locked: update_product waits inside, after its journal row.
        await holder.execute(
            select(Product).where(Product.dataset_id == dataset.id).with_for_update()
        )
        await interrupt(
            worker,
            execution.id,
            first.model,
            a_tool_waits_for_the_lock(sessionmaker),
        )
    assert await journal(sessionmaker, execution.id) == [
        (1, "model", 1, True),
        (1, "update_product", 1, False),
    ]

    def told_to_check(messages: list[ModelMessage]) -> None:
        said = tool_returns(messages)["update_product"]
        assert "may or may not have been applied" in said
        assert "attempt 1" in said

    second = Script(
        replying(told_to_check, call("read_products", skus=["SKU-001"])),
        answer({"SKU-001": "Not updated: the earlier attempt's write was not applied."}),
    )
    assert await worker.run(execution.id, second) == "finished"
    assert len(second.requests) == 2
    # Not run again: the interrupted write never committed, and nothing wrote since.
    assert (await product(sessionmaker, dataset, "SKU-001")).name == "Old"
    rows = await journal(sessionmaker, execution.id)
    # The uncertain call is journaled with what the model was told, by the attempt that told it.
    assert rows[1] == (1, "update_product", 2, True)


async def test_an_idempotent_tool_left_without_result_runs_again(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dataset, execution = await invoice_run(factory, ["SKU-001"])
    receive = call("update_stock_levels", items=[{"sku": "SKU-001", "quantity": 3}])
    async with sessionmaker() as holder, holder.begin():
        await holder.execute(
            select(Product).where(Product.dataset_id == dataset.id).with_for_update()
        )
        await interrupt(
            worker,
            execution.id,
            Script(receive).model,
            a_tool_waits_for_the_lock(sessionmaker),
        )
    # update_stock_levels is idempotent: nothing is journaled before it runs.
    assert await journal(sessionmaker, execution.id) == [(1, "model", 1, True)]

    second = Script(answer({"SKU-001": STOCK_UPDATED}))
    assert await worker.run(execution.id, second) == "finished"
    # Run again by the second attempt: the stock counts the invoice once.
    assert tool_returns(second.requests[0])["update_stock_levels"] == {"SKU-001": STOCK_UPDATED}
    assert (await product(sessionmaker, dataset, "SKU-001")).properties["stock"] == 8


async def test_parallel_calls_and_a_wrong_tool_name_replay_as_they_ran(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, execution = await two_skus(factory)
    misbehaving = ModelResponse(
        parts=[
            ToolCallPart("update_product", {"sku": "SKU-001", "name": "Mug"}, tool_call_id="a"),
            ToolCallPart("update_product", {"sku": "SKU-002", "name": "Pot"}, tool_call_id="b"),
            ToolCallPart("delete_everything", {}, tool_call_id="c"),
            ToolCallPart("read_products", {"skus": ["SKU-001"]}, tool_call_id="d"),
        ]
    )
    first = Interrupted(misbehaving)
    await interrupt(worker, execution.id, first.model, first.hanging.wait())

    def saw_every_result(messages: list[ModelMessage]) -> None:
        returns = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
        by_id = {p.tool_call_id: p for p in returns}
        assert by_id["a"].content == "Product SKU-001 updated."
        assert by_id["b"].content == "Product SKU-002 updated."
        assert by_id["c"].outcome == "retried"
        assert by_id["d"].content["products"][0]["name"] == "Mug"

    second = Script(replying(saw_every_result, answer({"SKU-001": UPDATED, "SKU-002": UPDATED})))
    assert await worker.run(execution.id, second) == "finished"
    assert len(second.requests) == 1
    rows = await journal(sessionmaker, execution.id)
    assert sorted(r[1] for r in rows if r[1] != "model") == [
        "read_products",
        "update_product",
        "update_product",
    ]
    assert all(r[2] == 1 for r in rows if r[1] != "model")


async def test_a_run_that_takes_another_path_drops_the_journal_and_goes_on_live(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Without SKUs, the products missing data are the task: what the first attempt wrote
    # changes the second attempt's prompt, so the first answer no longer fits.
    dataset, execution = await enrichment(
        factory, None, **{"SKU-001": {"name": "", "description": ""}, "SKU-002": {}}
    )
    first = Interrupted(
        call("update_product", sku="SKU-001", name="Mug", description="A mug."),
    )
    await interrupt(worker, execution.id, first.model, first.hanging.wait())

    second = Script(
        call("update_product", sku="SKU-002", name="Pot", description="A pot."),
        answer({"SKU-002": UPDATED}),
    )
    assert await worker.run(execution.id, second) == "finished"
    # Asked again from the first request: nothing of the other path was replayed.
    assert len(second.requests) == 2
    rows = await journal(sessionmaker, execution.id)
    assert {r[2] for r in rows} == {2}
    assert (await product(sessionmaker, dataset, "SKU-001")).name == "Mug"


async def test_a_retry_resuming_a_failed_execution_replays_its_journal(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # The seam a retry with resume uses: the new execution's first attempt replays the journal
    # of the one it continues (load_steps(..., resuming=)) and writes it into its own trace.
    owner = await factory.account()
    dataset = await factory.dataset(owner)
    await factory.product(dataset, "SKU-001")
    agent = await factory.agent(dataset, agent_type="catalog-enrichment")
    given = {"skus": ["SKU-001"], "additional_instructions": None}
    failed = await factory.execution(agent, owner, input=given)

    def provider_down(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelHTTPError(503, "mock", "overloaded")

    first = Script(call("update_product", sku="SKU-001", name="Mug"), provider_down)
    assert await worker.run(failed.id, first) == "failed"
    assert (await reload(sessionmaker, failed.id)).failure_code == "runtime_error"

    retry = await factory.execution(agent, owner, input=given)
    claim = await in_one_statement(
        sessionmaker, lambda c: claim_pending(c, retry.id), retry_for=0, what="claim"
    )
    assert claim is not None
    async with sessionmaker() as session:
        steps = await load_steps(session, retry.id, resuming=failed.id)
        left = await load_resume_state(session, failed.id)
    # What the failed execution leaves: its one answered request, as pydantic-ai messages.
    [response] = left.responses()
    assert [(p.tool_name, p.args) for p in response.parts] == [
        ("update_product", {"sku": "SKU-001", "name": "Mug"})
    ]
    journal = RunJournal(sessionmaker, execution_id=retry.id, attempt=1, steps=steps)
    definition = find_definition("catalog-enrichment", "catalog-enrichment")
    assert definition is not None
    run = ExecutionRun(
        execution_id=retry.id,
        agent_id=claim.agent_id,
        dataset_id=claim.dataset_id,
        user_id=claim.user_id,
        conversation_id=claim.conversation_id,
        input=read_stored_input(definition, claim.input),
        sessionmaker=sessionmaker,
        media_root=factory.settings.media_root,
    )
    transcript = Transcript(sessionmaker, claim.conversation_id, execution_id=retry.id, attempt=1)
    second = Script(answer({"SKU-001": UPDATED}))

    outcome = await run_definition(
        definition, run, second.model, transcript, timeout_seconds=30, journal=journal
    )

    assert outcome.failure_code is None, outcome.failure_explanation
    assert outcome.result == {"SKU-001": UPDATED}
    assert len(second.requests) == 1
    assert journal.replayed.model_responses == 1
    assert journal.replayed.tool_results == 1
    # The new execution's trace has the replayed exchange: its conversation is its own.
    messages = await trace(sessionmaker, retry.conversation_id)
    replayed = [m for m in messages if (m.payload or {}).get("replayed")]
    assert [m.tool_name for m in replayed] == ["update_product"]
    assert (await product(sessionmaker, dataset, "SKU-001")).name == "Mug"


async def test_a_verdict_given_before_the_interruption_is_not_written_again(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, execution = await enrichment(factory, ["SKU-001"], **{"SKU-001": {}})
    # Claimed as updated without update_product: the validator sends it back.
    first = Interrupted(answer({"SKU-001": UPDATED}))
    await interrupt(worker, execution.id, first.model, first.hanging.wait())

    second = Script(answer({"SKU-001": "Not updated: no data found."}))
    assert await worker.run(execution.id, second) == "finished"

    assert len(second.requests) == 1
    messages = await trace(sessionmaker, execution.conversation_id)
    verdicts = [(m.role, m.payload["attempt"]) for m in messages if m.role == "validation"]
    assert verdicts == [("validation", 1)]
