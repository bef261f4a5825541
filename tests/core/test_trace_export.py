"""Traces over OTLP/HTTP from the real API and worker processes (docs/tracing.md): the
standard OTEL_ variables are all they are given, and one execution's trace reaches the
collector from both, joined across the queue."""

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import tracing
from app.core.config import Settings
from tests.factories import Factory
from tests.faults.conftest import Stack, Submitter, mock_agent, terminal, until
from tests.mock_openai import MockOpenAI
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

SERVER, CONSUMER = 2, 5  # OTLP's Span.SpanKind


async def spans_of(receiver: OtlpReceiver, trace_id: str, run_name: str) -> list[ReceivedSpan]:
    """The trace once both processes' batches have arrived (they export every 100 ms)."""
    deadline = time.monotonic() + 30
    while True:
        spans = receiver.in_trace(trace_id)
        names = {span.name for span in spans}
        chats = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"]
        if run_name in names and chats and any(s.kind == SERVER for s in spans):
            return spans
        if time.monotonic() > deadline:
            raise AssertionError(f"trace incomplete: {sorted(names)}; paths {receiver.paths}")
        await asyncio.sleep(0.1)


async def test_the_api_and_the_worker_export_one_trace_over_otlp_http(
    settings: Settings,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with OtlpReceiver() as receiver, MockOpenAI() as model:
        # The processes inherit the test's environment (tests/faults/conftest.py environment).
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        stack = Stack(settings, tmp_path)
        try:
            api_url = await stack.api()
            # Not waited for: the job waits in the queue for it (a loaded machine starts a
            # process slowly).
            await stack.start("worker", "-m", "app.cli", "worker")
            owner, agent = await mock_agent(factory, model.url)
            [execution_id] = await Submitter(api_url, owner, agent.id).submit(1)
            [done] = await until(sessionmaker, [execution_id], terminal, within=180)
            assert done.status == "finished", done.failure_explanation
            async with httpx.AsyncClient(base_url=api_url, headers=owner.headers) as api:
                read = await api.get(f"/api/agentic-executions/{execution_id}/")
            trace_id = read.json()["trace_id"]
            assert trace_id is not None

            spans = await spans_of(receiver, trace_id, f"execution {execution_id}")
        finally:
            await stack.stop_all()

    assert set(receiver.paths) == {"/v1/traces"}
    [post] = [s for s in spans if s.kind == SERVER and s.name.startswith("POST ")]
    assert post.service == "agentrun-api"
    [run] = [s for s in spans if s.name == f"execution {execution_id}"]
    assert run.service == "agentrun-worker"
    assert run.kind == CONSUMER
    assert run.parent_span_id == post.span_id
    chat = next(s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat")
    assert chat.service == "agentrun-worker"
    assert chat.attributes["gen_ai.request.model"] == "mock"
    # The call to the provider carried the trace on (HTTPX's instrumentation).
    assert any(trace_id in headers.get("traceparent", "") for headers in model.headers)
    # The test's own process traced nothing.
    assert tracing.active() is None
