"""The baseline of the submit scenario, in the API's own process: the real application
(``app.main.app``) with the bare endpoint of bench/bare.py added, served by
``uvicorn bench.bare_app:app``.

The bare endpoint runs behind the same middleware, exception handlers and server as
``POST /api/agents/{id}/agentic-executions/``, so the two differ only in what the endpoints
do. The real application's lifespan still runs: the bare endpoint's pool and queue are opened
inside it, not instead of it.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import Lifespan

from app.main import app as api
from bench.bare import bare_backend, router


def _with_bare_backend(lifespan: Lifespan[Any]) -> Lifespan[Any]:
    @asynccontextmanager
    async def chained(app: FastAPI) -> AsyncIterator[Any]:
        async with lifespan(app) as state, bare_backend(app):
            yield state

    return chained


api.router.lifespan_context = _with_bare_backend(api.router.lifespan_context)
# Appended after the application's own routes, so that their matching is unchanged.
api.include_router(router)
app = api
