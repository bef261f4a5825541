"""OpenTelemetry traces (docs/tracing.md): one trace per execution, from the start request
through the queue to the worker's run, its model requests and tool calls; content only when
the operator opts in; nothing loaded when no OTEL_ variable is set."""

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind

from app.core import tracing
from app.core.config import Settings
from app.core.tracing_setup import build
from app.main import create_app
from tests.console.test_console_pages import sign_in
from tests.factories import Factory
from tests.worker.harness import Script, Worker, answer, call, worker_context

ROOT = Path(__file__).resolve().parents[2]
# In the input, the model's tool arguments and its answer: content an operator may not export.
SECRET_INSTRUCTIONS = "Mention the confidential launch date 2027-03-14."
SECRET_DESCRIPTION = "A mug for the confidential launch."


@pytest.fixture
def exporter(request: pytest.FixtureRequest) -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test, into memory; ``include_content`` by the test's parameter."""
    include_content = getattr(request, "param", False)
    exporter = InMemorySpanExporter()
    traced = build(
        SimpleSpanProcessor(exporter),
        "agentrun-test",
        include_content=include_content,
        sampler=ALWAYS_ON,
    )
    tracing.use(traced)
    try:
        yield exporter
    finally:
        tracing.use(None)
        traced.uninstrument_libraries()
        traced.shutdown()


