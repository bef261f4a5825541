"""The switch for OpenTelemetry traces (docs/tracing.md).

Tracing is on in a process when an ``OTEL_`` variable is set (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``, ...), unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``.
Off, nothing of the OpenTelemetry SDK is imported and each call here is a check of one global:
``app.core.tracing_setup``, which builds the provider, the exporter and the instrumentations,
is imported only when tracing is on.

The trace of an execution crosses the queue through its row: the start request's
``traceparent`` is stored with it (``current_traceparent``), and the worker's run span is a
child of it (``run_span``), whoever enqueued the job.
"""

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from app.core.config import Settings

if TYPE_CHECKING:
    from app.core.tracing_setup import Tracing

_active: "Tracing | None" = None
HEX = frozenset("0123456789abcdef")


def requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(name.startswith("OTEL_") for name in environ)


def start(settings: Settings, default_service_name: str) -> "Tracing | None":
    """The process's tracing, set up on the first call when the environment asks for it."""
    global _active
    if _active is None and requested():
        from app.core.tracing_setup import from_environment

        _active = from_environment(default_service_name, include_content=settings.trace_content)
    return _active


def active() -> "Tracing | None":
    return _active


def use(tracing: "Tracing | None") -> None:
    """Make ``tracing`` the process's (tests: an in-memory exporter), or switch it off."""
    global _active
    _active = tracing


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span; None when tracing is off or nothing is traced."""
    return None if _active is None else _active.current_traceparent()


def run_span(execution_id: int, traceparent: str | None) -> AbstractContextManager[object]:
    """The worker's span around one attempt of an execution, a child of ``traceparent``."""
    if _active is None:
        return nullcontext()
    return _active.run_span(execution_id, traceparent)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a stored ``00-<trace id>-<span id>-<flags>``; None when
    the trace was not sampled (nothing exported it: stored only for the run to follow suit)."""
    if traceparent is None:
        return None
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[3]) != 2:
        return None
    sampled = int(parts[3], 16) & 1 if all(c in HEX for c in parts[3]) else 0
    return parts[1] if sampled else None


def trace_url(settings: Settings, trace_id: str | None) -> str | None:
    """Where an operator sees the trace (AGENTRUN_TRACE_URL_TEMPLATE), if it says."""
    if trace_id is None or settings.trace_url_template is None:
        return None
    return settings.trace_url_template.replace("{trace_id}", trace_id)
