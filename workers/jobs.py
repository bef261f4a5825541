"""The arq job ``run_execution(ctx, execution_id)``: load, claim, run the loop, persist.

``ctx`` is the worker's context (see ``workers.settings``): ``settings``, ``sessionmaker``,
``models``, ``runs`` (the executions this worker runs, whose heartbeat it keeps) and, in tests,
an optional ``model_override`` (a pydantic-ai ``Model``) used instead of the agent's configured
model.

When the task is cancelled: a cancellation a user asked for is recorded (``cancelled``); a run
this worker found taken over elsewhere ends without a write; otherwise the worker is stopping
(SIGTERM after the shutdown grace, or arq's job timeout), and the execution is handed back
(heartbeat cleared) for another worker to run as the next attempt.

Writes are retried while PostgreSQL is unreachable (``workers.database``). Should the final one
still fail, the execution stays ``in_progress``, its heartbeat goes stale, and the reconciler
has it run again.
"""

import asyncio
import logging
from functools import partial
from typing import Any

from pydantic_ai import RunUsage
from pydantic_ai.models import Model
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.schemas import ModelSettings
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import is_database_outage
from app.core.logging import execution_id_var
from app.core.metrics import (
    EXECUTION_DURATION,
    EXECUTIONS_COMPLETED,
    MODEL_REQUESTS,
    MODEL_TOKENS,
)
from app.definitions.registry import find_definition
from app.definitions.run import ExecutionRun
from app.executions.models import (
    CANCELLED,
    AgenticExecution,
    ExecutionStatus,
    cancelled_explanation,
)
from app.executions.transitions import mark_failed, mark_finished, release
from workers.claim import Claim, claim_execution
from workers.database import in_transaction
from workers.heartbeat import CANCEL_REQUESTED, SUPERSEDED, HeldRun, Runs
from workers.loop import Outcome, error_text, run_definition, usage_dict
from workers.models import ModelFactory, request_settings
from workers.transcript import Transcript

logger = logging.getLogger(__name__)


async def run_execution(ctx: dict[str, Any], execution_id: int) -> str:
    """Run one execution to a terminal status; a no-op if it already has one."""
    token = execution_id_var.set(execution_id)
    try:
        return await _run(ctx, execution_id)
    finally:
        execution_id_var.reset(token)


async def _run(ctx: dict[str, Any], execution_id: int) -> str:
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    settings: Settings = ctx["settings"]
    retry_for = settings.worker_database_retry_seconds
    stale_after = settings.stale_after_seconds
    claim = await in_transaction(
        sessionmaker,
        partial(claim_execution, execution_id=execution_id, stale_after=stale_after),
        retry_for=retry_for,
        what=f"execution {execution_id}: claiming it",
    )
    if isinstance(claim, str):
        logger.info("execution %s: nothing to run (%s)", execution_id, claim)
        return claim
    runs: Runs = ctx["runs"]
    run = runs.hold(execution_id, claim.attempt)
    try:
        return await _attempt(ctx, claim, run)
    finally:
        runs.drop(execution_id, run)


async def _attempt(ctx: dict[str, Any], claim: Claim, run: HeldRun) -> str:
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    retry_for = ctx["settings"].worker_database_retry_seconds
    execution_id = claim.execution.id
    transcript = Transcript(sessionmaker, claim.execution.conversation_id, retry_for=retry_for)
    usage = RunUsage()
    model: Model | None = None
    try:
        model = _model(ctx, claim)
        outcome = await _execute(ctx, claim, model, transcript, usage)
    except asyncio.CancelledError:
        run.ending = True
        handled = await _stopped(sessionmaker, claim, run, transcript, usage_dict(usage))
        if handled is None:
            raise
        return handled
    except Exception as exc:
        logger.exception("execution %s could not be run", execution_id)
        outcome = Outcome(
            usage=usage_dict(usage),
            failure_code="runtime_error",
            failure_explanation=error_text(exc),
        )
    # From here on the run is over: its heartbeat goes on while the outcome is written.
    run.ending = True
    stored = await _persist(sessionmaker, execution_id, outcome, retry_for)
    if stored is None:
        return "already terminal"
    _observe(claim.execution, stored, model)
    return stored.status


