"""The benchmark's model server: ``tests.mock_openai`` plus a small control API.

Run by the harness as its own process (``python -m bench.mock_model --port N``), on uvloop, so
that serving the model never competes with the harness's client loop. Beside
``POST /v1/chat/completions`` (answered by the default responder, which calls the run's
``final_result`` tool: one model call finishes a ``structured-task`` execution) it serves:

- ``GET /_bench/stats``: calls so far, calls in flight, the peak in flight, the latency, and
  the wall-clock times of the first and the last call since the last reset;
- ``GET /_bench/last-request``: the last chat-completions body received (the direct baseline
  replays it);
- ``GET /_bench/arrivals``: for each ``bench-mark:<hex>`` found in a call's body (the harness
  puts one in an execution's input), the wall-clock time its first call arrived;
- ``POST /_bench/configure`` ``{"latency": s, "hold": bool, "reset": true}``: change the
  latency; hold every call (it waits, in flight, until ``hold`` is set false again); reset the
  peak, the first/last call times and the arrivals.
"""

import argparse
import asyncio
import contextlib
import json
import re
import time
from typing import Any

from tests.mock_openai import MockOpenAI

CONTROL_PREFIX = "/_bench/"
MARK = re.compile(rb"bench-mark:([0-9a-f]{8,32})")


class BenchModelServer(MockOpenAI):
    def __init__(self, *, latency: float, port: int) -> None:
        super().__init__(latency=latency, host="127.0.0.1", port=port)
        self.calls = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.first_call_at: float | None = None
        self.last_call_at: float | None = None
        self.last_request: dict[str, Any] | None = None
        self.arrivals: dict[str, float] = {}
        # Set: calls go on; cleared: they wait in flight (the memory scenario holds them).
        self.released = asyncio.Event()
        self.released.set()

    async def _answer(
        self, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if path.startswith(CONTROL_PREFIX):
            return self._control(method, path.removeprefix(CONTROL_PREFIX).strip("/"), body)
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return await super()._answer(method, path, body)
        now = time.time()
        mark = MARK.search(body)
        if mark is not None:
            self.arrivals.setdefault(mark.group(1).decode(), now)
        self.calls += 1
        self.first_call_at = self.first_call_at or now
        self.last_call_at = now
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await self.released.wait()
            return await super()._answer(method, path, body)
        finally:
            self.in_flight -= 1
            # The base class keeps every request; only the last one is of use here, and
            # keeping thousands would make this process the one whose memory grows.
            if self.requests:
                self.last_request = self.requests[-1]
                self.requests.clear()

    def _control(
        self, method: str, name: str, body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method == "GET" and name == "stats":
            return 200, self._stats(), {}
        if method == "GET" and name == "arrivals":
            return 200, self.arrivals, {}
        if method == "GET" and name == "last-request":
            return 200, self.last_request or {}, {}
        if method == "POST" and name == "configure":
            settings = json.loads(body or b"{}")
            if "latency" in settings:
                self.latency = float(settings["latency"])
            if settings.get("hold") is True:
                self.released.clear()
            elif settings.get("hold") is False:
                self.released.set()
            if settings.get("reset"):
                self.peak_in_flight = self.in_flight
                self.first_call_at = self.last_call_at = None
                self.arrivals.clear()
            return 200, self._stats(), {}
        return 404, {"error": {"message": f"No control route {method} {name}"}}, {}

    def _stats(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "latency": self.latency,
            "holding": not self.released.is_set(),
            "first_call_at": self.first_call_at,
            "last_call_at": self.last_call_at,
        }


async def serve(port: int, latency: float) -> None:
    server = BenchModelServer(latency=latency, port=port)
    await server.start()
    print(f"bench model server on {server.url} (latency {latency}s)", flush=True)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="The benchmark's mock model server.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with contextlib.suppress(KeyboardInterrupt), runner:
        runner.run(serve(args.port, args.latency))


if __name__ == "__main__":
    main()
