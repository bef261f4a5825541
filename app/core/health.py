"""Liveness and readiness probes for orchestrators and load balancers."""

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])

PROBE_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", summary="The process is up", description="No dependency is checked.")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _database_ready(request: Request) -> bool:
    async with request.app.state.sessionmaker() as session:
        await session.execute(text("SELECT 1"))
    return True


async def _queue_ready(request: Request) -> bool:
    return bool(await request.app.state.queue.ping())


@router.get(
    "/readyz",
    summary="PostgreSQL and Redis are reachable",
    description="200 when both answer within 2 s, else 503 naming the one that did not.",
    responses={503: {"description": "A dependency is unreachable."}},
)
async def readyz(request: Request) -> JSONResponse:
    checks = {"database": _database_ready, "redis": _queue_ready}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                await check(request)
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the body says which
            results[name] = f"unavailable: {type(exc).__name__}"
    ready = all(value == "ok" for value in results.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", **results}, status_code=200 if ready else 503
    )
