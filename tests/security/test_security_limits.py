"""Limits against runaway or hostile clients: writes per token a minute, request body size."""

import asyncio
import time
from collections.abc import AsyncIterator

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.rate_limit import WINDOW_SECONDS
from app.executions.models import AgenticExecution
from tests.factories import Factory, client_with_settings

BODY = {"execution_key": "catalog-enrichment"}


async def in_one_window() -> None:
    """Wait, if need be, for a new one-minute window, so that the requests that follow are
    counted in the same one: the limiter's windows are fixed (app/core/rate_limit.py), and
    requests on both sides of a boundary are rightly allowed up to twice the limit."""
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < 10:
        await asyncio.sleep(left + 0.1)


def url(agent_id: int) -> str:
    return f"/api/agents/{agent_id}/agentic-executions/"


async def test_posts_past_the_limit_are_429_with_retry_after(
    settings: Settings, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    async with client_with_settings(settings, rate_limit_per_minute=3) as client:
        await in_one_window()
        allowed = [
            await client.post(url(agent.id), json=BODY, headers=alice.headers) for _ in range(3)
        ]
        refused = await client.post(url(agent.id), json=BODY, headers=alice.headers)

    assert [response.status_code for response in allowed] == [202, 202, 202]
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Rate limit exceeded: 3 requests per minute."}
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


async def test_the_limit_is_per_token_and_only_on_writes(
    settings: Settings, factory: Factory
) -> None:
    alice, bob = await factory.account(), await factory.account()
    agent = await factory.agent(await factory.dataset(alice, bob))

    async with client_with_settings(settings, rate_limit_per_minute=1) as client:
        await in_one_window()
        await client.post(url(agent.id), json=BODY, headers=alice.headers)
        alice_again = await client.post(url(agent.id), json=BODY, headers=alice.headers)
        bob_first = await client.post(url(agent.id), json=BODY, headers=bob.headers)
        alice_reads = [
            await client.get("/api/agentic-executions/", headers=alice.headers) for _ in range(3)
        ]

    assert alice_again.status_code == 429
    assert bob_first.status_code == 202
    assert {response.status_code for response in alice_reads} == {200}


async def test_a_limit_of_0_disables_it(settings: Settings, factory: Factory) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    async with client_with_settings(settings, rate_limit_per_minute=0) as client:
        responses = [
            await client.post(url(agent.id), json=BODY, headers=alice.headers) for _ in range(5)
        ]

    assert {response.status_code for response in responses} == {202}


async def test_a_declared_body_over_the_limit_is_413_before_it_is_read(
    settings: Settings, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    body = {"execution_key": "catalog-enrichment", "input": {"additional_instructions": "x" * 2000}}

    async with client_with_settings(settings, max_request_bytes=1000) as client:
        response = await client.post(url(agent.id), json=body, headers=alice.headers)

    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large: the limit is 1000 bytes."}
    assert await session.scalar(select(func.count()).select_from(AgenticExecution)) == 0


async def test_a_chunked_body_is_cut_off_at_the_limit(
    settings: Settings, factory: Factory, session: AsyncSession
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), file_upload=True)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        # Valid multipart, streamed without a Content-Length, far over the limit.
        yield (
            b'--b\r\nContent-Disposition: form-data; name="execution_key"\r\n\r\n'
            b"catalog-enrichment\r\n"
            b'--b\r\nContent-Disposition: form-data; name="files[]"; filename="big.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\n"
        )
        for _ in range(100):
            sent += 1000
            yield b"a" * 1000
        yield b"\r\n--b--\r\n"

    async with client_with_settings(settings, max_request_bytes=10_000) as client:
        response = await client.post(
            url(agent.id),
            content=chunks(),
            headers={**alice.headers, "Content-Type": "multipart/form-data; boundary=b"},
        )

    assert response.status_code == 413
    assert response.json()["detail"].startswith("Request body too large")
    assert sent < 100_000
    assert await session.scalar(select(func.count()).select_from(AgenticExecution)) == 0


def test_the_default_body_limit_allows_every_upload_at_its_limit() -> None:
    settings = Settings(max_upload_bytes=1000, max_upload_files=3, _env_file=None)  # type: ignore[call-arg]

    assert settings.request_body_limit == 3000 + 1024 * 1024