async def _stopped(
    sessionmaker: async_sessionmaker[AsyncSession],
    claim: Claim,
    run: HeldRun,
    transcript: Transcript,
    usage: dict[str, int],
) -> str | None:
    """Record why the run's task was cancelled. When this worker stopped the run itself, the
    cancellation ends here: answers what became of the execution. None when it must
    propagate (arq aborted the job, or the worker is stopping)."""
    execution_id = claim.execution.id
    if run.stop_reason == SUPERSEDED:
        _uncancel()
        return SUPERSEDED
    # Shielded: arq may cancel the task again (a repeated abort) while this is written.
    try:
        explanation = await asyncio.shield(_record_cancellation(sessionmaker, execution_id, usage))
    except Exception:
        # PostgreSQL unreachable: the cancellation, if one was asked for, is recorded by the
        # attempt that runs next (it finds cancel_requested_at).
        logger.exception("execution %s: could not check for a cancel request", execution_id)
        explanation = None
    if explanation is not None:
        await asyncio.shield(transcript.note("failure", explanation, failure_code=CANCELLED))
        if run.stop_reason == CANCEL_REQUESTED:
            _uncancel()
            return ExecutionStatus.FAILED.value
        return None
    # Not asked for by a user: the worker is stopping. Hand the execution back, so that
    # another worker takes it over at once rather than after the heartbeat goes stale.
    await asyncio.shield(_hand_back(sessionmaker, claim, transcript))
    return None


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _hand_back(
    sessionmaker: async_sessionmaker[AsyncSession], claim: Claim, transcript: Transcript
) -> None:
    execution_id = claim.execution.id
    try:
        async with sessionmaker() as session, session.begin():
            released = await release(session, execution_id, claim.attempt)
        if released:
            logger.warning(
                "execution %s: attempt %s interrupted (the worker is stopping); handed back",
                execution_id,
                claim.attempt,
            )
            await transcript.note(
                "attempt",
                f"Attempt {claim.attempt} was interrupted: its worker stopped before it "
                "finished. Another worker takes it over.",
                attempt=claim.attempt,
            )
    except Exception:
        # Not handed back: its heartbeat goes stale, and the reconciler has it run again.
        logger.exception("execution %s could not be handed back", execution_id)


def _model(ctx: dict[str, Any], claim: Claim) -> Model:
    override: Model | None = ctx.get("model_override")
    if override is not None:
        return override
    factory: ModelFactory = ctx["models"]
    return factory.model_for(ModelSettings.model_validate(claim.agent.model_settings or {}))


async def _execute(
    ctx: dict[str, Any], claim: Claim, model: Model, transcript: Transcript, usage: RunUsage
) -> Outcome:
    settings: Settings = ctx["settings"]
    execution = claim.execution
    if claim.attempt > 1:
        await transcript.note(
            "attempt",
            f"Attempt {claim.attempt}: an earlier attempt stopped before it finished.",
            attempt=claim.attempt,
        )
    definition = find_definition(claim.agent.agent_type, execution.execution_key)
    if definition is None:
        raise LookupError(
            f"no execution definition {execution.execution_key!r} "
            f"for agent type {claim.agent.agent_type!r}"
        )
    run = ExecutionRun(
        execution_id=execution.id,
        agent_id=claim.agent.id,
        dataset_id=claim.agent.dataset_id,
        user_id=execution.user_id,
        conversation_id=execution.conversation_id,
        input=definition.Input.model_validate(execution.input),
        sessionmaker=ctx["sessionmaker"],
        media_root=settings.media_root,
        files=claim.files,
    )
    return await run_definition(
        definition,
        run,
        model,
        transcript,
        timeout_seconds=definition.timeout_seconds or settings.execution_timeout_seconds,
        model_settings=request_settings(
            ModelSettings.model_validate(claim.agent.model_settings or {})
        ),
        usage=usage,
    )


