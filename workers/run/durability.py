"""Durable runs: the journal of an execution's model responses and tool results, and the
pydantic-ai durability capability that writes and replays it.

Built on pydantic-ai's durable execution surface (``pydantic_ai.durable_exec``, as its
Temporal, DBOS and Prefect engines are): ``JournalDurability`` is a ``BaseDurabilityCapability``
whose operation backend turns each model request and each tool call of a run into a unit.
``JournalBackend.execute`` answers a unit from the journal when an earlier attempt of the
execution completed it, and otherwise runs it and journals its payload (pydantic-ai's JSON
codec: a ``ModelResponse`` as ``ModelMessagesTypeAdapter`` writes it). So the next attempt of an
execution whose worker died runs the loop again from the start, but every model request already
answered and every tool call already made is returned from the journal: the model is asked only
what it was not asked yet, and tools do not run twice. The live run gets the unit's own value
(the engine's codec is the identity); only the journal holds its JSON, and a replay what it
decodes to.

Beyond those engines (which run a unit that crashed mid-way again): a tool declared at most once
(``app.definitions.effects``) gets a row before it runs, and a call found started without a
result is not run again; the model is told to check instead.

A replay uses a row only for the same request (``args_hash``: the request's new parts, or the
tool call's arguments): should the run take another path than the earlier attempt (a
definition's ``prepare`` reads data that changed meanwhile), the journal is dropped from that
step on and the run goes on live.

Every write is one statement committed on its own, fenced by the attempt, like the trace's; a
live model response's row goes in the same statement as the response's trace entries
(``with_response``), a round trip less per model call.
"""

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, cast

from pydantic_ai import RunContext
from pydantic_ai.durable_exec import (
    IDENTITY_CODEC,
    JSON_CODEC,
    BaseDurabilityCapability,
    CallableOperationBackend,
    CallToolResult,
    DurabilityEngineSpec,
    DurableOperationId,
    JournalOperationNamer,
    ModelRequestId,
    RoleBasedOperationConfig,
    ToolsetCallToolId,
)

# Private, pinned with pydantic-ai's minor (pyproject.toml): the wrapping a tool's own result
# gets, for the one we give instead of running it.
from pydantic_ai.durable_exec._toolset import wrap_tool_call_result
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
)
from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.definitions.effects import UNDECLARED, Effect, ToolEffect
from app.definitions.run import ExecutionRun
from app.executions.transitions import attempt_values
from app.journal.models import StepKind
from app.journal.repository import JournaledStep, forget_steps_from, write_step
from workers.run.database import in_one_statement

logger = logging.getLogger(__name__)

UNCERTAIN_RESULT = (
    "Not run: an earlier attempt of this execution (attempt {attempt}) started this same call "
    "and stopped before it reported a result, so its effect may or may not have been applied. "
    "Check the current state (for example read the data it changes) before calling {tool} again."
)


def _digest(value: Any) -> str:
    # Keys sorted: a payload read back from jsonb has its keys in jsonb's order.
    jsonable = to_jsonable_python(value, fallback=repr, bytes_mode="base64")
    return hashlib.sha256(json.dumps(jsonable, sort_keys=True).encode()).hexdigest()


def request_hash(messages: Sequence[ModelMessage]) -> str:
    """What a model request adds to the history, without its timestamps: by induction (the
    responses before it are replayed, the requests before it were compared), the same hash
    means the same request."""
    last = messages[-1] if messages else None
    if not isinstance(last, ModelRequest):
        return _digest(None)
    dumped = ModelMessagesTypeAdapter.dump_python([last], mode="json")[0]
    parts = [{k: v for k, v in part.items() if k != "timestamp"} for part in dumped["parts"]]
    return _digest([parts, dumped.get("instructions")])


def arguments_hash(tool_args: Mapping[str, Any]) -> str:
    return _digest(tool_args)


@dataclass
class ReplayCounts:
    """What an attempt took from the journal instead of doing it again."""

    model_responses: int = 0
    tool_results: int = 0
    uncertain_calls: int = 0


