"""The agents API never echoes a base URL's credentials, and refuses an agent key variable that
could hand the service's own settings to a URL of the admin's choice."""

from httpx import AsyncClient

from tests.factories import Factory

SECRET_URL = "http://alice:s3cret-pw@models.internal:8080/v1"


async def test_base_url_credentials_are_shown_to_no_one(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    member = await factory.account()
    dataset = await factory.dataset(member)

    created = await client.post(
        "/api/agents/",
        json={
            "name": "Private model",
            "dataset_id": dataset.id,
            "agent_type": "structured-task",
            "model": {"name": "openai:llama3", "base_url": SECRET_URL},
        },
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    agent_id = created.json()["id"]

    # Not even to the admin who set it: a secret is never echoed back.
    answers = [
        created,
        await client.get("/api/agents/", headers=member.headers),
        await client.get(f"/api/agents/{agent_id}/", headers=member.headers),
        await client.get(f"/api/agents/{agent_id}/", headers=admin.headers),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201)
        assert "s3cret-pw" not in answer.text
    assert answers[1].json()[0]["model"]["base_url"] == "http://***@models.internal:8080/v1"


async def test_query_secrets_of_a_stored_base_url_are_hidden(
    client: AsyncClient, factory: Factory
) -> None:
    # An agent stored before base URLs with a query were refused.
    member = await factory.account()
    await factory.agent(
        await factory.dataset(member),
        model_settings={"base_url": "https://llm.example/v1?api-key=k3y&deployment=gpt"},
    )

    response = await client.get("/api/agents/", headers=member.headers)

    assert response.json()[0]["model"]["base_url"] == (
        "https://llm.example/v1?api-key=***&deployment=gpt"
    )


async def test_agent_key_variable_must_carry_the_configured_prefix(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()

    async def create(model: dict[str, str]) -> tuple[int, dict[str, str]]:
        response = await client.post(
            "/api/agents/",
            json={
                "name": "A",
                "dataset_id": dataset.id,
                "agent_type": "structured-task",
                "model": model,
            },
            headers=admin.headers,
        )
        return response.status_code, response.json()

    refused = {
        "model.api_key_env": "Must start with AGENTRUN_AGENT_KEY_ "
        "(AGENTRUN_MODEL_KEY_ENV_PREFIX) and name no setting."
    }
    assert await create({"api_key_env": "AGENTRUN_DATABASE_URL"}) == (400, refused)
    assert await create({"api_key_env": "OPENAI_API_KEY"}) == (400, refused)
    assert await create({"api_key_env": "AGENTRUN_AGENT_KEY_"}) == (400, refused)
    status, body = await create({"api_key_env": "agentrun_agent_key_x; rm"})
    assert (status, list(body)) == (400, ["model.api_key_env"])

    status, body = await create(
        {"base_url": "https://llm.example/v1", "api_key_env": "AGENTRUN_AGENT_KEY_ACME"}
    )
    assert status == 201
    assert body["model"]["api_key_env"] == "AGENTRUN_AGENT_KEY_ACME"


async def test_base_url_must_be_an_http_url_without_a_query(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(admin=True)
    dataset = await factory.dataset()

    for base_url in ("file:///etc/passwd", "http://", "http://h:port/v1", "http://h/v1?key=x"):
        response = await client.post(
            "/api/agents/",
            json={
                "name": "A",
                "dataset_id": dataset.id,
                "agent_type": "structured-task",
                "model": {"base_url": base_url},
            },
            headers=admin.headers,
        )
        assert response.status_code == 400, base_url
        assert list(response.json()) == ["model.base_url"], base_url
