"""``agentrun run … --wait`` and ``agentrun executions list`` against a live service."""

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from app.core.config import Settings
from app.main import create_app
from tests.factories import Account, Factory
from workers.process.execution_worker import ExecutionWorker
from workers.process.startup import worker_settings


@pytest.fixture
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    # The settings' default model is pydantic-ai's offline `test` model.
    worker = ExecutionWorker(**worker_settings(settings), handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    yield
    task.cancel()
    await worker.close()


async def agentrun(live_url: str, account: Account, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", *args,
        env={**os.environ, "AGENTRUN_URL": live_url, "AGENTRUN_TOKEN": account.token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.usefixtures("running_worker")
async def test_run_wait_follows_the_execution_and_prints_its_result(
    live_url: str, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")

    code, stdout, stderr = await agentrun(
        live_url, alice, "run", str(agent.id), "structured-task",
        "--input", '{"instructions": "Name a colour."}', "--wait",
    )  # fmt: skip

    assert code == 0, stderr
    assert isinstance(json.loads(stdout), dict)
    assert "started execution 1" in stderr
    assert "#1 finished" in stderr
    assert "1 model call" in stderr
    # Followed live through the event stream: each status, the model's answer, its tool call.
    assert "#1 pending" in stderr
    assert "#1 in_progress" in stderr
    assert "model test → tool call final_result(" in stderr
    assert "tool result final_result" in stderr


@pytest.fixture
async def url_without_event_stream(settings: Settings) -> AsyncIterator[str]:
    """The service as a release before the event stream was: the route is not there."""
    app = create_app(settings)

    async def older_release(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/events/"):
            await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
            return
        await app(scope, receive, send)

    server = uvicorn.Server(
        uvicorn.Config(older_release, host="127.0.0.1", port=0, lifespan="on", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    await task


@pytest.mark.usefixtures("running_worker")
async def test_run_wait_polls_a_service_without_the_event_stream(
    url_without_event_stream: str, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice), agent_type="structured-task")

    code, stdout, stderr = await agentrun(
        url_without_event_stream, alice, "run", str(agent.id), "structured-task",
        "--input", '{"instructions": "Name a colour."}', "--wait",
    )  # fmt: skip

    assert code == 0, stderr
    assert isinstance(json.loads(stdout), dict)
    assert "the service has no event stream: polling" in stderr
    assert "#1 finished" in stderr


@pytest.mark.usefixtures("running_worker")
async def test_run_wait_reports_a_failure_and_exits_1(live_url: str, factory: Factory) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    code, stdout, stderr = await agentrun(
        live_url, alice, "run", str(agent.id), "catalog-enrichment",
        "--input", '{"skus": ["SKU-1"]}', "--wait",
    )  # fmt: skip

    assert code == 1
    assert stdout == ""
    assert "#1 failed" in stderr
    assert "agentrun: max_retries_exceeded: " in stderr


async def test_run_with_bad_input_shows_the_services_answer(
    live_url: str, factory: Factory
) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))

    code, _, stderr = await agentrun(
        live_url, alice, "run", str(agent.id), "catalog-enrichment", "--input", '{"skus": 1}'
    )

    assert code == 1
    assert 'HTTP 400: {"input":{"skus":"Input should be a valid list"}}' in stderr


async def test_executions_list_prints_a_table_newest_first(live_url: str, factory: Factory) -> None:
    alice = await factory.account()
    agent = await factory.agent(await factory.dataset(alice))
    await factory.execution(agent, alice)
    await factory.execution(
        agent, alice, status="failed", failure_code="cancelled", failure_explanation="x"
    )

    code, stdout, stderr = await agentrun(live_url, alice, "executions", "list")

    assert code == 0, stderr
    header, newest, oldest = stdout.splitlines()
    assert header.split() == ["ID", "AGENT", "KEY", "STATUS", "STARTED", "SECONDS", "FAILURE"]
    assert newest.split()[0] == "2"
    assert newest.split()[-1] == "cancelled"
    assert oldest.split()[:4] == ["1", str(agent.id), "catalog-enrichment", "pending"]
    assert "2 of 2" in stderr