# (fence, the row's ``write_step`` arguments, the response) -> False when the attempt no
# longer holds the execution (nothing written).
ResponseWriter = Callable[[dict[str, int], dict[str, Any], ModelResponse], Awaitable[bool]]


class RunJournal:
    """The journal as one attempt sees it: what the earlier attempts left, and its writes."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        execution_id: int,
        attempt: int,
        steps: Sequence[JournaledStep] = (),
        retry_for: float = 0.0,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.execution_id = execution_id
        self.attempt = attempt
        self.retry_for = retry_for
        self.on_lost = on_lost
        self._fence = attempt_values(execution_id, attempt)
        self._rows: dict[tuple[int, str], JournaledStep] = {(s.step, s.call_id): s for s in steps}
        self.replayed = ReplayCounts()
        # The tool calls whose result came from the journal (or was withheld as uncertain).
        self.replayed_calls: set[str] = set()
        # The run step at which this attempt stopped replaying the model (None: still replaying
        # or never did).
        self.live_from: int | None = None
        # Writes a live model response's row together with the response's trace entries, in
        # one statement (``workers.run.transcript.Transcript.journal_response``); None: the row
        # alone.
        self.with_response: ResponseWriter | None = None

    @property
    def resumable(self) -> bool:
        """Whether earlier attempts left model responses to replay."""
        return any(call_id == "" for _, call_id in self._rows)

    def model_responses(self) -> int:
        return sum(1 for _, call_id in self._rows if call_id == "")

    async def _write(self, **row: Any) -> None:
        written = await in_one_statement(
            self.sessionmaker,
            partial(write_step, fence=self._fence, **row),
            retry_for=self.retry_for,
            what=f"execution {self.execution_id}: journaling a step",
        )
        if not written and self.on_lost is not None:
            self.on_lost()

    async def _forget_from(self, step: int) -> None:
        self._rows = {key: row for key, row in self._rows.items() if key[0] < step}
        await in_one_statement(
            self.sessionmaker,
            partial(forget_steps_from, fence=self._fence, step=step),
            retry_for=self.retry_for,
            what=f"execution {self.execution_id}: dropping a journal that diverged",
        )

    async def model_request(
        self, *, step: int, digest: str, model_name: str, body: Callable[[], Awaitable[object]]
    ) -> object:
        row = self._rows.get((step, ""))
        if row is not None and row.finished and row.args_hash == digest:
            self.replayed.model_responses += 1
            return JSON_CODEC.load(ModelResponse, row.result)
        if self.live_from is None:
            self.live_from = step
        if row is not None:
            logger.warning(
                "execution %s: the run took another path at step %s than attempt %s; the "
                "journal from there on is dropped",
                self.execution_id,
                step,
                row.attempt,
            )
            await self._forget_from(step)
        response = await body()
        written_row: dict[str, Any] = {
            "step": step,
            "call_id": "",
            "kind": StepKind.MODEL,
            "name": model_name,
            "args_hash": digest,
            "result": JSON_CODEC.dump(ModelResponse, response),
            "finished": True,
        }
        if self.with_response is None:
            await self._write(**written_row)
            return response
        written = await self.with_response(self._fence, written_row, cast(ModelResponse, response))
        if not written and self.on_lost is not None:
            self.on_lost()
        return response

    async def tool_call(
        self,
        ctx: RunContext[Any],
        *,
        name: str,
        tool_args: dict[str, Any],
        effect: ToolEffect,
        body: Callable[[], Awaitable[object]],
    ) -> object:
        step, call_id = ctx.run_step, ctx.tool_call_id or ""
        digest = arguments_hash(tool_args)
        row = self._rows.get((step, call_id))
        same_call = row is not None and row.args_hash == digest and row.name == name
        if row is not None and same_call and row.finished:
            self.replayed.tool_results += 1
            self.replayed_calls.add(call_id)
            if effect.on_replay is not None:
                effect.on_replay(ctx, tool_args, _tool_return_content(row.result))
            return JSON_CODEC.load(CallToolResult, row.result)
        key = {"step": step, "call_id": call_id, "kind": StepKind.TOOL, "name": name}
        if row is not None and same_call and effect.effect == Effect.AT_MOST_ONCE:
            self.replayed.uncertain_calls += 1
            self.replayed_calls.add(call_id)
            text = UNCERTAIN_RESULT.format(attempt=row.attempt, tool=name)
            told = await wrap_tool_call_result(_value(text))
            payload = JSON_CODEC.dump(CallToolResult, told)
            await self._write(**key, args_hash=digest, result=payload, finished=True)
            return told
        if effect.journaled_before:
            await self._write(**key, args_hash=digest, finished=False)
        result = await body()
        payload = JSON_CODEC.dump(CallToolResult, result)
        await self._write(**key, args_hash=digest, result=payload, finished=True)
        return result


async def _value(value: Any) -> Any:
    return value


def _tool_return_content(payload: Any) -> Any:
    # The journaled CallToolResult of a plain return: {"kind": "tool_return", "result": ...}.
    if isinstance(payload, dict) and payload.get("kind") == "tool_return":
        return payload.get("result")
    return payload


_current_journal: ContextVar[RunJournal | None] = ContextVar("run_journal", default=None)


@contextmanager
def journaling(journal: RunJournal | None) -> Iterator[None]:
    """Make ``journal`` the current run's for the duration of the block (None: not durable)."""
    token = _current_journal.set(journal)
    try:
        yield
    finally:
        _current_journal.reset(token)


