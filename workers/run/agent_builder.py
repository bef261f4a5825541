"""The pydantic-ai ``Agent`` of a run, built once and shared by the runs that would build the same.

Building an Agent (its output schema and tool definitions) costs a few milliseconds of CPU, a
good part of what a short run costs the worker. An Agent holds no state of a run: what differs
per run travels as the run's deps (``ExecutionRun``), in a context variable (the worker's
``RunHooks``: the transcript and the progress, which plugins never see) and as the arguments of
``Agent.iter`` (prompt, request settings, usage). So one Agent serves every run with the same
definition, model, output type, system prompt and tools; runs of one definition usually agree on
all of them (a structured task's output type is cached per schema by its definition).
"""

import contextlib
import inspect
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import Agent, ModelRetry, RunContext, RunUsage, Tool
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model
from pydantic_ai.output import OutputSpec

from app.definitions.base import ExecutionDefinition
from app.definitions.effects import effect_of
from app.definitions.run import ExecutionRun
from app.definitions.validators import STOP_EXECUTION_TOOL, ExecutionFailed, Fail, Retry
from workers.run.durability import JournalDurability
from workers.run.transcript import Transcript

# Agents kept per worker; a definition whose tools or output type differ per run builds one
# per run and only cycles through the cache.
CACHED_AGENTS = 128


@dataclass
class Progress:
    """What the run left behind, also when it ended with an exception."""

    usage: RunUsage = field(default_factory=RunUsage)
    messages: Callable[[], list[ModelMessage]] = list
    feedback: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunHooks:
    """The worker's side of one run, reached by the shared Agent through the run's deps."""

    transcript: Transcript
    progress: Progress


# The hooks of the run in progress in this task (and the tasks it starts: tools called in
# parallel), as pydantic-ai keeps its own run context: not on the interface plugins build on.
_current_hooks: ContextVar[RunHooks] = ContextVar("run_hooks")


@contextlib.contextmanager
def running_with(hooks: RunHooks) -> Iterator[None]:
    """Make ``hooks`` the current run's for the duration of the block."""
    token = _current_hooks.set(hooks)
    try:
        yield
    finally:
        _current_hooks.reset(token)


def current_hooks() -> RunHooks:
    hooks = _current_hooks.get(None)
    if hooks is None:
        raise LookupError("no run in progress: its worker hooks are not set")
    return hooks


async def _validate(
    definition: ExecutionDefinition, ctx: RunContext[ExecutionRun], output: Any
) -> Any:
    """The definition's validators as one output validator: *retry* raises ``ModelRetry`` with
    the feedback, *fail* raises ``ExecutionFailed``; each verdict goes into the trace."""
    if ctx.partial_output:
        return output
    hooks = current_hooks()
    for validator in definition.validators:
        verdict = validator(ctx.deps, output)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        name = getattr(validator, "__name__", repr(validator))
        if isinstance(verdict, Retry):
            hooks.progress.feedback.append(verdict.feedback)
            await hooks.transcript.note(
                "validation", verdict.feedback, validator=name, verdict="retry"
            )
            raise ModelRetry(verdict.feedback)
        if isinstance(verdict, Fail):
            await hooks.transcript.note(
                "validation", verdict.explanation, validator=name, verdict="fail"
            )
            raise ExecutionFailed(verdict.explanation, verdict.code)
    return output


def build_agent(
    definition: ExecutionDefinition,
    model: Model,
    output_type: OutputSpec[Any],
    system_prompt: str,
    tools: Sequence[Tool[ExecutionRun]],
) -> Agent[ExecutionRun, Any]:
    every_tool = [*tools, STOP_EXECUTION_TOOL]
    # Model requests and tool calls are journaled units while the run has a journal
    # (workers/run/durability.py); each tool as its function declares (app/definitions/effects.py).
    durability = JournalDurability(effects={tool.name: effect_of(tool) for tool in every_tool})
    agent: Agent[ExecutionRun, Any] = Agent(
        model,
        output_type=output_type,
        system_prompt=system_prompt,
        deps_type=ExecutionRun,
        tools=every_tool,
        retries={"tools": definition.max_retries, "output": definition.max_retries},
        name=definition.key,
        capabilities=[durability],
    )

    async def validate(ctx: RunContext[ExecutionRun], output: Any) -> Any:
        return await _validate(definition, ctx, output)

    agent.output_validator(validate)
    return agent


class AgentCache:
    """Agents by what they are built from, the least recently used dropped past ``size``."""

    def __init__(self, size: int = CACHED_AGENTS) -> None:
        self.size = size
        # Keyed by identity (tools and output types need not be hashable); each entry keeps
        # the objects of its key alive, so that their ids are not reused meanwhile.
        self._agents: OrderedDict[tuple[Any, ...], tuple[Agent[ExecutionRun, Any], object]] = (
            OrderedDict()
        )

    def agent_for(
        self,
        definition: ExecutionDefinition,
        model: Model,
        output_type: OutputSpec[Any],
        system_prompt: str,
        tools: Sequence[Tool[ExecutionRun]],
    ) -> Agent[ExecutionRun, Any]:
        parts = (definition, model, output_type, *tools)
        key = (system_prompt, *map(id, parts))
        entry = self._agents.get(key)
        if entry is not None:
            self._agents.move_to_end(key)
            return entry[0]
        agent = build_agent(definition, model, output_type, system_prompt, tools)
        self._agents[key] = (agent, parts)
        if len(self._agents) > self.size:
            self._agents.popitem(last=False)
        return agent

    def clear(self) -> None:
        self._agents.clear()
