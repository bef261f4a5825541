"""The ASGI application: ``uvicorn app.main:app``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from starlette.routing import Route

from app.access.router import router as access_router
from app.agents.definitions_router import router as definitions_router
from app.agents.router import router as agents_router
from app.auth.router import router as auth_router
from app.batches.router import router as batches_router
from app.catalog.router import router as catalog_router
from app.console.router import install as install_console
from app.conversations.extraction import ExtractionLimits
from app.conversations.extraction_process import TextExtractor
from app.conversations_api.router import media_router
from app.conversations_api.router import router as conversations_router
from app.core.body_limit import RequestBodyLimitMiddleware
from app.core.completed_requests import CompletedRequestMiddleware
from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_read_sessionmaker, create_sessionmaker
from app.core.errors import install_error_handlers
from app.core.garbage_collection import settle_after_startup
from app.core.health import router as health_router
from app.core.logging import configure_logging, log_request
from app.core.memory import keep_large_buffers_returnable
from app.core.metrics import install_metrics, record_http_metrics
from app.core.metrics_port import serve_metrics
from app.core.openapi import install_openapi
from app.core.proxy import ForwardedHeadersMiddleware
from app.core.tracing import start as start_tracing
from app.definitions.openapi import document_execution_types
from app.definitions.registry import all_definitions
from app.events.listener import EventListener
from app.events.router import router as events_router
from app.executions.gauges import refresh_gauges
from app.executions.queue import create_queue
from app.executions.quota_router import router as quota_router
from app.executions.retry_router import router as retry_router
from app.executions.router import router as executions_router
from app.protocols.a2a.endpoint import a2a_mount
from app.protocols.mcp.endpoint import PATH as MCP_PATH
from app.protocols.mcp.endpoint import McpEndpoint, run_mcp
from app.schedules.router import router as schedules_router
from app.webhooks.router import router as webhooks_router
from app.webhooks.stored_secrets import refuse_to_start_without_keys

DESCRIPTION = """
Submit *agentic executions* — autonomous LLM agent jobs with a typed input — and collect a
structured result or a precise failure.

Every endpoint under `/api/` needs `Authorization: Token <key>`.

Errors are JSON: `{"detail": "..."}`, or for invalid input the offending fields mapped to
their messages (400). Writes (POST) are limited per token (429 with `Retry-After`); bodies
over the size limit get 413; 503 means PostgreSQL is unreachable — retry shortly.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    # None unless an OTEL_ variable asks for traces (app/core/tracing.py).
    tracing = start_tracing(settings, "agentrun-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Neither connects here: the API starts, and /readyz says 503, while PostgreSQL or
        # Redis is down.
        engine = create_engine(settings)
        if tracing is not None:
            tracing.instrument_engine(engine)
        # Before anything opens: a listen URL that is no PostgreSQL URL stops the start-up.
        app.state.event_listener = EventListener(settings.listen_url)
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.read_sessionmaker = create_read_sessionmaker(engine)
        await refuse_to_start_without_keys(app.state.sessionmaker, settings.keyring)
        app.state.queue = await create_queue(settings)
        app.state.extractor = TextExtractor(
            ExtractionLimits.from_settings(settings), settings.extraction_concurrency
        )
        app.state.extractor.start()
        app.state.event_listener.start()
        settle_after_startup()
        keep_large_buffers_returnable()
        try:
            async with run_mcp(app.state), serve_metrics(app, settings):
                yield
        finally:
            await app.state.event_listener.close()
            app.state.extractor.close()
            await app.state.queue.aclose()
            await engine.dispose()

    app = FastAPIOffline(
        title="agentrun",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        root_path=settings.root_path,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # The registered definitions as they are now: a plugin installed later needs a restart.
    definitions = all_definitions()
    install_openapi(app, lambda schema: document_execution_types(schema, definitions))
    # Innermost, so that the request log and the metrics see its 413s.
    app.add_middleware(RequestBodyLimitMiddleware, max_bytes=settings.request_body_limit)
    install_metrics(app, settings, refresh_gauges)
    # Inside the correlation id's middleware, so that the request's log line carries its id.
    app.add_middleware(CompletedRequestMiddleware, observers=(log_request, record_http_metrics))
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    app.add_middleware(ForwardedHeadersMiddleware, trusted_proxies=settings.trusted_proxies)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Idempotent-Replayed", "Retry-After"],
        )
    for router in (
        definitions_router,
        executions_router,
        batches_router,
        schedules_router,
        retry_router,
        events_router,
        webhooks_router,
        conversations_router,
        agents_router,
        catalog_router,
        auth_router,
        access_router,
        quota_router,
    ):
        app.include_router(router, prefix="/api")
    app.include_router(media_router)
    # The operator's console (/ui/), over the same services and tokens.
    install_console(app, settings)
    app.include_router(health_router)
    if tracing is not None:
        # The outermost middleware: one span per request, the start of an execution's trace.
        tracing.instrument_app(app)
    # The agent protocols, over the same services and tokens (app/protocols).
    app.router.routes.append(Route(MCP_PATH, McpEndpoint(), include_in_schema=False))
    app.router.routes.append(a2a_mount())
    return app


app = create_app()