@pytest.fixture
async def traced_app(exporter: InMemorySpanExporter, settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def start_and_run(app: FastAPI, factory: Factory, settings: Settings) -> dict[str, Any]:
    """Start a catalog-enrichment execution through the API, then run it in a worker whose
    scripted model reads a product, updates it and answers."""
    owner = await factory.account()
    dataset = await factory.dataset(owner)
    await factory.product(dataset, "SKU-1", name="Mug")
    agent = await factory.agent(dataset, agent_type="catalog-enrichment")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as api:
        started = await api.post(
            f"/api/agents/{agent.id}/agentic-executions/",
            headers=owner.headers,
            json={
                "execution_key": "catalog-enrichment",
                "input": {"skus": ["SKU-1"], "additional_instructions": SECRET_INSTRUCTIONS},
            },
        )
        assert started.status_code == 202, started.text
        execution = started.json()
        script = Script(
            call("update_product", sku="SKU-1", description=SECRET_DESCRIPTION),
            answer({"SKU-1": "Product updated successfully"}),
        )
        async with worker_context(settings) as state:
            assert await Worker(state).run(execution["id"], script) == "finished"
        read = await api.get(f"/api/agentic-executions/{execution['id']}/", headers=owner.headers)
        assert read.status_code == 200
        execution_read: dict[str, Any] = read.json()
        return execution_read


def in_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    spans = exporter.get_finished_spans()
    return [s for s in spans if s.context is not None and f"{s.context.trace_id:032x}" == trace_id]


def exported_text(spans: list[ReadableSpan]) -> str:
    """Everything the spans would send: names, attributes and events."""
    return json.dumps(
        [
            {
                "name": span.name,
                "attributes": dict(span.attributes or {}),
                "events": [dict(event.attributes or {}) for event in span.events],
            }
            for span in spans
        ],
        default=str,
    )


async def test_one_trace_holds_the_request_the_run_a_model_request_and_a_tool_call(
    traced_app: FastAPI,
    exporter: InMemorySpanExporter,
    factory: Factory,
    settings: Settings,
) -> None:
    execution = await start_and_run(traced_app, factory, settings)

    trace_id = execution["trace_id"]
    assert trace_id is not None
    assert len(trace_id) == 32
    spans = in_trace(exporter, trace_id)
    post = [s for s in spans if s.kind == SpanKind.SERVER and s.name.startswith("POST ")]
    assert [s.name for s in post] == ["POST /api/agents/{agent_id}/agentic-executions/"]
    run = [s for s in spans if s.name == f"execution {execution['id']}"]
    assert len(run) == 1
    # The run is a child of the request's span, across the queue.
    assert run[0].parent is not None
    assert run[0].parent.span_id == post[0].context.span_id  # type: ignore[union-attr]
    # pydantic-ai's spans, with the GenAI semantic conventions.
    requests = [s for s in spans if (s.attributes or {}).get("gen_ai.operation.name") == "chat"]
    assert requests
    attributes = dict(requests[0].attributes or {})
    assert attributes["gen_ai.request.model"]
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    tools = [s for s in spans if (s.attributes or {}).get("gen_ai.tool.name") == "update_product"]
    assert len(tools) == 1
    # The database and Redis, from both processes' sides.
    systems = {(s.attributes or {}).get("db.system") for s in spans}
    assert {"postgresql", "redis"} <= systems
    # Nothing from the input, the tool arguments or the model's answer.
    text = exported_text(exporter.get_finished_spans())
    assert "confidential" not in text
    assert "2027-03-14" not in text


@pytest.mark.parametrize("exporter", [True], indirect=True)
async def test_content_is_exported_when_the_operator_opts_in(
    traced_app: FastAPI,
    exporter: InMemorySpanExporter,
    factory: Factory,
    settings: Settings,
) -> None:
    execution = await start_and_run(traced_app, factory, settings)

    text = exported_text(in_trace(exporter, execution["trace_id"]))
    assert SECRET_INSTRUCTIONS in text
    assert SECRET_DESCRIPTION in text


async def test_the_console_links_the_trace_where_the_template_says(
    exporter: InMemorySpanExporter, settings: Settings, factory: Factory
) -> None:
    template = "http://jaeger.example:16686/trace/{trace_id}"
    app = create_app(settings.model_copy(update={"trace_url_template": template}))
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        started = await client.post(
            f"/api/agents/{agent.id}/agentic-executions/",
            headers=owner.headers,
            json={"execution_key": "catalog-enrichment", "input": {"skus": ["A"]}},
        )
        trace_id = started.json()["trace_id"]
        await sign_in(client, owner)
        page = await client.get(f"/ui/executions/{started.json()['id']}/")

    assert page.status_code == 200
    assert f'href="http://jaeger.example:16686/trace/{trace_id}"' in page.text


async def test_without_tracing_the_execution_has_no_trace_id(
    client: AsyncClient, factory: Factory
) -> None:
    owner = await factory.account()
    agent = await factory.agent(await factory.dataset(owner))
    started = await client.post(
        f"/api/agents/{agent.id}/agentic-executions/",
        headers=owner.headers,
        json={"execution_key": "catalog-enrichment", "input": {"skus": ["A"]}},
    )
    assert started.status_code == 202
    assert started.json()["trace_id"] is None


def test_the_trace_content_setting_and_url_template_are_read() -> None:
    values = Settings(
        trace_content="true",  # type: ignore[arg-type]
        trace_url_template="http://jaeger:16686/trace/{trace_id}",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert values.trace_content is True
    assert tracing.trace_url(values, "ab" * 16) == f"http://jaeger:16686/trace/{'ab' * 16}"
    with pytest.raises(ValueError, match="trace_id"):
        Settings(trace_url_template="http://jaeger/trace/", _env_file=None)  # type: ignore[call-arg]


def test_a_trace_that_was_not_sampled_shows_no_trace_id() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert tracing.trace_id_of(f"00-{trace_id}-00f067aa0ba902b7-01") == trace_id
    assert tracing.trace_id_of(f"00-{trace_id}-00f067aa0ba902b7-00") is None
    assert tracing.trace_id_of(None) is None


# The API's app factory, then the worker's start-up (and shutdown), in one process: which
# OpenTelemetry SDK modules each step loaded.
STARTUPS = textwrap.dedent(
    """
    import asyncio, json, sys
    from app.core.config import Settings

    def loaded():
        return sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk",
            "opentelemetry.instrumentation", "opentelemetry.exporter", "app.core.tracing_setup")))

    settings = Settings(**json.loads(sys.argv[1]), _env_file=None)
    from app.main import create_app
    create_app(settings)
    after_api = loaded()
    if sys.argv[2] == "worker":
        from workers.process.startup import shutdown, startup

        async def start_and_stop():
            ctx = {"settings": settings}
            await startup(ctx)
            await shutdown(ctx)

        asyncio.run(start_and_stop())
    print(json.dumps({"api": after_api, "worker": loaded()}))
    """
)


def test_with_no_otel_variable_nothing_of_the_sdk_is_imported(settings: Settings) -> None:
    values = {
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "queue_name": settings.queue_name,
        "media_root": str(settings.media_root),
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTRUN_"))}

    def loaded(processes: str, **extra: str) -> dict[str, list[str]]:
        done = subprocess.run(
            [sys.executable, "-c", STARTUPS, json.dumps(values), processes],
            cwd=ROOT,
            env={**environment, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    assert loaded("worker") == {"api": [], "worker": []}
    # The check can fail: with a variable set, the same start-up loads the SDK.
    switched_on = loaded("api", OTEL_SERVICE_NAME="agentrun-check")["api"]
    assert "opentelemetry.sdk.trace" in switched_on
    assert "app.core.tracing_setup" in switched_on
