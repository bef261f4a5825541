"""``agentrun quotas`` and ``agentrun limits``: what the admin API's PUTs set, from the shell."""

from httpx import AsyncClient

from app.core.config import Settings
from tests.cli.test_cli import agentrun
from tests.factories import Factory

START = {"execution_key": "structured-task", "input": {"instructions": "Hi."}}


async def test_quotas_set_holds_the_user_to_them_and_show_prints_todays_use(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    alice = await factory.account(username="alice")
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")
    url = f"/api/agents/{agent.id}/agentic-executions/"

    set_ = await agentrun(
        settings.database_url, "quotas", "set", "alice", "--executions-per-day", "1"
    )
    first = await client.post(url, json=START, headers=alice.headers)
    second = await client.post(url, json=START, headers=alice.headers)
    shown = await agentrun(settings.database_url, "quotas", "show", "alice")
    api = await client.get("/api/users/me/quotas/", headers=alice.headers)

    assert set_.code == 0, set_.stderr
    assert (first.status_code, second.status_code) == (202, 429)
    assert second.json()["quota"] == "max_executions_per_day"
    assert api.json()["max_executions_per_day"] == 1
    assert api.json()["max_tokens_per_day"] is None
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "Daily quotas of 'alice' (UTC days):"
    assert lines[1].split() == ["max_executions_per_day", "1"]
    assert lines[2].split() == ["max_tokens_per_day", "none"]
    assert lines[3].split() == ["executions", "today", "1"]


async def test_quotas_set_without_options_lifts_them_and_refuses_what_the_api_refuses(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    bob = await factory.account(username="bob")
    await agentrun(settings.database_url, "quotas", "set", "bob", "--tokens-per-day", "500")

    lifted = await agentrun(settings.database_url, "quotas", "set", "bob")
    api = await client.get("/api/users/me/quotas/", headers=bob.headers)
    zero = await agentrun(settings.database_url, "quotas", "set", "bob", "--tokens-per-day", "0")
    unknown = await agentrun(settings.database_url, "quotas", "show", "nobody")

    assert lifted.code == 0, lifted.stderr
    assert (api.json()["max_executions_per_day"], api.json()["max_tokens_per_day"]) == (None, None)
    assert zero.code == 1
    assert "max_tokens_per_day: Input should be greater than 0" in zero.stderr
    assert unknown.code == 1
    assert "No user named 'nobody'" in unknown.stderr


async def test_limits_set_and_show_an_agents_usage_limits(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner), name="Enricher")

    set_ = await agentrun(
        settings.database_url,
        "limits", "set", str(agent.id), "--max-model-requests", "5", "--max-cost", "0.25",
    )  # fmt: skip
    api = await client.get(f"/api/agents/{agent.id}/", headers=owner.headers)
    shown = await agentrun(settings.database_url, "limits", "show", str(agent.id))

    assert set_.code == 0, set_.stderr
    assert api.json()["limits"] == {
        "max_model_requests": 5,
        "max_total_tokens": None,
        "max_cost": 0.25,
    }
    lines = shown.stdout.splitlines()
    assert lines[0] == f"Usage limits of agent {agent.id} ('Enricher'), for each execution:"
    assert [line.split() for line in lines[1:]] == [
        ["max_model_requests", "5"],
        ["max_total_tokens", "none"],
        ["max_cost", "0.25"],
    ]


async def test_limits_refuse_a_missing_agent_and_invalid_limits(
    factory: Factory, settings: Settings
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner))

    missing = await agentrun(settings.database_url, "limits", "show", "999")
    negative = await agentrun(
        settings.database_url, "limits", "set", str(agent.id), "--max-cost", "-1"
    )

    assert missing.code == 1
    assert "Agent not found." in missing.stderr
    assert negative.code == 1
    assert "max_cost: Input should be greater than 0" in negative.stderr
