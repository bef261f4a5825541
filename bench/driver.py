"""Driving the API over HTTP: bounded request loops, submit-and-poll, latency statistics."""

import asyncio
import functools
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

TERMINAL = frozenset({"finished", "failed"})
# Polling an execution: first look after FIRST_POLL, then back off by POLL_GROWTH up to MAX_POLL,
# so that a fast execution is seen quickly and a slow one does not flood the API.
FIRST_POLL_SECONDS = 0.01
POLL_GROWTH = 1.5
MAX_POLL_SECONDS = 0.1
REQUEST_TIMEOUT_SECONDS = 60.0

# The body of every benchmark execution: one model call answers it (the mock calls the result
# tool with a value valid for this schema).
EXECUTION_BODY: dict[str, Any] = {
    "execution_key": "structured-task",
    "input": {
        "instructions": "Summarise the benchmark run in one sentence.",
        "output_schema": {
            "type": "object",
            "properties": {"summary": {"type": "string"}},
            "required": ["summary"],
        },
    },
}


@functools.cache
def _tls() -> ssl.SSLContext:
    # Every target is plain http on loopback; one context instead of one per client, since
    # building it (loading the CA bundle) costs tens of milliseconds of CPU each time.
    return ssl.create_default_context()


def http_client(
    base_url: str, token: str | None = None, connections: int = 100
) -> httpx.AsyncClient:
    headers = {"Authorization": f"Token {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=REQUEST_TIMEOUT_SECONDS,
        verify=_tls(),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def bounded(
    count: int,
    concurrency: int,
    work: Callable[[int], Awaitable[T]],
    *,
    time_limit: float,
    spread: float = 0.0,
) -> tuple[list[T], float]:
    """Run ``count`` pieces of work, ``concurrency`` at once: lane k calls ``work(k)`` again
    and again, the first time after k/concurrency of ``spread`` seconds (a steady rate rather
    than all at once). No new piece starts after ``time_limit`` seconds. The results (in
    completion order) and the wall time."""
    results: list[T] = []
    started_count = 0
    started = time.perf_counter()
    deadline = started + time_limit

    async def lane(number: int) -> None:
        nonlocal started_count
        if spread:
            await asyncio.sleep(spread * number / concurrency)
        while started_count < count and time.perf_counter() < deadline:
            started_count += 1
            results.append(await work(number))

    await asyncio.gather(*(lane(k) for k in range(min(concurrency, count))))
    return results, time.perf_counter() - started


class Lanes:
    """One HTTP client, holding one connection, per concurrent lane.

    httpx's connection pool is costly when shared by many concurrent requests: here, about
    3.5 ms of CPU a request at 50 connections against 0.75 ms for a client per lane, which on a
    2-core machine would take that CPU from the processes under test.
    """

    def __init__(self, base_url: str, token: str | None, count: int) -> None:
        self.clients = [http_client(base_url, token, connections=1) for _ in range(count)]

    async def __aenter__(self) -> "Lanes":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients))

    async def run(
        self,
        count: int,
        work: Callable[[httpx.AsyncClient], Awaitable[T]],
        *,
        time_limit: float,
        spread: float = 0.0,
    ) -> tuple[list[T], float]:
        return await bounded(
            count,
            len(self.clients),
            lambda lane: work(self.clients[lane]),
            time_limit=time_limit,
            spread=spread,
        )


@dataclass
class Timed:
    """One request (or one submit-and-poll) as the client saw it."""

    seconds: float
    status_code: int
    body: Any = None
    polls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


async def timed_request(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Timed:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        return Timed(time.perf_counter() - started, 0, {"error": repr(exc)})
    elapsed = time.perf_counter() - started
    try:
        body = response.json()
    except ValueError:
        body = response.text[:500]
    return Timed(elapsed, response.status_code, body)


async def submit(client: httpx.AsyncClient, agent_id: int, mark: str | None = None) -> Timed:
    """POST an execution; with ``mark``, its input carries ``bench-mark:<mark>``, by which the
    model server tells its calls apart (``ModelServer.arrivals``)."""
    body = EXECUTION_BODY
    if mark is not None:
        instructions = f"{EXECUTION_BODY['input']['instructions']} (bench-mark:{mark})"
        body = {
            **EXECUTION_BODY,
            "input": {**EXECUTION_BODY["input"], "instructions": instructions},
        }
    return await timed_request(
        client, "POST", f"/api/agents/{agent_id}/agentic-executions/", json=body
    )


async def submit_and_wait(client: httpx.AsyncClient, agent_id: int, time_limit: float) -> Timed:
    """POST an execution, then poll it until it is terminal (or ``time_limit`` runs out)."""
    started = time.perf_counter()
    posted = await submit(client, agent_id)
    if posted.status_code != 202:
        return Timed(time.perf_counter() - started, posted.status_code, posted.body)
    execution_id = posted.body["id"]
    delay, polls = FIRST_POLL_SECONDS, 0
    deadline = started + time_limit
    body: Any = posted.body
    while body.get("status") not in TERMINAL and time.perf_counter() < deadline:
        await asyncio.sleep(delay)
        delay = min(delay * POLL_GROWTH, MAX_POLL_SECONDS)
        polled = await timed_request(client, "GET", f"/api/agentic-executions/{execution_id}/")
        polls += 1
        if polled.status_code == 200:
            body = polled.body
    return Timed(time.perf_counter() - started, 200, body, polls, {"post_seconds": posted.seconds})


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 100 samples is the 99th value)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_ms(seconds: Sequence[float]) -> dict[str, float]:
    if not seconds:
        return {"n": 0}
    return {
        "n": len(seconds),
        "mean_ms": round(1000 * sum(seconds) / len(seconds), 2),
        "p50_ms": round(1000 * percentile(seconds, 0.50), 2),
        "p90_ms": round(1000 * percentile(seconds, 0.90), 2),
        "p99_ms": round(1000 * percentile(seconds, 0.99), 2),
        "max_ms": round(1000 * max(seconds), 2),
    }


def status_codes(results: Sequence[Timed]) -> dict[str, int]:
    codes: dict[str, int] = {}
    for result in results:
        codes[str(result.status_code)] = codes.get(str(result.status_code), 0) + 1
    return codes


class ModelServer:
    """The mock model server's control API."""

    def __init__(self, url: str) -> None:
        self.client = http_client(url, connections=4)

    async def stats(self) -> dict[str, Any]:
        response = await self.client.get("/_bench/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    async def configure(
        self, *, latency: float | None = None, hold: bool | None = None, reset: bool = False
    ) -> None:
        settings: dict[str, Any] = {"reset": reset}
        if latency is not None:
            settings["latency"] = latency
        if hold is not None:
            settings["hold"] = hold
        (await self.client.post("/_bench/configure", json=settings)).raise_for_status()

    async def arrivals(self) -> dict[str, float]:
        """When the first model call of each marked execution arrived (wall clock)."""
        response = await self.client.get("/_bench/arrivals")
        response.raise_for_status()
        body: dict[str, float] = response.json()
        return body

    async def last_request(self) -> dict[str, Any]:
        response = await self.client.get("/_bench/last-request")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def aclose(self) -> None:
        await self.client.aclose()
