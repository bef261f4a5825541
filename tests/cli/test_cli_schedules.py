"""``agentrun schedules create|list|pause|resume|delete`` against a live service."""

import json
from pathlib import Path

from httpx import AsyncClient

from tests.cli.test_cli_remote import agentrun
from tests.factories import Factory


async def test_a_schedule_is_created_listed_paused_resumed_and_deleted(
    live_url: str, factory: Factory, client: AsyncClient, tmp_path: Path
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")
    given = tmp_path / "input.json"
    given.write_text('{"instructions": "Summarise yesterday\'s tickets."}')

    code, stdout, stderr = await agentrun(
        live_url, alice, "schedules", "create", str(agent.id),
        "--key", "structured-task", "--input", f"@{given}", "--cron", "0 2 * * *",
        "--timezone", "Europe/Warsaw", "--end-at", "2030-01-01T00:00:00+01:00",
        "--limits", '{"max_model_requests": 5}',
    )  # fmt: skip

    assert code == 0, stderr
    schedule = json.loads(stdout)
    assert schedule["input"] == {"instructions": "Summarise yesterday's tickets."}
    assert (schedule["cron"], schedule["timezone"], schedule["enabled"]) == (
        "0 2 * * *", "Europe/Warsaw", True,
    )  # fmt: skip
    assert schedule["limits"] == {"max_model_requests": 5}
    assert schedule["end_at"].startswith("2029-12-31T23:00:00")
    assert f"created schedule {schedule['id']}: 0 2 * * * Europe/Warsaw" in stderr
    assert f"next run {schedule['next_run_at']}" in stderr

    code, stdout, stderr = await agentrun(live_url, alice, "schedules", "list")

    assert code == 0, stderr
    header, row = stdout.splitlines()
    assert header.split() == [
        "ID", "AGENT", "KEY", "CRON", "TZ", "ENABLED", "NEXT", "RUN", "LAST", "RUN",
    ]  # fmt: skip
    next_run = f"{schedule['next_run_at'][:10]} {schedule['next_run_at'][11:16]}Z"
    assert row.split() == [
        str(schedule["id"]), str(agent.id), "structured-task", "0", "2", "*", "*", "*",
        "Europe/Warsaw", "yes", *next_run.split(), "-",
    ]  # fmt: skip
    assert "1 of 1" in stderr

    paused = await agentrun(live_url, alice, "schedules", "pause", str(schedule["id"]))
    after_pause = await client.get(
        f"/api/agentic-execution-schedules/{schedule['id']}/", headers=alice.headers
    )

    assert paused[0] == 0, paused[2]
    assert "paused, next run -" in paused[1]
    assert after_pause.json()["enabled"] is False

    resumed = await agentrun(live_url, alice, "schedules", "resume", str(schedule["id"]))
    after_resume = await client.get(
        f"/api/agentic-execution-schedules/{schedule['id']}/", headers=alice.headers
    )

    assert resumed[0] == 0, resumed[2]
    assert "enabled, next run 20" in resumed[1]
    assert after_resume.json()["enabled"] is True

    deleted = await agentrun(live_url, alice, "schedules", "delete", str(schedule["id"]))
    gone = await client.get(
        f"/api/agentic-execution-schedules/{schedule['id']}/", headers=alice.headers
    )

    assert deleted[0] == 0, deleted[2]
    assert f"deleted schedule {schedule['id']}" in deleted[1]
    assert gone.status_code == 404


async def test_schedule_errors_print_the_apis_body_with_a_failing_exit_code(
    live_url: str, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")
    create = ("schedules", "create", str(agent.id), "--key", "structured-task")
    good_input = ("--input", '{"instructions": "Name a colour."}')

    bad_cron = await agentrun(live_url, alice, *create, *good_input, "--cron", "every day")
    bad_zone = await agentrun(
        live_url, alice, *create, *good_input, "--cron", "@daily", "--timezone", "Mars/Base"
    )
    bad_input = await agentrun(
        live_url, alice, *create, "--input", '{"instructions": ""}', "--cron", "@daily"
    )
    not_json = await agentrun(live_url, alice, *create, "--input", "{nope", "--cron", "@daily")
    made = await agentrun(live_url, alice, *create, *good_input, "--cron", "@daily", "--disabled")
    schedule = json.loads(made[1])
    not_his = await agentrun(live_url, bob, "schedules", "pause", str(schedule["id"]))
    not_his_delete = await agentrun(live_url, bob, "schedules", "delete", str(schedule["id"]))

    assert bad_cron[0] == bad_zone[0] == bad_input[0] == not_json[0] == 1
    assert 'HTTP 400: {"cron":' in bad_cron[2]
    assert "Expected five fields" in bad_cron[2]
    assert 'HTTP 400: {"timezone":' in bad_zone[2]
    assert "HTTP 400" in bad_input[2]
    assert "instructions" in bad_input[2]
    assert "--input is not valid JSON" in not_json[2]
    assert made[0] == 0, made[2]
    assert schedule["enabled"] is False
    assert schedule["next_run_at"] is None
    assert not_his[0] == not_his_delete[0] == 1
    assert "HTTP 404" in not_his[2]
    assert "HTTP 404" in not_his_delete[2]


async def test_a_retried_create_with_an_idempotency_key_makes_one_schedule(
    live_url: str, factory: Factory, client: AsyncClient
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")
    create = (
        "schedules", "create", str(agent.id), "--key", "structured-task",
        "--input", '{"instructions": "Scan the inbox."}', "--cron", "@hourly",
        "--idempotency-key", "inbox-hourly",
    )  # fmt: skip

    first = await agentrun(live_url, alice, *create)
    again = await agentrun(live_url, alice, *create)

    assert first[0] == again[0] == 0, (first[2], again[2])
    assert json.loads(first[1])["id"] == json.loads(again[1])["id"]
    listed = await client.get("/api/agentic-execution-schedules/", headers=alice.headers)
    assert listed.json()["count"] == 1
