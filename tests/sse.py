"""Reading a Server-Sent Events stream as a client does."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    data: Any


def parse(text: str) -> list[Event]:
    """The events of a whole stream's body (comments skipped)."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ": " not in line:
                continue
            name, value = line.split(": ", 1)
            fields[name] = value
        if fields:
            events.append(Event(int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


async def follow(response: httpx.Response) -> AsyncIterator[Event | str]:
    """Each event of a live stream as it arrives; a comment as its text."""
    block: list[str] = []
    async for line in response.aiter_lines():
        if line:
            block.append(line)
            continue
        if len(block) == 1 and block[0].startswith(":"):
            yield block[0]
        elif block:
            [event] = parse("\n".join(block))
            yield event
        block = []
