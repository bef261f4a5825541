"""What a tool does to the world, declared by its author, so that a resumed run treats it right.

Every tool call of a run is journaled with its result (``workers/run/durability.py``): when a worker
dies and the next attempt replays the run, a call whose result is journaled is not run again,
whatever the tool; the journaled result is returned. What a declaration decides is the case in
between: a call that started and never reported a result (its worker died during it).

- ``@read_only``: no side effect. Run again; nothing is written before it runs.
- ``@effectful()`` (idempotent): running it twice leaves the same state as once. Run again.
- ``@effectful(idempotent=False)``: at most once. A row is journaled before it runs; a call
  started without a result is not run again: the model gets, as the call's result, that an
  earlier attempt may have applied it and that it must check (read the product, say) before
  calling the tool again.

An undeclared tool is treated as ``@effectful()`` (run again), as it always was.

``on_replay(ctx, args, result)``, optional on either decorator: called instead of the tool when
its journaled result is returned, so that a tool that keeps per-run state (``run.state``) can
restore it; the tool itself is not run.

    @effectful(idempotent=False, on_replay=note_written)
    async def update_product(ctx: RunContext[ExecutionRun], sku: str, ...) -> str: ...
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic_ai import RunContext, Tool

from app.definitions.run import ExecutionRun

F = TypeVar("F", bound=Callable[..., Any])

# Called with the run context, the call's arguments and its journaled result.
OnReplay = Callable[[RunContext[ExecutionRun], dict[str, Any], Any], None]

_ATTRIBUTE = "__agentrun_effect__"


class Effect(enum.StrEnum):
    READ_ONLY = "read_only"
    IDEMPOTENT = "idempotent"
    AT_MOST_ONCE = "at_most_once"


@dataclass(frozen=True)
class ToolEffect:
    effect: Effect = Effect.IDEMPOTENT
    on_replay: OnReplay | None = None

    @property
    def journaled_before(self) -> bool:
        """Whether a row is written before the tool runs (only an at-most-once tool needs it)."""
        return self.effect == Effect.AT_MOST_ONCE


UNDECLARED = ToolEffect()


def _declare(function: F, declared: ToolEffect) -> F:
    setattr(function, _ATTRIBUTE, declared)
    return function


def read_only(function: F) -> F:
    """Declare a tool without side effects."""
    return _declare(function, ToolEffect(Effect.READ_ONLY))


def effectful(*, idempotent: bool = True, on_replay: OnReplay | None = None) -> Callable[[F], F]:
    """Declare a tool with side effects; ``idempotent=False``: never run again blindly."""
    declared = ToolEffect(Effect.IDEMPOTENT if idempotent else Effect.AT_MOST_ONCE, on_replay)
    return lambda function: _declare(function, declared)


def effect_of(tool: Tool[Any]) -> ToolEffect:
    """What ``tool``'s function declares (``UNDECLARED`` when nothing)."""
    declared = getattr(tool.function, _ATTRIBUTE, None)
    return declared if isinstance(declared, ToolEffect) else UNDECLARED
