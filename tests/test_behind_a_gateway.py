"""Behind a gateway that strips a path prefix, links and docs still point at the gateway."""

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from tests.factories import Factory

FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "api.example.com",
    "X-Forwarded-Prefix": "/agentrun",
}
PDF = b"%PDF-1.4\n%%EOF\n"


def client_at(app: FastAPI, ip: str) -> AsyncClient:
    """A client whose connection comes from ``ip``, to a container's own address."""
    transport = ASGITransport(app=app, client=(ip, 1234))
    return AsyncClient(transport=transport, base_url="http://10.0.0.5:8000")


async def test_links_use_the_forwarded_scheme_host_and_prefix_from_a_trusted_proxy(
    app: FastAPI, client: AsyncClient, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), file_upload=True)
    for _ in range(26):
        await factory.execution(agent, alice)
    started = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        data={"execution_key": "catalog-enrichment"},
        files=[("files[]", ("a.pdf", PDF, "application/pdf"))],
        headers=alice.headers,
    )
    conversation = started.json()["conversation"]
    async with client_at(app, "127.0.0.1") as gateway:
        page = await gateway.get("/api/agentic-executions/", headers={**alice.headers, **FORWARDED})
        detail = await gateway.get(
            f"/api/agentic-executions/{started.json()['id']}/",
            headers={**alice.headers, **FORWARDED},
        )
        docs = await gateway.get("/docs", headers=FORWARDED)

    assert page.status_code == 200
    assert page.json()["next"] == "https://api.example.com/agentrun/api/agentic-executions/?page=2"
    assert detail.json()["files"][0]["file_url"] == (
        f"/agentrun/media/conversations/{conversation}/a.pdf"
    )
    assert "/agentrun/openapi.json" in docs.text
    assert "/agentrun/static-offline-docs/swagger-ui-bundle.js" in docs.text


async def test_forwarded_headers_from_an_untrusted_address_are_ignored(
    app: FastAPI, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    for _ in range(26):
        await factory.execution(agent, alice)
    async with client_at(app, "203.0.113.9") as outsider:
        page = await outsider.get(
            "/api/agentic-executions/", headers={**alice.headers, **FORWARDED}
        )

    assert page.json()["next"] == "http://10.0.0.5:8000/api/agentic-executions/?page=2"