# The per-unit configuration: a tool's declared effect; None for other units.
UnitConfig = ToolEffect | None


class JournalBackend(CallableOperationBackend[UnitConfig]):
    """Each unit through the current run's journal; units of other kinds (argument validation,
    events) run as they are."""

    async def execute(
        self,
        *,
        operation_id: DurableOperationId,
        name: str,
        body: Callable[[], Awaitable[object]],
        cache_key: tuple[object, ...],
        config: UnitConfig,
    ) -> object:
        journal = _current_journal.get()
        if journal is None:
            return await body()
        match operation_id:
            case ModelRequestId(model_name=model_name):
                # The cache identity of a model request: (model_id, messages, settings,
                # parameters, run context).
                messages, run_context = cache_key[1], cache_key[4]
                assert isinstance(run_context, RunContext)
                return await journal.model_request(
                    step=run_context.run_step,
                    digest=request_hash(messages),  # type: ignore[arg-type]
                    model_name=model_name,
                    body=body,
                )
            case ToolsetCallToolId(toolset_kind="function"):
                # The cache identity of a function tool call: (name, args, run context, tool).
                tool_name, tool_args, ctx = cache_key[0], cache_key[1], cache_key[2]
                assert isinstance(ctx, RunContext)
                return await journal.tool_call(
                    ctx,
                    name=str(tool_name),
                    tool_args=dict(tool_args),  # type: ignore[call-overload]
                    effect=config or UNDECLARED,
                    body=body,
                )
            case _:
                return await body()


class JournalDurability(BaseDurabilityCapability[ExecutionRun]):
    """The durability capability of a run's Agent: model requests and function tool calls are
    journaled units while a journal is current (``journaling``), plain calls otherwise.
    ``effects``: the declared effect of each tool, by name."""

    engine_spec = DurabilityEngineSpec(
        engine_name="agentrun journal",
        durable_unit_noun="step",
        durable_container_noun="execution",
        codec=IDENTITY_CODEC,
        wrapped_toolset_kinds=frozenset({"function"}),
        toolset_lifecycles={"function": "enter-always"},
        tool_config_key=None,
    )

    def __init__(self, *, effects: Mapping[str, ToolEffect], name: str | None = None) -> None:
        super().__init__(name=name)
        self._effects = dict(effects)

    @property
    def in_durable_context(self) -> bool:
        return _current_journal.get() is not None

    def _effect_of(
        self, operation_id: DurableOperationId, tool: object | None, tool_name: str
    ) -> UnitConfig | Literal[False]:
        return self._effects.get(tool_name, UNDECLARED)

    def get_durable_operation_backend(self) -> JournalBackend:
        return JournalBackend(
            namer=JournalOperationNamer(self.name),
            config=RoleBasedOperationConfig[UnitConfig](
                model=None, event=None, capability=None, tool=None, resolve_tool=self._effect_of
            ),
        )
