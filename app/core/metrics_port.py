"""The operator port: /metrics of an API process on a port of its own
(``AGENTRUN_METRICS_PORT``), which the deploy manifests leave out of the gateway's routes and
the Service; the public port answers /metrics only with ``AGENTRUN_METRICS_ON_API_PORT``.

A second uvicorn server in the API's process and event loop, sharing the app's state (its
settings, sessions, queue): the gauges are refreshed at each scrape as on the public port. With
several processes on one host (``uvicorn --workers``), the first binds it and the others run
without, as two workers on one host do."""

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

from app.core.config import Settings
from app.core.embedded_server import EmbeddedServer
from app.core.errors import install_error_handlers
from app.core.metrics import router

logger = logging.getLogger(__name__)

# Every interface: Prometheus scrapes the pod's address.
HOST = "0.0.0.0"


def _listening_socket(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        logger.warning("metrics port %s unavailable: %s", port, exc)
        return None
    return sock


@contextlib.asynccontextmanager
async def serve_metrics(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """Serve ``app``'s /metrics on ``settings.metrics_port`` while the context lasts."""
    sock = _listening_socket(settings.metrics_port) if settings.metrics_port else None
    if sock is None:
        yield
        return
    operator = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    operator.state = app.state
    install_error_handlers(operator)
    operator.include_router(router)
    server = EmbeddedServer(
        uvicorn.Config(operator, lifespan="off", log_config=None, access_log=False)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="metrics port")
    try:
        yield
    finally:
        server.should_exit = True
        await serving
        sock.close()
