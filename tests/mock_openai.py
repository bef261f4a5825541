"""A local OpenAI-compatible chat-completions server, for tests and benchmarks.

Plain asyncio (HTTP/1.1 with keep-alive, no dependencies). ``POST /v1/chat/completions``
answers with whatever the *responder* says: an assistant message (text or tool calls) or an
error status. The default responder calls the request's result tool (``final_result``) with
arguments made up from its JSON schema, so any run whose result is a plain object finishes.

In a test::

    async with MockOpenAI(responder) as server:
        ...  # model settings {"name": "openai:gpt-4o-mini", "base_url": server.url}

Standalone (for a benchmark)::

    python -m tests.mock_openai --port 8099 --latency 0.5
"""

import argparse
import asyncio
import contextlib
import inspect
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}
REASONS |= {500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Reply:
    """An assistant message: text and/or tool calls ``[(name, arguments), ...]``."""

    content: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # The answer's "usage" object instead of the counts made up from the sizes; `None` with
    # `no_usage` leaves it out, as some servers do.
    usage: dict[str, Any] | None = None
    no_usage: bool = False


@dataclass(frozen=True)
class ErrorReply:
    status: int = 500
    message: str = "The server had an error while processing your request."
    # Extra response headers, e.g. {"Retry-After": "0"}; None: retry-after-ms 1, so that the
    # OpenAI SDK's retries come at once.
    headers: dict[str, str] | None = None


Responder = Callable[[dict[str, Any]], Reply | ErrorReply | Awaitable[Reply | ErrorReply]]


def text(content: str) -> Reply:
    return Reply(content=content)


def call(name: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=[(name, arguments)])


def tool_names(request: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools", [])]


def tool_schema(request: dict[str, Any], name: str) -> dict[str, Any]:
    for tool in request.get("tools", []):
        if tool["function"]["name"] == name:
            parameters: dict[str, Any] = tool["function"].get("parameters", {})
            return parameters
    raise KeyError(name)


def sample(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A small value valid for simple JSON schemas (what a benchmark's model would answer)."""
    root = root or schema
    if "$ref" in schema:
        target: Any = root
        for key in schema["$ref"].removeprefix("#/").split("/"):
            target = target[key]
        return sample(target, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return sample(options[0], root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        required = schema.get("required", list(properties))
        return {name: sample(properties[name], root) for name in required if name in properties}
    if kind == "array":
        return [sample(schema.get("items", {}), root) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return "x" * max(schema.get("minLength", 4), 1)
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    return None


def default_responder(request: dict[str, Any]) -> Reply:
    """Answer through the result tool with made-up arguments, or with text if there is none."""
    for name in tool_names(request):
        if name.startswith("final_result"):
            return call(name, **sample(tool_schema(request, name)))
    return text("Done.")


class MockOpenAI:
    def __init__(
        self,
        responder: Responder = default_responder,
        *,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.responder = responder
        self.latency = latency
        self.host = host
        self.port = port
        self.requests: list[dict[str, Any]] = []
        # The headers of every request received (any path), names in lower case: which
        # credentials reached the server.
        self.headers: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._connections):
            writer.close()
        if self._handlers:
            # Closed connections end their handlers at once; the rest are cut off.
            _, stuck = await asyncio.wait(self._handlers, timeout=1)
            for task in stuck:
                task.cancel()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> "MockOpenAI":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.headers.append(headers)
                status, payload, extra = await self._answer(method, path, body)
                data = json.dumps(payload).encode()
                head = [
                    f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
                    "Content-Type: application/json",
                    f"Content-Length: {len(data)}",
                    *(f"{k}: {v}" for k, v in extra.items()),
                ]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.CancelledError):
            # The client went away or the server stops: nothing to answer.
            pass
        finally:
            self._connections.discard(writer)
            if handler is not None:
                self._handlers.discard(handler)
            writer.close()

    async def _answer(
        self, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return 404, {"error": {"message": f"No route {method} {path}"}}, {}
        request = json.loads(body or b"{}")
        self.requests.append(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        reply = self.responder(request)
        if inspect.isawaitable(reply):
            reply = await reply
        if isinstance(reply, ErrorReply):
            kind = "rate_limit_error" if reply.status == 429 else "server_error"
            error = {"error": {"message": reply.message, "type": kind}}
            headers = reply.headers if reply.headers is not None else {"retry-after-ms": "1"}
            return reply.status, error, headers
        return 200, self._completion(request, reply), {}

    def _completion(self, request: dict[str, Any], reply: Reply) -> dict[str, Any]:
        number = next(self._ids)
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{number}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
                for i, (name, arguments) in enumerate(reply.tool_calls)
            ]
        # Rough but deterministic token counts: about four characters a token.
        prompt_tokens = len(json.dumps(request.get("messages", []))) // 4
        completion_tokens = len(json.dumps(message)) // 4
        usage = reply.usage or {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        completion: dict[str, Any] = {
            "id": f"chatcmpl-mock-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "mock"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": usage,
        }
        if reply.no_usage:
            del completion["usage"]
        return completion


async def _main(host: str, port: int, latency: float) -> None:
    server = MockOpenAI(latency=latency, host=host, port=port)
    await server.start()
    print(f"mock OpenAI listening on {server.url} (latency {latency}s)", flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.host, args.port, args.latency))


if __name__ == "__main__":
    main()
