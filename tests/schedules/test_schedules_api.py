"""The schedule routes: create with validation, list, read, pause and resume, change, delete;
another user's schedule is 404 (app/schedules)."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from httpx import AsyncClient

from tests.factories import Account, Factory

KEY = "structured-task"
GOOD = {"execution_key": KEY, "input": {"instructions": "Enrich today's products."}}


async def owner_and_agent(factory: Factory) -> tuple[Account, int]:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), agent_type=KEY)
    return owner, agent.id


async def create(
    client: AsyncClient, owner: Account, agent_id: int, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/agents/{agent_id}/agentic-execution-schedules/",
        json={**GOOD, "cron": "0 2 * * *", **fields},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def parsed(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


async def test_a_schedule_is_created_with_its_next_run_in_its_time_zone(
    client: AsyncClient, factory: Factory
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedule = await create(client, owner, agent_id, timezone="Europe/Warsaw")

    assert schedule["agent"] == agent_id
    assert schedule["user"] == owner.user.id
    assert (schedule["cron"], schedule["timezone"], schedule["enabled"]) == (
        "0 2 * * *", "Europe/Warsaw", True,
    )  # fmt: skip
    assert schedule["cron_description"] == "At 02:00 every day"
    assert schedule["input"] == GOOD["input"]
    assert (schedule["last_run_at"], schedule["last_execution_id"]) == (None, None)
    next_run = parsed(schedule["next_run_at"])
    assert schedule["next_run_at"].endswith("Z")
    # 2:00 in Warsaw, within the next day.
    assert next_run.astimezone(ZoneInfo("Europe/Warsaw")).strftime("%H:%M") == "02:00"
    assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(days=1)
    assert schedule["executions"].endswith(f"/api/agentic-executions/?schedule_id={schedule['id']}")

    read = await client.get(
        f"/api/agentic-execution-schedules/{schedule['id']}/", headers=owner.headers
    )
    assert read.status_code == 200
    assert read.json() == schedule


async def test_a_bad_cron_or_time_zone_is_a_400_naming_the_field(
    client: AsyncClient, factory: Factory
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    url = f"/api/agents/{agent_id}/agentic-execution-schedules/"

    bad_cron = await client.post(url, json={**GOOD, "cron": "0 25 * * *"}, headers=owner.headers)
    assert bad_cron.status_code == 400
    assert "cron" in bad_cron.json()
    assert "hour" in bad_cron.json()["cron"][0].lower()

    bad_zone = await client.post(
        url,
        json={**GOOD, "cron": "0 2 * * *", "timezone": "Europe/Atlantis"},
        headers=owner.headers,
    )
    assert bad_zone.status_code == 400
    assert list(bad_zone.json()) == ["timezone"]

    both = await client.post(
        url, json={**GOOD, "cron": "every day", "timezone": "Nowhere"}, headers=owner.headers
    )
    assert set(both.json()) == {"cron", "timezone"}

    listed = await client.get("/api/agentic-execution-schedules/", headers=owner.headers)
    assert listed.json()["count"] == 0


async def test_the_input_is_validated_as_a_start_is(client: AsyncClient, factory: Factory) -> None:
    owner, agent_id = await owner_and_agent(factory)
    url = f"/api/agents/{agent_id}/agentic-execution-schedules/"
    cron = {"cron": "0 2 * * *"}

    missing = await client.post(
        url, json={"execution_key": KEY, "input": {}, **cron}, headers=owner.headers
    )
    assert missing.status_code == 400
    assert "instructions" in missing.json()["input"]

    unknown_key = await client.post(
        url, json={"execution_key": "nope", "input": {}, **cron}, headers=owner.headers
    )
    assert unknown_key.status_code == 400
    assert "structured-task" in unknown_key.json()["detail"]

    bad_limits = await client.post(
        url, json={**GOOD, **cron, "limits": {"max_requests": -1}}, headers=owner.headers
    )
    assert bad_limits.status_code == 400
    assert "limits" in str(bad_limits.json())

    nul = await client.post(
        url, json={**GOOD, **cron, "input": {"instructions": "a\u0000b"}}, headers=owner.headers
    )
    assert nul.status_code == 400

    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    too_deep = await client.post(
        url, json={**GOOD, **cron, "input": {"instructions": "x", "output_schema": {"a": deep}}},
        headers=owner.headers,
    )  # fmt: skip
    assert too_deep.status_code == 400
    assert "input" in too_deep.json()

    extra = await client.post(url, json={**GOOD, **cron, "every": "day"}, headers=owner.headers)
    assert extra.status_code == 400
    assert "every" in extra.json()

    listed = await client.get("/api/agentic-execution-schedules/", headers=owner.headers)
    assert listed.json()["count"] == 0


async def test_pause_resume_and_change(client: AsyncClient, factory: Factory) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedule = await create(client, owner, agent_id)
    url = f"/api/agentic-execution-schedules/{schedule['id']}/"

    paused = await client.patch(url, json={"enabled": False}, headers=owner.headers)
    assert paused.status_code == 200
    assert (paused.json()["enabled"], paused.json()["next_run_at"]) == (False, None)

    resumed = await client.patch(url, json={"enabled": True}, headers=owner.headers)
    assert resumed.json()["enabled"] is True
    assert resumed.json()["next_run_at"] == schedule["next_run_at"]

    hourly = await client.patch(
        url, json={"cron": "@hourly", "timezone": "Asia/Kolkata"}, headers=owner.headers
    )
    assert hourly.status_code == 200
    next_run = parsed(hourly.json()["next_run_at"])
    # On the hour in Kolkata (UTC+5:30): half past in UTC, within the hour.
    assert (next_run.minute, next_run.second) == (30, 0)
    assert next_run - datetime.now(UTC) <= timedelta(hours=1)

    bad = await client.patch(url, json={"input": {"instructions": ""}}, headers=owner.headers)
    assert bad.status_code == 400
    assert "instructions" in bad.json()["input"]
    null_cron = await client.patch(url, json={"cron": None}, headers=owner.headers)
    assert null_cron.status_code == 400
    assert "cron" in null_cron.json()
    unchanged = await client.get(url, headers=owner.headers)
    assert unchanged.json()["input"] == GOOD["input"]
    assert unchanged.json()["cron"] == "@hourly"

    ended = await client.patch(
        url, json={"end_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()},
        headers=owner.headers,
    )  # fmt: skip
    assert ended.status_code == 200
    assert (ended.json()["enabled"], ended.json()["next_run_at"]) == (True, None)


async def test_another_users_schedule_is_not_found_and_an_admin_sees_all(
    client: AsyncClient, factory: Factory
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedule = await create(client, owner, agent_id)
    mallory = await factory.account()
    url = f"/api/agentic-execution-schedules/{schedule['id']}/"

    assert (await client.get(url, headers=mallory.headers)).status_code == 404
    assert (
        await client.patch(url, json={"enabled": False}, headers=mallory.headers)
    ).status_code == 404
    assert (await client.delete(url, headers=mallory.headers)).status_code == 404
    assert (await client.get(f"{url}ticks/", headers=mallory.headers)).status_code == 404
    theirs = await client.get("/api/agentic-execution-schedules/", headers=mallory.headers)
    assert theirs.json()["count"] == 0
    # Nor may he schedule on an agent he cannot use.
    refused = await client.post(
        f"/api/agents/{agent_id}/agentic-execution-schedules/",
        json={**GOOD, "cron": "* * * * *"},
        headers=mallory.headers,
    )
    assert refused.status_code == 404
    assert (await client.get(url, headers=owner.headers)).json()["enabled"] is True

    admin = await factory.account(admin=True)
    everyone = await client.get("/api/agentic-execution-schedules/", headers=admin.headers)
    assert [s["id"] for s in everyone.json()["results"]] == [schedule["id"]]


async def test_list_is_newest_first_25_a_page(client: AsyncClient, factory: Factory) -> None:
    owner, agent_id = await owner_and_agent(factory)
    ids = [(await create(client, owner, agent_id))["id"] for _ in range(27)]

    first = (await client.get("/api/agentic-execution-schedules/", headers=owner.headers)).json()
    assert first["count"] == 27
    assert [s["id"] for s in first["results"]] == ids[::-1][:25]
    assert first["previous"] is None
    second = (await client.get(first["next"], headers=owner.headers)).json()
    assert [s["id"] for s in second["results"]] == ids[1::-1]
    assert second["next"] is None
    past = await client.get("/api/agentic-execution-schedules/?page=3", headers=owner.headers)
    assert past.status_code == 404


async def test_delete_then_not_found(client: AsyncClient, factory: Factory) -> None:
    owner, agent_id = await owner_and_agent(factory)
    schedule = await create(client, owner, agent_id)
    url = f"/api/agentic-execution-schedules/{schedule['id']}/"

    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert (await client.get(url, headers=owner.headers)).status_code == 404
    assert (await client.delete(url, headers=owner.headers)).status_code == 404


async def test_a_user_has_at_most_the_configured_number_of_schedules(
    factory: Factory, settings: Any
) -> None:
    from tests.factories import client_with_settings

    owner, agent_id = await owner_and_agent(factory)
    async with client_with_settings(settings, max_schedules_per_user=2) as limited:
        for _ in range(2):
            await create(limited, owner, agent_id)
        third = await limited.post(
            f"/api/agents/{agent_id}/agentic-execution-schedules/",
            json={**GOOD, "cron": "0 2 * * *"},
            headers=owner.headers,
        )
    assert third.status_code == 409
    assert "AGENTRUN_MAX_SCHEDULES_PER_USER" in third.json()["detail"]


async def test_a_repeat_with_the_same_idempotency_key_answers_the_first_schedule(
    client: AsyncClient, factory: Factory
) -> None:
    owner, agent_id = await owner_and_agent(factory)
    url = f"/api/agents/{agent_id}/agentic-execution-schedules/"
    body = {**GOOD, "cron": "0 2 * * *"}
    keyed = {**owner.headers, "Idempotency-Key": "nightly-enrichment"}

    # A client retrying at once, several times over (a timeout, a gateway's retry).
    answers = await asyncio.gather(*(client.post(url, json=body, headers=keyed) for _ in range(5)))

    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert sum(answer.headers.get("Idempotent-Replayed") == "true" for answer in answers) == 4
    listed = await client.get("/api/agentic-execution-schedules/", headers=owner.headers)
    assert listed.json()["count"] == 1

    other = await client.post(url, json={**body, "cron": "0 3 * * *"}, headers=keyed)
    assert other.status_code == 409
    assert f"schedule ({answers[0].json()['id']})" in other.json()["detail"]
    too_long = await client.post(
        url, json=body, headers={**owner.headers, "Idempotency-Key": "k" * 256}
    )
    assert too_long.status_code == 400
    assert "Idempotency-Key" in too_long.json()
