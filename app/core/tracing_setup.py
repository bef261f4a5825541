"""OpenTelemetry set up for one process, imported only when tracing is on (app/core/tracing.py).

The provider exports over OTLP as the standard variables say (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf`` here, ``grpc`` when its exporter is
installed; ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``...).
Spans come from the FastAPI, SQLAlchemy, Redis and HTTPX instrumentations, from pydantic-ai's
own (GenAI semantic conventions; prompts and tool arguments only with AGENTRUN_TRACE_CONTENT)
and from the worker's ``execution <id>`` span.

A database or Redis call made outside any span (the worker polling its queue, the heartbeat,
the reconciler, the webhook outbox) would each make a trace of its own, many a second: such
root client spans are not sampled (``NoBackgroundRoots``).
"""

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    _get_from_env_or_default,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from pydantic_ai import Agent
from pydantic_ai.models.instrumented import InstrumentationSettings
from sqlalchemy.ext.asyncio import AsyncEngine

TRACER_NAME = "agentrun"
# Requests not worth a trace: probes and scrapes, many a minute.
EXCLUDED_URLS = "healthz,readyz,metrics"
_PROPAGATOR = TraceContextTextMapPropagator()


class NoBackgroundRoots(Sampler):
    """``sampler``, except that a client span (a database, Redis or HTTP call) with no parent
    is dropped: it is background work, not part of a request or a run."""

    def __init__(self, sampler: Sampler) -> None:
        self._sampler = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind == SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self._sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoBackgroundRoots{{{self._sampler.get_description()}}}"


@dataclass
class Tracing:
    """A process's tracing: its provider, and what it instruments with it."""

    provider: TracerProvider
    include_content: bool

    def instrument_app(self, app: FastAPI) -> None:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=EXCLUDED_URLS,
            # The ASGI receive/send spans of every request say nothing a user needs.
            exclude_spans=["receive", "send"],
        )

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """A span per statement on ``engine`` (its SQL, never its parameters)."""
        # Per engine (SQLAlchemyInstrumentor instruments one engine per process); its
        # connection-usage metric goes to the global meter, a no-op unless one is set.
        connections = metrics.get_meter(TRACER_NAME).create_up_down_counter(
            "db.client.connections.usage", unit="connections"
        )
        tracer = self.provider.get_tracer(TRACER_NAME)
        EngineTracer(tracer, engine.sync_engine, connections)  # type: ignore[no-untyped-call]

    def instrument_libraries(self) -> None:
        """Redis, HTTPX (httpx and httpx2) and pydantic-ai, for the whole process."""
        RedisInstrumentor().instrument(tracer_provider=self.provider)
        HTTPXClientInstrumentor().instrument(tracer_provider=self.provider)
        # pydantic-ai's model clients are httpx2's.
        HTTPX2ClientInstrumentor().instrument(tracer_provider=self.provider)
        Agent.instrument_all(
            InstrumentationSettings(
                tracer_provider=self.provider, include_content=self.include_content
            )
        )

    def uninstrument_libraries(self) -> None:
        Agent.instrument_all(False)
        HTTPX2ClientInstrumentor().uninstrument()
        HTTPXClientInstrumentor().uninstrument()
        RedisInstrumentor().uninstrument()

    def current_traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    @contextmanager
    def run_span(self, execution_id: int, traceparent: str | None) -> Iterator[object]:
        parent = None if traceparent is None else _PROPAGATOR.extract({"traceparent": traceparent})
        tracer = self.provider.get_tracer(TRACER_NAME)
        with tracer.start_as_current_span(
            f"execution {execution_id}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={"agentrun.execution.id": execution_id},
        ) as span:
            yield span

    def shutdown(self) -> None:
        self.provider.shutdown()


def build(
    processor: SpanProcessor, service_name: str, *, include_content: bool, sampler: Sampler
) -> Tracing:
    """Tracing through ``processor`` (tests give one over an in-memory exporter)."""
    # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES), when set, wins over
    # the process's own name; the SDK's "unknown_service:..." does not.
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "unknown_service")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = TracerProvider(resource=resource, sampler=NoBackgroundRoots(sampler))
    provider.add_span_processor(processor)
    tracing = Tracing(provider, include_content)
    tracing.instrument_libraries()
    return tracing


def otlp_exporter() -> SpanExporter:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ).strip()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as exc:
            raise RuntimeError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc "
                "installed; or use http/protobuf (docs/tracing.md)"
            ) from exc
        exporter: SpanExporter = GrpcExporter()
        return exporter
    if protocol != "http/protobuf":
        raise RuntimeError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use http/protobuf or grpc (docs/tracing.md)"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def from_environment(default_service_name: str, *, include_content: bool) -> Tracing:
    """The process's tracing as the OTEL_ variables say; its provider becomes the global one."""
    tracing = build(
        BatchSpanProcessor(otlp_exporter()),
        default_service_name,
        include_content=include_content,
        sampler=_get_from_env_or_default(),
    )
    trace.set_tracer_provider(tracing.provider)
    return tracing
