"""The operator's secrets stay his: provider keys go only to their provider's configured URL,
upstream error bodies stay in the worker log, and URL credentials are never logged.

Real worker code against a real HTTP model server (tests/mock_openai.py), which records the
credentials that reach it."""

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.logging import configure_logging
from app.executions.models import AgenticExecution
from tests.factories import Factory
from tests.mock_openai import ErrorReply, MockOpenAI
from tests.worker.harness import Worker, reload, trace
from workers.run.model_clients import ModelFactory

SERVICE_KEY = "sk-service-wide-secret"
AGENT_KEY = "sk-acme-own-key"


async def task(factory: Factory, **model_settings: Any) -> AgenticExecution:
    owner = await factory.account()
    agent = await factory.agent(
        await factory.dataset(owner), agent_type="structured-task", model_settings=model_settings
    )
    return await factory.execution(
        agent, owner, input={"instructions": "Say hi.", "output_schema": None}
    )


def with_keys(worker: Worker, **changes: Any) -> None:
    """The worker's models are built with these settings from now on."""
    settings: Settings = worker.state.settings
    worker.state.models = ModelFactory(settings.model_copy(update=changes))


def credentials(server: MockOpenAI) -> list[str | None]:
    return [h.get("authorization") or h.get("x-api-key") for h in server.headers]


async def test_service_key_is_not_sent_to_an_agents_own_base_url(
    worker: Worker,
    factory: Factory,
    mock_openai: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # OpenAI's key is configured for OpenAI's address; the agent points at another server.
    with_keys(worker, openai_api_key=SecretStr(SERVICE_KEY), openai_base_url=None)
    execution = await task(factory, name="openai:gpt-4o-mini", base_url=mock_openai.url)

    assert await worker.run(execution.id) == "finished"

    # It ran, without a key: a placeholder the SDK insists on, never the service's key.
    assert credentials(mock_openai) == ["Bearer api-key-not-set"]
    assert (await reload(sessionmaker, execution.id)).status == "finished"


async def test_anthropic_key_is_not_sent_to_an_agents_own_base_url(
    worker: Worker, factory: Factory, mock_openai: MockOpenAI
) -> None:
    with_keys(worker, anthropic_api_key=SecretStr(SERVICE_KEY), anthropic_base_url=None)
    # The mock speaks no Anthropic (it answers 404), but it sees what was sent.
    execution = await task(factory, name="anthropic:claude-haiku-4-5", base_url=mock_openai.url)

    assert await worker.run(execution.id) == "failed"

    assert mock_openai.headers
    assert all(SERVICE_KEY not in str(h) for h in mock_openai.headers)


async def test_service_key_is_sent_only_to_the_providers_configured_base_url(
    worker: Worker, factory: Factory, mock_openai: MockOpenAI
) -> None:
    with_keys(worker, openai_api_key=SecretStr(SERVICE_KEY), openai_base_url=mock_openai.url)
    default = await task(factory, name="openai:gpt-4o-mini")
    # The same URL written differently (trailing slash) is still the configured one.
    same = await task(factory, name="openai:gpt-4o-mini", base_url=mock_openai.url + "/")
    # A path that merely starts with the same characters, or the same server by another
    # name, is not.
    sibling = await task(factory, name="openai:gpt-4o-mini", base_url=mock_openai.url + "-other")
    renamed = await task(
        factory,
        name="openai:gpt-4o-mini",
        base_url=mock_openai.url.replace("127.0.0.1", "localhost"),
    )

    for execution in (default, same, sibling, renamed):
        assert await worker.run(execution.id) == "finished"

    assert (
        credentials(mock_openai) == [f"Bearer {SERVICE_KEY}"] * 2 + ["Bearer api-key-not-set"] * 2
    )


async def test_an_agent_uses_its_own_key_named_by_an_environment_variable(
    worker: Worker, factory: Factory, mock_openai: MockOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRUN_AGENT_KEY_ACME", AGENT_KEY)
    with_keys(worker, openai_api_key=SecretStr(SERVICE_KEY), openai_base_url=None)
    execution = await task(
        factory,
        name="openai:gpt-4o-mini",
        base_url=mock_openai.url,
        api_key_env="AGENTRUN_AGENT_KEY_ACME",
    )

    assert await worker.run(execution.id) == "finished"

    assert credentials(mock_openai) == [f"Bearer {AGENT_KEY}"]


async def test_an_agent_cannot_name_a_service_setting_as_its_key(
    worker: Worker,
    factory: Factory,
    mock_openai: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Stored behind the API's back (the API refuses it): the worker refuses it too.
    execution = await task(
        factory,
        name="openai:gpt-4o-mini",
        base_url=mock_openai.url,
        api_key_env="AGENTRUN_DATABASE_URL",
    )

    assert await worker.run(execution.id) == "failed"

    done = await reload(sessionmaker, execution.id)
    assert done.failure_code == "runtime_error"
    assert done.failure_explanation == (
        "CredentialError: The agent's api_key_env 'AGENTRUN_DATABASE_URL' is refused: "
        "Must start with AGENTRUN_AGENT_KEY_ (AGENTRUN_MODEL_KEY_ENV_PREFIX) and name no setting."
    )
    assert mock_openai.headers == []


async def test_an_upstream_error_body_stays_in_the_worker_log(
    worker: Worker,
    factory: Factory,
    mock_openai: MockOpenAI,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    leak = "INTERNAL-ONLY: db password=hunter2"
    mock_openai.responder = lambda request: ErrorReply(500, leak)
    execution = await task(factory, name="openai:gpt-4o-mini", base_url=mock_openai.url)
    caplog.set_level(logging.DEBUG, logger="workers.run.failures")

    assert await worker.run(execution.id) == "failed"

    done = await reload(sessionmaker, execution.id)
    assert (done.failure_code, done.failure_explanation) == (
        "runtime_error",
        "ModelServerError: the model provider answered HTTP 500 (server error) "
        "for model gpt-4o-mini.",
    )
    entries = await trace(sessionmaker, done.conversation_id)
    assert entries
    assert all("hunter2" not in f"{m.content} {m.payload}" for m in entries)
    # The operator still has the body, at DEBUG only.
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if "hunter2" in r.getMessage()]
    assert [level for level, _ in logged] == [logging.DEBUG]


@pytest.fixture
def worker_log(settings: Settings) -> Iterator[io.StringIO]:
    """The service's own log configuration, written to a buffer, restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging(settings.model_copy(update={"log_format": "json"}), stream=stream)
    try:
        yield stream
    finally:
        root.handlers, root.level = handlers, level


async def test_base_url_credentials_never_reach_the_worker_log(
    worker: Worker, factory: Factory, mock_openai: MockOpenAI, worker_log: io.StringIO
) -> None:
    base_url = mock_openai.url.replace("http://", "http://alice:s3cret-pw@")
    execution = await task(factory, name="openai:gpt-4o-mini", base_url=base_url)

    assert await worker.run(execution.id) == "finished"

    output = worker_log.getvalue()
    # The HTTP client logs each request's URL at INFO: it is there, without its secrets.
    assert f"POST http://***@127.0.0.1:{mock_openai.port}/v1/chat/completions" in output
    assert "s3cret-pw" not in output
