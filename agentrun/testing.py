"""Test an execution type the way the service runs it: a pytest plugin for plugin authors.

In the plugin's ``conftest.py``::

    pytest_plugins = ["agentrun.testing"]

and in its tests::

    async def test_a_bug_report(agentrun: Harness) -> None:
        agent = await agentrun.agent("ticket-triage")
        script = Script(call("lookup_product", sku="KT-200"), answer({...}))
        run = await agent.run("ticket-triage", {"subject": ...}, script)
        assert run.status == "finished"
        assert run.tool_calls()[0] == "lookup_product"

What runs is the service's own code: the execution is started through the API (its input
validated by the definition, a 400 for a bad one), then the worker's job (``run_execution``:
claim, the agent loop, validators, outcome) runs it against a PostgreSQL database of the test
run's own, migrated by Alembic, with a scripted model in place of the LLM. Only the model is
replaced.

Needs PostgreSQL and Redis, as the service's tests do: ``TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``, a server where the user may create a
database) and ``TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``; the run's queue has
a name of its own, so runs sharing it do not meet). The fixtures are session-scoped and async:
run pytest-asyncio with ``asyncio_default_fixture_loop_scope`` and
``asyncio_default_test_loop_scope`` set to ``"session"``.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import Agent
from app.auth.service import create_token, create_user
from app.catalog.models import Dataset, DatasetMember, Product
from app.conversations.models import Message
from app.core.config import Settings
from app.main import create_app
from app.models import Base
from workers.process.startup import job_timeout_seconds, shutdown, startup
from workers.run.jobs import run_execution
from workers.run.state import STATE_KEY, WorkerState, state_of

# The service's checkout: alembic.ini and migrations/ live beside this package.
SOURCE_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# ---- a scripted model ------------------------------------------------------------------------

Step = ModelResponse | Callable[[list[ModelMessage], AgentInfo], ModelResponse]


def call(tool_name: str, **args: Any) -> ModelResponse:
    """A model turn calling one of the definition's tools with ``args``."""
    return ModelResponse(parts=[ToolCallPart(tool_name, args)])


def answer(result: Any) -> Step:
    """A model turn giving ``result`` (a dict: the output's fields) through the result tool."""

    def step(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, result)])

    return step


def stop(reason: str) -> ModelResponse:
    """A model turn giving up: ``stop_execution``, which the worker adds to every run."""
    return call("stop_execution", reason=reason)


class Script:
    """A model playing the given turns in order, whatever it is sent; ``requests`` keeps what
    each turn was sent. The short summary the worker asks for when the validators' retries run
    out (a request without a result tool) is answered with ``summary``, or fails with it if it
    is an exception; ``summary_requests`` counts them."""

    def __init__(
        self, *steps: Step, summary: str | Exception = "The checks could not be satisfied."
    ) -> None:
        self.steps = list(steps)
        self.summary = summary
        self.requests: list[list[ModelMessage]] = []
        self.summary_requests = 0

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not info.output_tools:
            self.summary_requests += 1
            if isinstance(self.summary, Exception):
                raise self.summary
            return ModelResponse(parts=[TextPart(self.summary)])
        # A copy: the run's own list grows after the call.
        self.requests.append(list(messages))
        if not self.steps:
            raise AssertionError(f"the model was asked {len(self.requests)} times: too many")
        step = self.steps.pop(0)
        return step if isinstance(step, ModelResponse) else step(messages, info)

    @property
    def model(self) -> FunctionModel:
        return FunctionModel(self)


# ---- what a run left ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceMessage:
    """One message of the execution's conversation, as ``GET .../messages`` shows it."""

    role: str
    content: str
    tool_name: str | None
    payload: dict[str, Any] | None


@dataclass(frozen=True)
class RunReport:
    """The execution as the API answers it after the run, and its trace."""

    execution: dict[str, Any]
    trace: list[TraceMessage]

    @property
    def status(self) -> str:
        return str(self.execution["status"])

    @property
    def result(self) -> Any:
        return self.execution["result"]

    @property
    def failure_code(self) -> str | None:
        code = self.execution["failure_code"]
        return None if code is None else str(code)

    @property
    def failure_explanation(self) -> str | None:
        explanation = self.execution["failure_explanation"]
        return None if explanation is None else str(explanation)

    def roles(self) -> list[str]:
        return [m.role for m in self.trace]

    def tool_calls(self) -> list[str]:
        """The names of the tools the model called, in order (the result tool included)."""
        return [m.tool_name or "" for m in self.trace if m.role == "tool_call"]

    def tool_results(self, tool_name: str) -> list[str]:
        """What the calls of ``tool_name`` answered the model, in order."""
        return [
            m.content for m in self.trace if m.role == "tool_result" and m.tool_name == tool_name
        ]


# ---- the harness --------------------------------------------------------------------------------


