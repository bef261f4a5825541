"""Batches over the API: submit (JSON and JSONL), all or nothing, counts, the batch_id
filter, cancel, results in order, tenancy, quotas, limits and Idempotency-Key."""

import json
from typing import Any

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.batches.models import AgenticExecutionBatch
from app.conversations.models import Conversation
from app.core.config import Settings
from app.events.models import ExecutionEvent
from app.executions import transitions
from app.executions.models import AgenticExecution
from tests.executions.test_limits_and_quotas import set_quotas
from tests.factories import Account, Factory, client_with_settings

KEY = "catalog-enrichment"


def submit_url(agent_id: int) -> str:
    return f"/api/agents/{agent_id}/agentic-execution-batches/"


def items(count: int) -> list[dict[str, Any]]:
    return [{"input": {"skus": [f"SKU-{index}"]}} for index in range(count)]


async def owner_and_agent(factory: Factory, username: str = "alice") -> tuple[Account, int]:
    owner = await factory.account(username=username)
    agent = await factory.agent(await factory.dataset(owner))
    return owner, agent.id


async def submit(
    client: AsyncClient, agent_id: int, account: Account, count: int
) -> dict[str, Any]:
    response = await client.post(
        submit_url(agent_id),
        json={"execution_key": KEY, "items": items(count)},
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored(session: AsyncSession) -> tuple[int, int, int]:
    """Batches, executions and conversations stored."""
    return (
        int(await session.scalar(select(func.count()).select_from(AgenticExecutionBatch)) or 0),
        int(await session.scalar(select(func.count()).select_from(AgenticExecution)) or 0),
        int(await session.scalar(select(func.count()).select_from(Conversation)) or 0),
    )


async def test_a_json_batch_is_202_with_one_pending_execution_an_item_each_waiting_its_turn(
    client: AsyncClient, factory: Factory, queue: ArqRedis, session: AsyncSession
) -> None:
    alice, agent_id = await owner_and_agent(factory)

    response = await client.post(
        submit_url(agent_id),
        json={"execution_key": KEY, "items": items(3), "limits": {"max_model_requests": 3}},
        headers=alice.headers,
    )

    assert response.status_code == 202
    batch = response.json()
    assert batch["status"] == "in_progress"
    assert batch["counts"] == {
        "total": 3, "pending": 3, "in_progress": 0, "finished": 0, "failed": 0,
    }  # fmt: skip
    assert batch["limits"]["max_model_requests"] == 3
    assert batch["results"].endswith(f"/api/agentic-execution-batches/{batch['id']}/results/")
    listed = await client.get(batch["executions"], headers=alice.headers)
    executions = listed.json()["results"]
    assert len(executions) == 3
    assert {e["batch_id"] for e in executions} == {batch["id"]}
    # Each item its own execution: its input validated as a single start's, the batch's
    # limits on every one, and its own conversation.
    assert sorted(e["input"]["skus"][0] for e in executions) == ["SKU-0", "SKU-1", "SKU-2"]
    assert {e["input"]["additional_instructions"] for e in executions} == {None}
    assert {e["limits"]["max_model_requests"] for e in executions} == {3}
    assert len({e["conversation"] for e in executions}) == 3
    # At the batch priority, waiting in PostgreSQL for the dispatcher to release them fairly
    # (fair share is on by default): nothing in arq's queue yet.
    waiting = (
        await session.execute(
            select(AgenticExecution.priority, AgenticExecution.dispatched_at).where(
                AgenticExecution.batch_id == batch["id"]
            )
        )
    ).all()
    assert [(str(priority), at) for priority, at in waiting] == [("batch", None)] * 3
    assert await queue.zrange(queue.default_queue_name, 0, -1) == []
    assert await stored(session) == (1, 3, 3)


async def test_a_jsonl_file_batch_is_read_a_line_at_a_time(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    lines = "\n".join(json.dumps(item) for item in items(4)) + "\n\n"

    response = await client.post(
        submit_url(agent_id),
        data={"execution_key": KEY, "limits": '{"max_total_tokens": 500}'},
        files={"items": ("items.jsonl", lines.encode(), "application/x-ndjson")},
        headers=alice.headers,
    )

    assert response.status_code == 202, response.text
    assert response.json()["counts"]["total"] == 4
    assert response.json()["limits"]["max_total_tokens"] == 500
    results = await client.get(response.json()["results"], headers=alice.headers)
    assert [json.loads(line)["item"] for line in results.text.splitlines()] == [0, 1, 2, 3]


async def test_one_invalid_item_is_a_400_naming_it_and_nothing_is_stored(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    batch = items(60)
    batch[57] = {"input": {"skus": "SKU-57"}}
    batch[3] = {"input": {"skus": ["ok", 3]}}
    batch[5] = "not an item"

    response = await client.post(
        submit_url(agent_id), json={"execution_key": KEY, "items": batch}, headers=alice.headers
    )

    assert response.status_code == 400
    body = response.json()
    assert body["items"] == {
        "3": {"input": {"skus.1": "Input should be a valid string"}},
        "5": {"detail": 'Expected an object, {"input": {...}}.'},
        "57": {"input": {"skus": "Input should be a valid list"}},
    }
    assert "nothing was stored" in body["detail"]
    assert await stored(session) == (0, 0, 0)


async def test_errors_name_at_most_the_first_fifty_items(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    bad = [{"input": {"skus": "no"}}] * 80

    response = await client.post(
        submit_url(agent_id), json={"execution_key": KEY, "items": bad}, headers=alice.headers
    )

    assert response.status_code == 400
    assert list(response.json()["items"]) == [str(index) for index in range(50)]


async def test_an_item_over_the_input_cap_or_too_deep_is_named_in_the_400(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    huge = {"input": {"skus": ["x" * settings.max_input_bytes]}}
    deep: Any = "leaf"
    for _ in range(settings.max_json_depth + 1):
        deep = [deep]
    batch = [*items(2), huge, {"input": {"skus": deep}}]

    response = await client.post(
        submit_url(agent_id), json={"execution_key": KEY, "items": batch}, headers=alice.headers
    )

    assert response.status_code == 400
    errors = response.json()["items"]
    assert list(errors) == ["2", "3"]
    assert "the limit is 262144 bytes" in errors["2"]["input"][0]
    assert "Nested too deep" in errors["3"]["input"][0]


async def test_a_malformed_jsonl_line_is_named_by_its_item_index(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    lines = b'{"input": {"skus": ["A"]}}\n{"input": {"skus": [\n{"input": {}}\n'

    response = await client.post(
        submit_url(agent_id),
        data={"execution_key": KEY},
        files={"items": ("items.jsonl", lines, "application/x-ndjson")},
        headers=alice.headers,
    )

    assert response.status_code == 400
    assert list(response.json()["items"]) == ["1"]
    assert "Invalid JSON" in response.json()["items"]["1"]["detail"]


async def test_unknown_key_empty_items_and_wrong_media_type_are_refused(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    url = submit_url(agent_id)

    unknown = await client.post(
        url, json={"execution_key": "nope", "items": items(1)}, headers=alice.headers
    )
    empty = await client.post(url, json={"execution_key": KEY, "items": []}, headers=alice.headers)
    not_a_list = await client.post(
        url, json={"execution_key": KEY, "items": {"a": 1}}, headers=alice.headers
    )
    text = await client.post(
        url, content=b"hi", headers={**alice.headers, "content-type": "text/plain"}
    )

    assert unknown.status_code == empty.status_code == not_a_list.status_code == 400
    assert "Unknown execution_key 'nope'" in unknown.json()["detail"]
    assert empty.json() == {"items": ["At least one item."]}
    assert text.status_code == 415


async def test_over_the_item_limit_or_the_body_cap_is_413_naming_the_limit(
    factory: Factory, settings: Settings, session: AsyncSession
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    async with client_with_settings(settings, max_batch_items=5, max_batch_bytes=4096) as client:
        too_many = await client.post(
            submit_url(agent_id), json={"execution_key": KEY, "items": items(6)},
            headers=alice.headers,
        )  # fmt: skip
        too_large = await client.post(
            submit_url(agent_id),
            json={"execution_key": KEY, "items": [{"input": {"skus": ["x" * 5000]}}]},
            headers=alice.headers,
        )
        too_large_file = await client.post(
            submit_url(agent_id),
            data={"execution_key": KEY},
            files={"items": ("items.jsonl", b'{"input": {}}\n' * 400, "application/x-ndjson")},
            headers=alice.headers,
        )

    assert too_many.status_code == 413
    assert "the limit is 5 a batch" in too_many.json()["detail"]
    assert too_large.status_code == too_large_file.status_code == 413
    assert "the limit is 4096 bytes" in too_large.json()["detail"]
    assert "the limit is 4096 bytes" in too_large_file.json()["detail"]
    assert await stored(session) == (0, 0, 0)


async def test_counts_follow_the_items_and_the_batch_finishes_when_the_last_ends(
    client: AsyncClient, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    batch = await submit(client, agent_id, alice, 3)
    url = f"/api/agentic-execution-batches/{batch['id']}/"
    ids = [
        e["id"]
        for e in (await client.get(batch["executions"], headers=alice.headers)).json()["results"]
    ]

    async with sessionmaker() as session, session.begin():
        assert await transitions.mark_in_progress(session, ids[0])
        assert await transitions.mark_in_progress(session, ids[1])
        assert await transitions.mark_failed(session, ids[1], "runtime_error", "Boom.")
    moved = (await client.get(url, headers=alice.headers)).json()
    assert moved["counts"] == {
        "total": 3, "pending": 1, "in_progress": 1, "finished": 0, "failed": 1,
    }  # fmt: skip
    assert (moved["status"], moved["finished_at"]) == ("in_progress", None)

    async with sessionmaker() as session, session.begin():
        assert await transitions.mark_failed(session, ids[0], "runtime_error", "Boom.")
        assert await transitions.mark_failed(session, ids[2], "runtime_error", "Boom.")
    ended = (await client.get(url, headers=alice.headers)).json()
    assert ended["status"] == "finished"
    assert ended["finished_at"] is not None
    assert ended["counts"]["failed"] == 3


async def test_the_batch_id_filter_lists_only_that_batchs_items(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    first = await submit(client, agent_id, alice, 2)
    await client.post(
        submit_url(agent_id), json={"execution_key": KEY, "items": items(3)}, headers=alice.headers
    )
    await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        json={"execution_key": KEY},
        headers=alice.headers,
    )

    listed = await client.get(
        f"/api/agentic-executions/?batch_id={first['id']}", headers=alice.headers
    )
    everything = await client.get("/api/agentic-executions/", headers=alice.headers)

    assert listed.json()["count"] == 2
    assert {e["batch_id"] for e in listed.json()["results"]} == {first["id"]}
    assert everything.json()["count"] == 6
    assert [e["batch_id"] for e in everything.json()["results"]].count(None) == 1


async def test_cancel_fails_pending_items_at_once_and_asks_running_ones_to_stop(
    client: AsyncClient,
    factory: Factory,
    queue: ArqRedis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    batch = await submit(client, agent_id, alice, 4)
    ids = sorted(
        e["id"]
        for e in (await client.get(batch["executions"], headers=alice.headers)).json()["results"]
    )
    async with sessionmaker() as session, session.begin():
        assert await transitions.mark_in_progress(session, ids[0])
        assert await transitions.mark_in_progress(session, ids[1])
        assert await transitions.mark_failed(session, ids[1], "runtime_error", "Boom.")

    response = await client.post(
        f"/api/agentic-execution-batches/{batch['id']}/cancel/", headers=alice.headers
    )

    assert response.status_code == 202
    cancelled = response.json()
    assert cancelled["counts"] == {
        "total": 4, "pending": 0, "in_progress": 1, "finished": 0, "failed": 3,
    }  # fmt: skip
    assert cancelled["cancel_requested_at"] is not None
    async with sessionmaker() as session:
        rows = {row.id: row for row in (await session.scalars(select(AgenticExecution))).all()}
    assert [rows[i].failure_code for i in ids] == [None, "runtime_error", "cancelled", "cancelled"]
    assert rows[ids[2]].failure_explanation == "Cancelled by alice."
    assert rows[ids[0]].cancel_requested_by == "alice"
    assert await queue.zscore(abort_jobs_ss, f"execution:{ids[0]}") is not None
    # The running item's worker records its end: then the batch is finished.
    async with sessionmaker() as session, session.begin():
        assert await transitions.mark_failed(session, ids[0], "cancelled", "Cancelled by alice.")
    read = await client.get(f"/api/agentic-execution-batches/{batch['id']}/", headers=alice.headers)
    assert read.json()["status"] == "finished"
    again = await client.post(
        f"/api/agentic-execution-batches/{batch['id']}/cancel/", headers=alice.headers
    )
    assert again.status_code == 409


async def test_cancelling_a_batch_with_nothing_running_is_200_and_finishes_it(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    batch = await submit(client, agent_id, alice, 3)

    response = await client.post(
        f"/api/agentic-execution-batches/{batch['id']}/cancel/", headers=alice.headers
    )

    assert response.status_code == 200
    assert response.json()["status"] == "finished"
    assert response.json()["counts"]["failed"] == 3


async def test_results_are_one_line_an_item_in_submission_order_while_it_runs(
    client: AsyncClient, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    count = 450  # more than one chunk of the stream
    batch = await submit(client, agent_id, alice, count)
    async with sessionmaker() as session, session.begin():
        first = await session.scalar(
            select(AgenticExecution.id).where(AgenticExecution.batch_item == 7)
        )
        assert first is not None
        assert await transitions.mark_failed(session, first, "runtime_error", "Boom.")

    response = await client.get(batch["results"], headers=alice.headers)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["item"] for line in lines] == list(range(count))
    assert list(lines[0]) == [
        "item", "execution_id", "status", "result", "failure_code", "failure_explanation",
    ]  # fmt: skip
    assert lines[0]["status"] == "pending"
    assert lines[0]["result"] is None
    assert (lines[7]["status"], lines[7]["failure_code"]) == ("failed", "runtime_error")
    assert lines[7]["execution_id"] == first


async def test_another_users_batch_and_its_results_are_404_admins_see_all(
    client: AsyncClient, factory: Factory
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    bob = await factory.account(username="bob")
    admin = await factory.account(admin=True, username="root")
    batch = await submit(client, agent_id, alice, 1)
    base = f"/api/agentic-execution-batches/{batch['id']}/"

    for path in ("", "results/", "events/"):
        assert (await client.get(base + path, headers=bob.headers)).status_code == 404
    assert (await client.post(base + "cancel/", headers=bob.headers)).status_code == 404
    assert (await client.get("/api/agentic-execution-batches/", headers=bob.headers)).json()[
        "count"
    ] == 0
    assert (await client.get(base, headers=admin.headers)).status_code == 200
    listed = await client.get("/api/agentic-execution-batches/", headers=alice.headers)
    assert [b["id"] for b in listed.json()["results"]] == [batch["id"]]
    assert (await client.get(base + "nope/", headers=alice.headers)).status_code == 404


async def test_a_batch_that_would_pass_the_daily_quota_is_429_as_a_whole(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    await set_quotas(client, factory, alice, max_executions_per_day=5)
    await client.post(
        f"/api/agents/{agent_id}/agentic-executions/",
        json={"execution_key": KEY},
        headers=alice.headers,
    )

    over = await client.post(
        submit_url(agent_id), json={"execution_key": KEY, "items": items(5)}, headers=alice.headers
    )
    within = await client.post(
        submit_url(agent_id), json={"execution_key": KEY, "items": items(4)}, headers=alice.headers
    )

    assert over.status_code == 429
    assert over.json()["quota"] == "max_executions_per_day"
    assert "5 more asked" in over.json()["detail"]
    assert "Retry-After" in over.headers
    assert within.status_code == 202
    assert await stored(session) == (1, 5, 5)


async def test_a_repeat_with_the_same_idempotency_key_answers_the_first_batch(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    body = {"execution_key": KEY, "items": items(3)}
    headers = {**alice.headers, "Idempotency-Key": "batch-1"}

    first = await client.post(submit_url(agent_id), json=body, headers=headers)
    again = await client.post(submit_url(agent_id), json=body, headers=headers)
    other = await client.post(
        submit_url(agent_id), json={**body, "items": items(2)}, headers=headers
    )

    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert await stored(session) == (1, 3, 3)


async def test_each_item_logs_pending_first_then_its_end_as_a_single_start_does(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    alice, agent_id = await owner_and_agent(factory)
    batch = await submit(client, agent_id, alice, 3)
    await client.post(
        f"/api/agentic-execution-batches/{batch['id']}/cancel/", headers=alice.headers
    )

    rows = await session.execute(
        select(
            ExecutionEvent.execution_id, ExecutionEvent.sequence, ExecutionEvent.payload
        ).order_by(ExecutionEvent.execution_id, ExecutionEvent.sequence)
    )
    events = [
        (sequence, payload["status"], payload["failure_code"]) for _, sequence, payload in rows
    ]

    assert events == [(1, "pending", None), (2, "failed", "cancelled")] * 3
