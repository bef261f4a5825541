"""GET one execution, the paginated list with its filters, and the execution's conversation."""

from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient

from app.executions import listing
from app.executions.models import AgenticExecution
from tests.factories import Account, Factory

T0 = datetime(2025, 4, 10, 14, 0, tzinfo=UTC)


async def test_get_a_finished_execution_has_result_and_duration(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(
        agent,
        alice,
        input={"skus": ["SKU-001"], "additional_instructions": None},
        status="finished",
        result={"SKU-001": "Product updated successfully"},
        started_at=T0,
        finished_at=T0 + timedelta(seconds=16, microseconds=554571),
    )

    response = await client.get(f"/api/agentic-executions/{execution.id}/", headers=alice.headers)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "finished"
    assert body["result"] == {"SKU-001": "Product updated successfully"}
    assert body["started_at"] == "2025-04-10T14:00:00.000000Z"
    assert body["finished_at"] == "2025-04-10T14:00:16.554571Z"
    assert body["duration_seconds"] == 16.554571
    assert body["failure_code"] is None


async def test_get_a_failed_execution_has_code_and_explanation(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(
        agent,
        alice,
        status="failed",
        failure_code="validation_failed",
        failure_explanation="No product data found for SKU SKU-002 in any available resource.",
        finished_at=datetime.now(UTC),
    )

    body = (
        await client.get(f"/api/agentic-executions/{execution.id}/", headers=alice.headers)
    ).json()

    assert (body["status"], body["failure_code"]) == ("failed", "validation_failed")
    assert body["failure_explanation"].startswith("No product data found")
    assert body["result"] is None


async def test_an_execution_is_visible_to_its_owner_and_admins_only(
    client: AsyncClient, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    admin = await factory.account(admin=True)
    # Bob shares the dataset, but the execution is still Alice's own.
    agent = await factory.agent(await factory.dataset(alice, bob))
    execution = await factory.execution(agent, alice)
    path = f"/api/agentic-executions/{execution.id}/"

    assert (await client.get(path, headers=alice.headers)).status_code == 200
    assert (await client.get(path, headers=admin.headers)).status_code == 200
    foreign = await client.get(path, headers=bob.headers)
    missing = await client.get("/api/agentic-executions/999/", headers=alice.headers)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"detail": "Execution not found."}
    assert (await client.get(path)).status_code == 401


async def make_history(factory: Factory, owner: Account, count: int) -> list[AgenticExecution]:
    agent = await factory.agent(await factory.dataset(owner))
    return [
        await factory.execution(agent, owner, started_at=T0 + timedelta(minutes=i))
        for i in range(count)
    ]


async def test_list_pages_25_newest_first_with_links(client: AsyncClient, factory: Factory) -> None:
    alice = await factory.account()
    executions = await make_history(factory, alice, 30)
    newest_first = [e.id for e in reversed(executions)]

    first = await client.get("/api/agentic-executions/", headers=alice.headers)
    second = await client.get(first.json()["next"], headers=alice.headers)

    assert first.status_code == second.status_code == 200
    assert first.json()["count"] == second.json()["count"] == 30
    assert [e["id"] for e in first.json()["results"]] == newest_first[:25]
    assert [e["id"] for e in second.json()["results"]] == newest_first[25:]
    assert first.json()["previous"] is None
    assert first.json()["next"] == "http://testserver/api/agentic-executions/?page=2"
    assert second.json()["next"] is None
    assert second.json()["previous"] == "http://testserver/api/agentic-executions/"


async def test_list_breaks_started_at_ties_by_id_descending(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    same_time = [await factory.execution(agent, alice, started_at=T0) for _ in range(3)]

    body = (await client.get("/api/agentic-executions/", headers=alice.headers)).json()

    assert [e["id"] for e in body["results"]] == [e.id for e in reversed(same_time)]


async def test_list_page_past_the_end_or_not_a_number_is_404(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    await make_history(factory, alice, 3)

    for page in ("2", "0", "-1", "abc"):
        response = await client.get(f"/api/agentic-executions/?page={page}", headers=alice.headers)
        assert response.status_code == 404, page
        assert response.json() == {"detail": "Invalid page."}
    empty = await factory.account()
    nothing = await client.get("/api/agentic-executions/?page=1", headers=empty.headers)
    assert nothing.json() == {"count": 0, "next": None, "previous": None, "results": []}


async def test_list_filters_by_agent_status_and_dataset_and_keeps_them_in_links(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    shop, outlet = await factory.dataset(alice), await factory.dataset(alice, name="Outlet")
    enricher, tasker = await factory.agent(shop), await factory.agent(outlet, name="Tasker")
    done = [await factory.execution(enricher, alice, status="finished") for _ in range(26)]
    waiting = await factory.execution(enricher, alice)
    elsewhere = await factory.execution(tasker, alice, status="finished")

    async def ids(query: str) -> list[int]:
        response = await client.get(f"/api/agentic-executions/?{query}", headers=alice.headers)
        assert response.status_code == 200
        return sorted(e["id"] for e in response.json()["results"])

    assert await ids(f"agent_id={tasker.id}") == [elsewhere.id]
    assert await ids("status=pending") == [waiting.id]
    assert await ids(f"dataset_id={outlet.id}") == [elsewhere.id]
    filtered = await client.get(
        f"/api/agentic-executions/?status=finished&agent_id={enricher.id}", headers=alice.headers
    )
    assert filtered.json()["count"] == len(done)
    assert "status=finished" in filtered.json()["next"]
    assert f"agent_id={enricher.id}" in filtered.json()["next"]


async def test_list_with_an_invalid_filter_is_400_naming_it(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()

    for query, field in (("status=done", "status"), ("agent_id=x", "agent_id"),
                         ("dataset_id=1.5", "dataset_id")):  # fmt: skip
        response = await client.get(f"/api/agentic-executions/?{query}", headers=alice.headers)
        assert response.status_code == 400, query
        assert list(response.json()) == [field]


async def test_list_shows_users_their_own_and_admins_everything(
    client: AsyncClient, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    admin = await factory.account(admin=True)
    agent = await factory.agent(await factory.dataset(alice, bob))
    mine = await factory.execution(agent, alice)
    theirs = await factory.execution(agent, bob)

    async def ids(account: Account) -> list[int]:
        body = (await client.get("/api/agentic-executions/", headers=account.headers)).json()
        assert body["count"] == len(body["results"])
        return sorted(e["id"] for e in body["results"])

    assert await ids(alice) == [mine.id]
    assert await ids(bob) == [theirs.id]
    assert await ids(admin) == [mine.id, theirs.id]


async def test_the_executions_conversation_shows_its_trace_in_order(
    client: AsyncClient, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    execution = await factory.execution(agent, alice)
    for role, content in (("user", "Enrich SKU-001"), ("assistant", "Done")):
        await factory.message(execution.conversation_id, role, content)
    path = f"/api/conversations/{execution.conversation_id}/"

    response = await client.get(path, headers=alice.headers)
    foreign = await client.get(path, headers=bob.headers)

    assert response.status_code == 200
    body = response.json()
    assert body["locked"] is True
    assert body["agent"]["id"] == agent.id
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("user", "Enrich SKU-001"),
        ("assistant", "Done"),
    ]
    assert foreign.status_code == 404


async def test_count_past_the_exact_limit_is_an_estimate_never_below_it(
    client: AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await factory.account()
    await make_history(factory, alice, 8)
    monkeypatch.setattr(listing, "EXACT_COUNT_LIMIT", 5)

    body = (await client.get("/api/agentic-executions/", headers=alice.headers)).json()

    assert body["count"] >= 6
    assert len(body["results"]) == 8


async def test_pages_follow_the_rows_not_an_estimated_count(
    client: AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await factory.account()
    await make_history(factory, alice, 30)
    monkeypatch.setattr(listing, "EXACT_COUNT_LIMIT", 5)

    first = (await client.get("/api/agentic-executions/", headers=alice.headers)).json()
    last = await client.get(first["next"], headers=alice.headers)
    beyond = await client.get("/api/agentic-executions/?page=3", headers=alice.headers)

    assert len(first["results"]) == 25
    assert last.status_code == 200
    assert len(last.json()["results"]) == 5
    assert last.json()["next"] is None
    # The last page knows the count: its offset plus its rows.
    assert last.json()["count"] == 30
    assert beyond.status_code == 404


async def test_count_is_exact_on_every_page_up_to_the_limit(
    client: AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Page 2 reaches past the limit (25 + 26 rows > 40): it counts from its own rows.
    alice = await factory.account()
    await make_history(factory, alice, 35)
    monkeypatch.setattr(listing, "EXACT_COUNT_LIMIT", 40)

    first = (await client.get("/api/agentic-executions/", headers=alice.headers)).json()
    second = (await client.get(first["next"], headers=alice.headers)).json()

    assert first["count"] == second["count"] == 35
    assert len(second["results"]) == 10


async def test_a_deep_page_past_the_limit_skips_the_capped_count(
    client: AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await factory.account()
    await make_history(factory, alice, 60)
    monkeypatch.setattr(listing, "EXACT_COUNT_LIMIT", 30)
    count_limits: list[int] = []
    capped_count_limit = listing.capped_count_limit

    def spy(offset: int, limit: int) -> int:
        # The count_limit each page's statement runs with.
        count_limits.append(capped_count_limit(offset, limit))
        return count_limits[-1]

    monkeypatch.setattr(listing, "capped_count_limit", spy)

    first = (await client.get("/api/agentic-executions/", headers=alice.headers)).json()
    second = (await client.get(first["next"], headers=alice.headers)).json()
    last = (await client.get(second["next"], headers=alice.headers)).json()

    assert count_limits == [31, 0, 0]
    assert first["count"] >= 31
    assert second["count"] >= 51
    assert last["count"] == 60
    assert len(last["results"]) == 10
    assert last["next"] is None
