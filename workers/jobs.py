"""The arq job ``run_execution(ctx, execution_id)``: load, claim, run the loop, persist.

``ctx`` is the worker's context (see ``workers.settings``): ``settings``, ``sessionmaker``,
``models`` and, in tests, an optional ``model_override`` (a pydantic-ai ``Model``) used
instead of the agent's configured model.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pydantic_ai import RunUsage
from pydantic_ai.models import Model
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import Agent
from app.agents.schemas import ModelSettings
from app.conversations.models import ConversationFile
from app.core.config import Settings
from app.core.db import utcnow
from app.core.logging import execution_id_var
from app.core.metrics import (
    EXECUTION_DURATION,
    EXECUTIONS_COMPLETED,
    MODEL_REQUESTS,
    MODEL_TOKENS,
)
from app.definitions.registry import find_definition
from app.definitions.run import AttachedFile, ExecutionRun
from app.executions.models import (
    CANCELLED,
    AgenticExecution,
    ExecutionStatus,
    cancelled_explanation,
)
from app.executions.transitions import (
    mark_failed,
    mark_finished,
    mark_in_progress,
    restart_attempt,
)
from workers.loop import Outcome, error_text, run_definition, usage_dict
from workers.models import ModelFactory, request_settings
from workers.transcript import Transcript

logger = logging.getLogger(__name__)

# An execution found in_progress was being run by a worker that died (crash, kill, lost
# connection). It is run again once; after that it fails as worker_lost rather than loop.
MAX_ATTEMPTS = 2

NO_USAGE = {"requests": 0, "input_tokens": 0, "output_tokens": 0}


@dataclass(frozen=True)
class Claim:
    execution: AgenticExecution
    agent: Agent
    files: list[AttachedFile]
    attempt: int


async def _claim(session: AsyncSession, execution_id: int) -> Claim | str:
    """Move the execution to ``in_progress`` for this attempt, or say why there is nothing to do."""
    query = (
        select(AgenticExecution, Agent)
        .join(Agent, Agent.id == AgenticExecution.agent_id)
        .where(AgenticExecution.id == execution_id)
    )
    row = (await session.execute(query)).first()
    if row is None:
        return "missing"
    execution, agent = row
    if execution.status == ExecutionStatus.IN_PROGRESS and execution.cancel_requested_at:
        # Cancelled while its worker was gone: nothing left to run.
        explanation = cancelled_explanation(execution.cancel_requested_by or "a user")
        await mark_failed(session, execution_id, CANCELLED, explanation)
        return CANCELLED
    if execution.status == ExecutionStatus.PENDING:
        moved = await mark_in_progress(session, execution_id)
    elif execution.status == ExecutionStatus.IN_PROGRESS:
        if execution.attempts >= MAX_ATTEMPTS:
            explanation = (
                f"The worker running this execution stopped {execution.attempts} times before "
                "it finished (crash, restart or lost connection); it is not tried again."
            )
            await mark_failed(session, execution_id, "worker_lost", explanation)
            return "worker_lost"
        moved = await restart_attempt(session, execution_id, execution.attempts)
    else:
        return f"already {execution.status}"
    if not moved:
        return "claimed by another worker"
    files = await session.scalars(
        select(ConversationFile)
        .where(ConversationFile.conversation_id == execution.conversation_id)
        .order_by(ConversationFile.id)
    )
    attached = [AttachedFile(f.filename, f.content_type, f.size, f.storage_key) for f in files]
    return Claim(execution, agent, attached, execution.attempts + 1)


async def run_execution(ctx: dict[str, Any], execution_id: int) -> str:
    """Run one execution to a terminal status; a no-op if it already has one."""
    token = execution_id_var.set(execution_id)
    try:
        return await _run(ctx, execution_id)
    finally:
        execution_id_var.reset(token)


async def _run(ctx: dict[str, Any], execution_id: int) -> str:
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    async with sessionmaker() as session, session.begin():
        claim = await _claim(session, execution_id)
    if isinstance(claim, str):
        logger.info("execution %s: nothing to run (%s)", execution_id, claim)
        return claim
    transcript = Transcript(sessionmaker, claim.execution.conversation_id)
    usage = RunUsage()
    model: Model | None = None
    try:
        model = _model(ctx, claim)
        outcome = await _execute(ctx, claim, model, transcript, usage)
    except asyncio.CancelledError:
        # arq cancels the task when the job is aborted (a user cancelled the execution) or
        # when the worker stops; only the first is an outcome, the second a retry.
        explanation = await _record_cancellation(sessionmaker, execution_id, usage_dict(usage))
        if explanation is not None:
            await transcript.note("failure", explanation, failure_code=CANCELLED)
        raise
    except Exception as exc:
        logger.exception("execution %s could not be run", execution_id)
        outcome = Outcome(
            usage=usage_dict(usage),
            failure_code="runtime_error",
            failure_explanation=error_text(exc),
        )
    stored = await _persist(sessionmaker, execution_id, outcome)
    if stored is None:
        return "already terminal"
    _observe(claim.execution, stored, model)
    return stored.status


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
    sessionmaker: async_sessionmaker[AsyncSession], execution_id: int, outcome: Outcome
) -> Outcome | None:
    """Store the outcome and answer what was stored; None if the execution was already
    terminal (a late duplicate).

    A cancellation the user asked for (its abort lost on the way) wins over the run's own
    outcome.
    """
    if outcome.finished:
        try:
            async with sessionmaker() as session, session.begin():
                cancellation = await _cancellation(session, execution_id)
                if cancellation is None:
                    moved = await mark_finished(
                        session, execution_id, outcome.result, outcome.usage
                    )
                    return _reported(execution_id, moved, outcome)
        except Exception as exc:
            # A result PostgreSQL refuses must still leave the execution terminal.
            logger.exception("execution %s: the result could not be stored", execution_id)
            outcome = Outcome(
                usage=outcome.usage,
                failure_code="runtime_error",
                failure_explanation=f"The result could not be stored: {error_text(exc)}",
            )
    async with sessionmaker() as session, session.begin():
        cancellation = await _cancellation(session, execution_id)
        if cancellation is not None:
            outcome = Outcome(
                usage=outcome.usage, failure_code=CANCELLED, failure_explanation=cancellation
            )
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
