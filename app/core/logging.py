"""Structured logs: one JSON object a line, carrying the request id and the execution id.

Every line is written with the credentials of any URL in it hidden (``app.core.redaction``):
an HTTP client logs each request's URL at INFO, and a model's base URL may carry
``user:password@`` or ``?api-key=…``.
"""

import logging
import sys
from contextvars import ContextVar
from typing import TextIO

from asgi_correlation_id import correlation_id
from pythonjsonlogger.json import JsonFormatter

from app.core.completed_requests import CompletedRequest
from app.core.config import Settings
from app.core.redaction import redact_urls_in

# Set by the worker while it runs an execution, so every line it logs says which one.
execution_id_var: ContextVar[int | None] = ContextVar("execution_id", default=None)

request_logger = logging.getLogger("agentrun.request")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = correlation_id.get()
        record.execution_id = execution_id_var.get()
        return True


class RedactingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        # The whole line: the message, its arguments, extras and any traceback.
        return redact_urls_in(super().format(record))


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_urls_in(super().format(record))


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.addFilter(ContextFilter())
    if settings.log_format == "json":
        handler.setFormatter(
            RedactingJsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(execution_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level.upper())
    # uvicorn installs handlers of its own; route its lines through ours instead, and let our
    # request log replace its access log.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def log_request(completed: CompletedRequest) -> None:
    """One line per HTTP request: method, path, status, duration and the client's address
    (the peer's, or the one a trusted proxy forwarded)."""
    scope = completed.scope
    client = scope.get("client")
    request_logger.info(
        "%s %s %s",
        scope["method"],
        scope["path"],
        completed.status,
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "status": completed.status,
            "duration_ms": round(completed.duration_seconds * 1000, 2),
            "client": None if client is None else client[0],
        },
    )
