"""Lua scripts on Redis: several commands, atomically, in one round trip."""

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError


class LuaScript:
    """Run by its SHA-1 (EVALSHA); sent whole once, when Redis does not know it yet (after a
    restart or a SCRIPT FLUSH)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(
        self, redis: Redis, keys: Sequence[str], args: Sequence[str | bytes | int]
    ) -> Any:
        arguments: list[Any] = [*keys, *args]
        try:
            return await redis.evalsha(self.sha, len(keys), *arguments)  # type: ignore[misc]
        except NoScriptError:
            return await redis.eval(self.source, len(keys), *arguments)  # type: ignore[misc]
