"""Behind a gateway that strips a path prefix, links and docs still point at the gateway."""

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import ValidationError

from app.core.config import Settings
from app.core.logging import configure_logging
from app.main import create_app
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


@contextmanager
def request_log_clients(settings: Settings) -> Iterator[Callable[[], list[str]]]:
    """The client address of each request logged from now on (the app's JSON request log)."""
    buffer = io.StringIO()
    configure_logging(settings, stream=buffer)

    def clients() -> list[str]:
        records = [json.loads(line) for line in buffer.getvalue().splitlines()]
        return [r["client"] for r in records if r["logger"] == "agentrun.request"]

    try:
        yield clients
    finally:
        configure_logging(settings)


async def test_the_request_log_names_the_peer_when_its_forwarded_for_is_not_trusted(
    app: FastAPI, settings: Settings
) -> None:
    with request_log_clients(settings) as logged_clients:
        async with client_at(app, "203.0.113.9") as outsider:
            await outsider.get("/healthz", headers={"X-Forwarded-For": "192.0.2.1"})
        async with client_at(app, "127.0.0.1") as gateway:
            await gateway.get("/healthz", headers={"X-Forwarded-For": "198.51.100.7"})
            # A client that sends its own X-Forwarded-For through the gateway: the gateway
            # appends the address it saw, the only one that proves anything.
            await gateway.get("/healthz", headers={"X-Forwarded-For": "192.0.2.1, 198.51.100.8"})

        assert logged_clients() == ["203.0.113.9", "198.51.100.7", "198.51.100.8"]


async def test_trusted_proxies_may_be_networks_and_nothing_outside_them_is_believed(
    settings: Settings,
) -> None:
    app = create_app(settings.model_copy(update={"trusted_proxies": ["10.42.0.0/16"]}))
    forwarded = {**FORWARDED, "X-Forwarded-For": "198.51.100.7"}
    with request_log_clients(settings) as logged_clients:
        async with client_at(app, "10.42.7.9") as gateway:
            inside = await gateway.get("/docs", headers=forwarded)
        async with client_at(app, "10.43.0.1") as neighbour:
            outside = await neighbour.get("/docs", headers=forwarded)
        async with client_at(app, "127.0.0.1") as loopback:
            await loopback.get("/docs", headers=forwarded)

        assert "/agentrun/openapi.json" in inside.text
        assert "/agentrun/openapi.json" not in outside.text
        assert logged_clients() == ["198.51.100.7", "10.43.0.1", "127.0.0.1"]


def test_a_trusted_proxy_that_is_no_address_is_refused_at_startup() -> None:
    with pytest.raises(ValidationError, match="'gateway' is neither an IP address nor a network"):
        Settings(trusted_proxies=["gateway"], _env_file=None)  # type: ignore[call-arg]
