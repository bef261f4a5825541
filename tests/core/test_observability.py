"""What an operator reads: request ids, JSON logs and Prometheus metrics."""

import io
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import event

from app.core.config import Settings
from app.core.logging import configure_logging
from app.main import create_app
from tests.factories import Factory


@pytest.fixture
def log_lines(settings: Settings) -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging(settings, stream=buffer)
    yield buffer
    configure_logging(settings)


async def test_each_request_is_logged_as_json_with_its_request_id(
    client: AsyncClient, factory: Factory, log_lines: io.StringIO
) -> None:
    alice = await factory.account()

    response = await client.get("/api/agentic-executions/", headers=alice.headers)

    request_id = response.headers["X-Request-ID"]
    records = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    [entry] = [r for r in records if r["logger"] == "agentrun.request"]
    assert entry["request_id"] == request_id
    assert entry["path"] == "/api/agentic-executions/"
    assert entry["status"] == 200
    assert entry["level"] == "INFO"
    assert entry["duration_ms"] >= 0


async def test_a_callers_request_id_is_kept(client: AsyncClient) -> None:
    given = "7d4a0f43-5bbd-4b1f-9c55-0d6f4bd2d6c1"

    response = await client.get("/healthz", headers={"X-Request-ID": given})

    assert response.headers["X-Request-ID"] == given


async def test_metrics_count_open_executions_queue_depth_and_requests(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        json={"execution_key": "catalog-enrichment"},
        headers=alice.headers,
    )
    await factory.execution(agent, alice, status="in_progress")

    async with operator_port(settings) as (_, scraper):
        text = (await scraper.get("/metrics")).text

    assert 'agentrun_executions_open{status="pending"} 1.0' in text
    assert 'agentrun_executions_open{status="in_progress"} 1.0' in text
    assert "agentrun_queue_depth 1.0" in text
    assert 'handler="/api/agents/{agent_id}/agentic-executions/"' in text


async def test_request_metrics_name_the_route_template_and_skip_the_probes(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    alice = await factory.account()
    await client.get("/api/agentic-executions/12345/", headers=alice.headers)
    await client.get("/healthz")

    async with operator_port(settings) as (_, scraper):
        text = (await scraper.get("/metrics")).text

    assert (
        'http_requests_total{handler="/api/agentic-executions/{execution_id}/",method="GET",'
        'status="4xx"}' in text
    )
    assert 'http_request_duration_seconds_bucket{handler="/api/agentic-executions/' in text
    assert 'handler="/healthz"' not in text


@asynccontextmanager
async def served(
    settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """A second app with other settings, its lifespan entered, and a client of it."""
    app = create_app(settings.model_copy(update=overrides))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        yield app, client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def operator_port(
    settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """An app serving its metrics on a free operator port, and a client of that port."""
    port = free_port()
    async with (
        served(settings, metrics_port=port, **overrides) as (app, _),
        AsyncClient(base_url=f"http://127.0.0.1:{port}") as scraper,
    ):
        yield app, scraper


async def test_metrics_are_on_the_operator_port_and_not_on_the_public_one(
    client: AsyncClient, settings: Settings
) -> None:
    async with operator_port(settings) as (_, scraper):
        operator = await scraper.get("/metrics")
        elsewhere = await scraper.get("/api/agentic-executions/")
    public = await client.get("/metrics")

    assert operator.status_code == 200
    assert "agentrun_queue_depth" in operator.text
    assert public.status_code == 404
    assert "agentrun_" not in public.text
    # The operator port serves the metrics only, not the API.
    assert elsewhere.status_code == 404


async def test_metrics_on_the_public_port_when_configured(settings: Settings) -> None:
    async with served(settings, metrics_on_api_port=True) as (_, client):
        scraped = await client.get("/metrics")

    assert scraped.status_code == 200
    assert "agentrun_executions_open" in scraped.text


async def test_the_api_starts_without_its_operator_port_when_the_port_is_taken(
    settings: Settings,
) -> None:
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        async with served(settings, metrics_port=taken) as (_, client):
            health = await client.get("/healthz")

    assert health.status_code == 200


async def test_metrics_with_a_token_set_refuse_scrapes_without_it(settings: Settings) -> None:
    async with operator_port(settings, metrics_token=SecretStr("s3cret-scrape")) as (_, client):
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        bearer = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        token = await client.get("/metrics", headers={"Authorization": "Token s3cret-scrape"})

    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.json() == {
        "detail": "Metrics need 'Authorization: Bearer <AGENTRUN_METRICS_TOKEN>'."
    }
    assert "agentrun_" not in wrong.text
    assert bearer.status_code == token.status_code == 200
    assert "agentrun_executions_open" in bearer.text


async def test_scrapes_within_the_refresh_interval_query_the_database_once(
    settings: Settings, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    await factory.execution(agent, alice, status="in_progress")
    async with operator_port(settings, metrics_refresh_seconds=60) as (app, client):
        engine = app.state.sessionmaker.kw["bind"].sync_engine
        statements: list[str] = []

        def record(*args: Any) -> None:
            statements.append(args[2])

        event.listen(engine, "before_cursor_execute", record)
        try:
            first = (await client.get("/metrics")).text
            await factory.execution(agent, alice, status="in_progress")
            second = (await client.get("/metrics")).text
        finally:
            event.remove(engine, "before_cursor_execute", record)

    assert len(statements) == 1
    assert 'agentrun_executions_open{status="in_progress"} 1.0' in first
    # The second scrape answers the figures of the first, up to 60 s old.
    assert 'agentrun_executions_open{status="in_progress"} 1.0' in second