@dataclass
class TestAgent:
    """An agent of one agent type in a dataset of its own, owned by a user of its own."""

    harness: "Harness"
    agent_id: int
    dataset_id: int
    headers: dict[str, str]

    __test__ = False  # not a test class, whatever pytest thinks of the name

    async def add_product(self, sku: str, **fields: Any) -> None:
        """A product of the agent's dataset (name, description, properties...)."""
        async with self.harness.sessionmaker() as session, session.begin():
            session.add(Product(dataset_id=self.dataset_id, sku=sku, **fields))

    async def definitions(self) -> Response:
        """``GET /api/agents/{id}/agentic-execution-definitions/``."""
        url = f"/api/agents/{self.agent_id}/agentic-execution-definitions/"
        return await self.harness.client.get(url, headers=self.headers)

    async def start(self, execution_key: str, input: dict[str, Any]) -> Response:
        """``POST /api/agents/{id}/agentic-executions/``, not run: the API's answer."""
        return await self.harness.client.post(
            f"/api/agents/{self.agent_id}/agentic-executions/",
            json={"execution_key": execution_key, "input": input},
            headers=self.headers,
        )

    async def run(
        self, execution_key: str, input: dict[str, Any], model: Script | Model
    ) -> RunReport:
        """Start an execution through the API and run it to its end with ``model``."""
        started = await self.start(execution_key, input)
        if started.status_code != 202:
            raise AssertionError(f"the start was refused: {started.status_code} {started.text}")
        return await self.harness.run_job(started.json()["id"], model, self.headers)


class Harness:
    """The API and a worker of the service, on the test run's database."""

    __test__ = False

    def __init__(self, app: FastAPI, client: AsyncClient, worker: WorkerState) -> None:
        self.app = app
        self.client = client
        self.worker = worker
        self.sessionmaker: async_sessionmaker[AsyncSession] = worker.sessionmaker
        self._agents = 0

    async def agent(
        self, agent_type: str, *, model_settings: dict[str, Any] | None = None
    ) -> TestAgent:
        self._agents += 1
        async with self.sessionmaker() as session, session.begin():
            user = await create_user(session, f"plugin-tester-{self._agents}")
            token = await create_token(session, user)
            dataset = Dataset(name=f"Dataset {self._agents}")
            session.add(dataset)
            await session.flush()
            session.add(DatasetMember(dataset_id=dataset.id, user_id=user.id))
            agent = Agent(
                dataset_id=dataset.id,
                name=f"{agent_type} {self._agents}",
                agent_type=agent_type,
                model_settings=model_settings or {},
            )
            session.add(agent)
            await session.flush()
            ids = agent.id, dataset.id
        return TestAgent(self, *ids, headers={"Authorization": f"Token {token}"})

    async def run_job(
        self, execution_id: int, model: Script | Model, headers: dict[str, str]
    ) -> RunReport:
        """The worker's job for ``execution_id`` (as arq would call it), with ``model``."""
        self.worker.model_override = model.model if isinstance(model, Script) else model
        try:
            await run_execution({STATE_KEY: self.worker}, execution_id)
        finally:
            self.worker.model_override = None
        response = await self.client.get(
            f"/api/agentic-executions/{execution_id}/", headers=headers
        )
        response.raise_for_status()
        execution = response.json()
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                select(Message)
                .where(Message.conversation_id == execution["conversation"])
                .order_by(Message.id)
            )
            trace = [TraceMessage(m.role, m.content, m.tool_name, m.payload) for m in rows]
        return RunReport(execution, trace)

    async def reset(self) -> None:
        """Empty every table and the media root: each test starts from nothing."""
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        async with self.sessionmaker() as session, session.begin():
            await session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        media_root = self.worker.settings.media_root
        shutil.rmtree(media_root, ignore_errors=True)
        media_root.mkdir(parents=True)


# ---- the pytest fixtures -------------------------------------------------------------------------


def _alembic_config(database_url: str) -> Config:
    ini = SOURCE_ROOT / "alembic.ini"
    if not ini.exists():
        raise RuntimeError(
            f"agentrun.testing migrates the test database with the service's Alembic revisions, "
            f"and found no {ini}: install the service from its source checkout (pip install -e)."
        )
    config = Config(str(ini))
    config.set_main_option("script_location", str(SOURCE_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url)
    config.attributes["configure_logging"] = False
    return config


@pytest.fixture(scope="session")
async def agentrun_settings(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    """Settings of the service on a database created for this test run (dropped after)."""
    name = f"agentrun_plugin_test_{uuid.uuid4().hex[:10]}"
    server = await asyncpg.connect(POSTGRES_URL)
    await server.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    database_url = f"{base}/{name}"
    try:
        # Alembic's env.py runs an event loop of its own: a thread of its own.
        await asyncio.to_thread(command.upgrade, _alembic_config(database_url), "head")
        yield Settings(
            database_url=database_url,
            redis_url=REDIS_URL,
            queue_name=f"agentrun:plugin-test:{uuid.uuid4().hex[:10]}",
            media_root=tmp_path_factory.mktemp("media"),
            default_model="test",
            _env_file=None,
        )
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


@pytest.fixture(scope="session")
async def agentrun_service(agentrun_settings: Settings) -> AsyncIterator[Harness]:
    """The API (its lifespan entered) and a worker's state, as arq's startup builds it."""
    app = create_app(agentrun_settings)
    ctx: dict[str, Any] = {
        "settings": agentrun_settings,
        "job_timeout_seconds": job_timeout_seconds(agentrun_settings),
    }
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        await startup(ctx)
        try:
            yield Harness(app, client, state_of(ctx))
        finally:
            await shutdown(ctx)


@pytest.fixture
async def agentrun(agentrun_service: Harness) -> Harness:
    """The harness, on empty tables."""
    await agentrun_service.reset()
    return agentrun_service
