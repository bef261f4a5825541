"""What a validator answers about a candidate output, and how a run is ended on purpose.

A validator is a plain function ``(run, output) -> Verdict`` (or a coroutine function). The
worker runs a definition's validators in order on every candidate output: ``Ok`` passes it to
the next one, ``Retry`` sends the feedback back to the model (a pydantic-ai ``ModelRetry``),
``Fail`` ends the run as failed with its code and explanation.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic_ai import RunContext, Tool

from app.definitions.effects import read_only
from app.definitions.run import ExecutionRun


@dataclass(frozen=True)
class Ok:
    """The output passes this validator."""


@dataclass(frozen=True)
class Retry:
    """The output is wrong but fixable: ``feedback`` tells the model what to change."""

    feedback: str


@dataclass(frozen=True)
class Fail:
    """The run cannot succeed: it ends as failed with ``code`` (None reads as ``unknown``)."""

    explanation: str
    code: str | None = "validation_failed"


Verdict = Ok | Retry | Fail
OK = Ok()

Validator = Callable[[ExecutionRun, Any], Verdict | Awaitable[Verdict]]


class ExecutionFailed(Exception):
    """Raised from a tool, a validator or a definition hook to end the run as failed.

    ``code=None`` is a failure reported without a code: it is stored as ``unknown``.
    """

    def __init__(self, explanation: str, code: str | None = "validation_failed") -> None:
        super().__init__(explanation)
        self.explanation = explanation
        self.code = code


@read_only
async def stop_execution(ctx: RunContext[ExecutionRun], reason: str) -> str:
    """Stop the execution because the task cannot be completed.

    Call this only when the task is impossible with the data available (for example the
    information needed does not exist anywhere you can look). The run ends as failed and
    `reason` is shown to the user, so write one clear sentence.

    Args:
        reason: Why the task cannot be completed, in plain language.
    """
    raise ExecutionFailed(reason.strip() or "The agent stopped the execution.")


STOP_EXECUTION_TOOL: Tool[Any] = Tool(stop_execution, takes_ctx=True)
