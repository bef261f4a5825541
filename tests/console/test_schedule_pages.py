"""The console's schedules: created from the start form plus when (its errors on their
fields), listed, paused, resumed, deleted (with CSRF), its ticks and executions shown;
another user's schedule a 404 page."""

import re
from datetime import UTC, datetime

import pytest
from arq.connections import ArqRedis
from httpx import AsyncClient, Response
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.schedules.models import AgenticExecutionSchedule
from app.schedules.ticks import run_due_ticks
from app.schedules.timing import Timing, describe
from tests.console.test_console_pages import csrf_of, sign_in
from tests.factories import Account, Factory


def field_error(page: Response, field: str) -> str:
    """The message shown under a field of the form: ``when-cron``, ``field-instructions``."""
    found = re.search(
        rf'<p class="field-error" id="{re.escape(field)}-error">([^<]*)</p>', page.text
    )
    assert found, page.text
    return found.group(1)


async def api_schedule(client: AsyncClient, account: Account, schedule_id: int) -> Response:
    return await client.get(
        f"/api/agentic-execution-schedules/{schedule_id}/", headers=account.headers
    )


async def test_a_schedule_is_created_from_the_form_listed_paused_resumed_and_deleted(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    await sign_in(client, alice)
    choose = await client.get("/ui/schedules/new/")
    url = f"/ui/agents/{agent.id}/schedule/catalog-enrichment/"
    form = await client.get(url)

    created = await client.post(
        url,
        data={
            "csrf_token": csrf_of(form),
            "input.skus": "A-1\nA-2",
            "cron": "0 2 * * *",
            "timezone": "Europe/Warsaw",
            "end_at": "2030-01-01T00:00",
        },
    )

    assert url in choose.text
    assert 'name="input.skus"' in form.text
    assert 'name="cron"' in form.text
    assert 'value="UTC"' in form.text
    assert created.status_code == 303, created.text
    schedule_id = int(created.headers["location"].rstrip("/").rsplit("/", 1)[1])
    stored = (await api_schedule(client, alice, schedule_id)).json()
    assert stored["input"] == {"skus": ["A-1", "A-2"]}
    assert (stored["cron"], stored["timezone"], stored["enabled"]) == (
        "0 2 * * *", "Europe/Warsaw", True,
    )  # fmt: skip
    # The end is read in the schedule's time zone (Warsaw is UTC+1 in winter).
    assert stored["end_at"] == "2029-12-31T23:00:00.000000Z"
    next_run = datetime.fromisoformat(stored["next_run_at"])

    listed = await client.get("/ui/schedules/")
    page = await client.get(created.headers["location"])

    assert f"/ui/schedules/{schedule_id}/" in listed.text
    assert "<code>0 2 * * *</code>" in listed.text
    assert describe("0 2 * * *") in listed.text
    assert "Europe/Warsaw" in listed.text
    assert ">enabled</span>" in listed.text
    # The next run in the schedule's time zone: 2:00 local, whatever the season.
    assert re.search(r"\d{4}-\d\d-\d\d 02:00 CES?T", listed.text)
    assert next_run.strftime("%Y-%m-%d %H:%M:%S UTC") in page.text
    assert "No ticks yet." in page.text
    assert f"/ui/executions/?schedule={schedule_id}" in page.text
    assert "Pause" in page.text

    forged = await client.post(f"/ui/schedules/{schedule_id}/pause")
    paused = await client.post(
        f"/ui/schedules/{schedule_id}/pause", data={"csrf_token": csrf_of(page)}
    )
    after_pause = await api_schedule(client, alice, schedule_id)
    paused_page = await client.get(f"/ui/schedules/{schedule_id}/")

    assert forged.status_code == 403
    assert paused.status_code == 303
    assert paused.headers["location"].endswith(f"/ui/schedules/{schedule_id}/")
    assert after_pause.json()["enabled"] is False
    assert after_pause.json()["next_run_at"] is None
    assert ">paused</span>" in paused_page.text
    assert "Resume" in paused_page.text

    resumed = await client.post(
        f"/ui/schedules/{schedule_id}/resume", data={"csrf_token": csrf_of(page)}
    )
    after_resume = await api_schedule(client, alice, schedule_id)

    assert resumed.status_code == 303
    assert after_resume.json()["enabled"] is True
    assert after_resume.json()["next_run_at"] is not None

    forged_delete = await client.post(f"/ui/schedules/{schedule_id}/delete")
    deleted = await client.post(
        f"/ui/schedules/{schedule_id}/delete", data={"csrf_token": csrf_of(page)}
    )

    assert forged_delete.status_code == 403
    assert deleted.status_code == 303
    assert deleted.headers["location"].endswith("/ui/schedules/")
    assert (await api_schedule(client, alice, schedule_id)).status_code == 404
    assert (await client.get(f"/ui/schedules/{schedule_id}/")).status_code == 404
    assert "No schedules yet." in (await client.get("/ui/schedules/")).text


async def test_bad_cron_time_zone_end_and_input_are_shown_on_their_fields(
    client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")
    await sign_in(client, alice)
    url = f"/ui/agents/{agent.id}/schedule/structured-task/"
    token = csrf_of(await client.get(url))
    good = {"csrf_token": token, "input.instructions": "Name a colour.", "cron": "@daily"}

    bad_cron = await client.post(url, data=good | {"cron": "every day at two"})
    bad_zone = await client.post(url, data=good | {"timezone": "Mars/Olympus_Mons"})
    bad_end = await client.post(url, data=good | {"end_at": "next spring"})
    bad_json = await client.post(url, data=good | {"input.output_schema": "{not json"})
    bad_input = await client.post(url, data=good | {"input.instructions": ""})
    forged = await client.post(url, data=good | {"csrf_token": "forged"})

    assert bad_cron.status_code == 400
    assert "Expected five fields" in field_error(bad_cron, "when-cron")
    # What was typed stays in the form.
    assert 'value="every day at two"' in bad_cron.text
    assert "Name a colour." in bad_cron.text
    assert bad_zone.status_code == 400
    assert "Unknown time zone" in field_error(bad_zone, "when-timezone")
    assert bad_end.status_code == 400
    assert "Expected a date and time" in field_error(bad_end, "when-end_at")
    assert bad_json.status_code == 400
    assert "Invalid JSON" in field_error(bad_json, "field-output_schema")
    assert bad_input.status_code == 400
    assert field_error(bad_input, "field-instructions")
    assert forged.status_code == 403
    listed = await client.get("/api/agentic-execution-schedules/", headers=alice.headers)
    assert listed.json()["count"] == 0


async def test_past_the_most_schedules_the_form_says_so(
    client: AsyncClient, factory: Factory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "max_schedules_per_user", 1)
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    await sign_in(client, alice)
    url = f"/ui/agents/{agent.id}/schedule/catalog-enrichment/"
    data = {"csrf_token": csrf_of(await client.get(url)), "input.skus": "A-1", "cron": "@daily"}

    first = await client.post(url, data=data)
    second = await client.post(url, data=data)

    assert first.status_code == 303
    assert second.status_code == 409
    assert "AGENTRUN_MAX_SCHEDULES_PER_USER=1" in second.text
    assert 'name="input.skus"' in second.text


async def test_another_users_schedule_is_not_found_and_an_admin_sees_every_one(
    client: AsyncClient, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    admin = await factory.account(admin=True)
    agent = await factory.agent(await factory.dataset(alice))
    created = await client.post(
        f"/api/agents/{agent.id}/agentic-execution-schedules/",
        json={"execution_key": "catalog-enrichment", "input": {"skus": ["A-1"]}, "cron": "@hourly"},
        headers=alice.headers,
    )
    schedule_id = created.json()["id"]

    await sign_in(client, bob)
    token = csrf_of(await client.get("/ui/schedules/"))
    shown = await client.get(f"/ui/schedules/{schedule_id}/")
    paused = await client.post(f"/ui/schedules/{schedule_id}/pause", data={"csrf_token": token})
    deleted = await client.post(f"/ui/schedules/{schedule_id}/delete", data={"csrf_token": token})
    his_list = await client.get("/ui/schedules/")
    executions = await client.get(f"/ui/executions/?schedule={schedule_id}")

    assert shown.status_code == paused.status_code == deleted.status_code == 404
    assert f"/ui/schedules/{schedule_id}/" not in his_list.text
    assert "0 executions" in executions.text
    assert (await api_schedule(client, alice, schedule_id)).json()["enabled"] is True

    client.cookies.clear()
    await sign_in(client, admin)
    everyone = await client.get("/ui/schedules/")

    assert f"/ui/schedules/{schedule_id}/" in everyone.text
    assert '<th scope="col">Owner</th>' in everyone.text


async def test_a_schedules_page_shows_its_ticks_and_links_its_executions(
    client: AsyncClient,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    created = await client.post(
        f"/api/agents/{agent.id}/agentic-execution-schedules/",
        json={
            "execution_key": "catalog-enrichment",
            "input": {"skus": ["A-1"]},
            "cron": "0 2 * * *",
        },
        headers=alice.headers,
    )
    schedule_id = created.json()["id"]
    # Its last tick is due now: a worker's pass starts its execution.
    due = Timing.of("0 2 * * *", "UTC").latest_until(datetime.now(UTC))
    async with sessionmaker.begin() as session:
        await session.execute(
            update(AgenticExecutionSchedule)
            .where(AgenticExecutionSchedule.id == schedule_id)
            .values(next_run_at=due)
        )
    [tick] = await run_due_ticks(sessionmaker, queue, settings)
    assert tick.outcome == "started"

    await sign_in(client, alice)
    page = await client.get(f"/ui/schedules/{schedule_id}/")
    executions = await client.get(f"/ui/executions/?schedule={schedule_id}")
    execution = await client.get(f"/ui/executions/{tick.execution_id}/")

    assert "1 tick, newest first." in page.text
    assert due.strftime("%Y-%m-%d %H:%M:%S UTC") in page.text
    assert ">started</span>" in page.text
    assert f'/ui/executions/{tick.execution_id}/">#{tick.execution_id}</a>' in page.text
    assert "1 execution," in executions.text
    assert f"/ui/executions/{tick.execution_id}/" in executions.text
    assert f'Started by schedule <a href="http://testserver/ui/schedules/{schedule_id}/">' in (
        executions.text
    )
    assert f'/ui/schedules/{schedule_id}/">#{schedule_id}</a>' in execution.text

    # Paused by the service: the list and the page say why.
    async with sessionmaker.begin() as session:
        await session.execute(
            update(AgenticExecutionSchedule)
            .where(AgenticExecutionSchedule.id == schedule_id)
            .values(enabled=False, next_run_at=None, paused_reason="agent_not_visible")
        )
    listed = await client.get("/ui/schedules/")
    paused = await client.get(f"/ui/schedules/{schedule_id}/")

    assert ">paused</span>" in listed.text
    assert "its owner may no longer use the agent" in listed.text
    assert "its owner may no longer use the agent" in paused.text
    assert "Resume" in paused.text