async def _cancellation(session: AsyncSession, execution_id: int) -> str | None:
    """The explanation to record if a user asked to cancel the execution, else None.

    Locks the row until the caller's transaction ends, so that a cancel request arriving
    meanwhile waits and then finds the execution ended.
    """
    row = (
        await session.execute(
            select(AgenticExecution.cancel_requested_at, AgenticExecution.cancel_requested_by)
            .where(AgenticExecution.id == execution_id)
            .with_for_update()
        )
    ).first()
    if row is None or row.cancel_requested_at is None:
        return None
    return cancelled_explanation(row.cancel_requested_by or "a user")


async def _persist(
    sessionmaker: async_sessionmaker[AsyncSession],
    execution_id: int,
    outcome: Outcome,
    retry_for: float,
) -> Outcome | None:
    """Store the outcome and answer what was stored; None if the execution was already
    terminal (a late duplicate). Retried while PostgreSQL is unreachable; raises if it stays
    so (the execution then stays in_progress, and is run again once its heartbeat is stale).
    """
    what = f"execution {execution_id}: storing its outcome"
    if outcome.finished:
        try:
            return await in_transaction(
                sessionmaker, partial(_store, execution_id, outcome), retry_for=retry_for, what=what
            )
        except Exception as exc:
            if is_database_outage(exc):
                raise
            # A result PostgreSQL refuses must still leave the execution terminal.
            logger.exception("execution %s: the result could not be stored", execution_id)
            outcome = Outcome(
                usage=outcome.usage,
                failure_code="runtime_error",
                failure_explanation=f"The result could not be stored: {error_text(exc)}",
            )
    return await in_transaction(
        sessionmaker, partial(_store, execution_id, outcome), retry_for=retry_for, what=what
    )


async def _store(execution_id: int, outcome: Outcome, session: AsyncSession) -> Outcome | None:
    """One try at storing the outcome. A cancellation the user asked for (its abort lost on
    the way) wins over the run's own outcome."""
    cancellation = await _cancellation(session, execution_id)
    if cancellation is not None:
        outcome = Outcome(
            usage=outcome.usage, failure_code=CANCELLED, failure_explanation=cancellation
        )
    if outcome.finished:
        moved = await mark_finished(session, execution_id, outcome.result, outcome.usage)
    else:
        moved = await mark_failed(
            session,
            execution_id,
            outcome.failure_code,
            outcome.failure_explanation or "",
            outcome.usage,
        )
    return _reported(execution_id, moved, outcome)


async def _record_cancellation(
    sessionmaker: async_sessionmaker[AsyncSession], execution_id: int, usage: dict[str, int]
) -> str | None:
    """Fail the execution as cancelled if a user asked for it; the explanation, or None."""
    async with sessionmaker() as session, session.begin():
        explanation = await _cancellation(session, execution_id)
        if explanation is None:
            return None
        if not await mark_failed(session, execution_id, CANCELLED, explanation, usage):
            return None
    logger.info("execution %s cancelled", execution_id)
    return explanation


def _reported(execution_id: int, moved: bool, outcome: Outcome) -> Outcome | None:
    if not moved:
        logger.warning("execution %s was already terminal; this outcome is dropped", execution_id)
        return None
    logger.info("execution %s %s", execution_id, outcome.status)
    return outcome


def _observe(execution: AgenticExecution, outcome: Outcome, model: Model | None) -> None:
    EXECUTIONS_COMPLETED.labels(
        execution_key=execution.execution_key,
        status=outcome.status,
        failure_code=outcome.failure_code or "",
    ).inc()
    EXECUTION_DURATION.labels(execution_key=execution.execution_key, status=outcome.status).observe(
        (utcnow() - execution.started_at).total_seconds()
    )
    if model is not None:
        name = model.model_name
        MODEL_REQUESTS.labels(model=name).inc(outcome.usage["requests"])
        MODEL_TOKENS.labels(model=name, direction="input").inc(outcome.usage["input_tokens"])
        MODEL_TOKENS.labels(model=name, direction="output").inc(outcome.usage["output_tokens"])
