"""The worker applies a client's output_schema without fetching anything and in bounded time,
also to rows stored before the submit-time check (or written around it)."""

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import Factory
from tests.worker.harness import Script, Worker, answer, reload, trace
from tests.worker.test_outcomes import structured_task

# Python's re (what the worker used) needs minutes for this against 30 "a" and a "!".
CATASTROPHIC = {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}},
    "required": ["code"],
}


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A loopback port that accepts connections and never answers. It closes after 10 s, so
    that a worker blocked on it (the code before the fix) ends the test instead of hanging it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    closer = threading.Timer(10, listener.close)
    closer.start()
    try:
        yield listener
    finally:
        closer.cancel()
        listener.close()


def connected(listener: socket.socket) -> bool:
    try:
        listener.accept()[0].close()
    except (BlockingIOError, OSError):
        return False
    return True


@pytest.mark.parametrize("keyword", ["$ref", "$dynamicRef"])
async def test_a_stored_remote_reference_fails_the_run_without_fetching(
    worker: Worker,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    silent_listener: socket.socket,
    keyword: str,
) -> None:
    target = f"http://127.0.0.1:{silent_listener.getsockname()[1]}/person.json"
    schema = {"type": "object", "properties": {"person": {keyword: target}}}
    execution = await structured_task(factory, schema=schema)
    script = Script(answer({"person": {"name": "Ada"}}))

    started = time.monotonic()
    await worker.run(execution.id, script)

    assert time.monotonic() - started < 5
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.failure_code) == ("failed", "invalid_output_schema")
    assert done.failure_explanation == (
        f"output_schema has {keyword} {target!r} at $.properties.person: only local references "
        "('#' or '#/…') are allowed, nothing is fetched"
    )
    assert script.requests == []
    assert not connected(silent_listener)


async def test_a_catastrophic_pattern_is_checked_in_linear_time(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await structured_task(factory, schema=CATASTROPHIC)
    hostile = "a" * 30 + "!"
    script = Script(answer({"code": hostile}), answer({"code": "aaaa"}))

    started = time.monotonic()
    await worker.run(execution.id, script)

    elapsed = time.monotonic() - started
    done = await reload(sessionmaker, execution.id)
    assert (done.status, done.result) == ("finished", {"code": "aaaa"})
    feedback = [m.content for m in await trace(sessionmaker, done.conversation_id)]
    assert any(f'"{hostile}" does not match "^(a+)+$"' in text for text in feedback)
    assert elapsed < 5, f"{elapsed:.1f} s"


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


async def test_a_stored_schema_nested_260_deep_fails_the_run_with_its_code(
    worker: Worker, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    execution = await structured_task(factory, schema=nested(260))
    script = Script()

    status = await worker.run(execution.id, script)

    assert status == "failed"
    done = await reload(sessionmaker, execution.id)
    assert (done.failure_code, done.failure_explanation) == (
        "invalid_output_schema",
        "output_schema nests more than 64 levels deep",
    )
    assert script.requests == []
