"""The arq job ``run_execution(ctx, execution_id)``: load, claim, run the loop, persist.

``ctx`` is arq's context; the worker's state in it (``workers.run.state.WorkerState``, built at
startup) holds the settings, the sessionmaker, the model clients, the Agents built for earlier
runs and the executions this worker runs, whose heartbeat it keeps.

An execution costs the worker few round trips to PostgreSQL: the claim, each step of the trace
and the outcome (with the trace's last entries) are one statement each.

When the task is cancelled: a cancellation a user asked for is recorded (``cancelled``); a run
this worker found taken over elsewhere ends without a write; otherwise the worker is stopping
(SIGTERM after the shutdown grace, or arq's job timeout), and the execution is handed back
(heartbeat cleared) for another worker to run as the next attempt.

Writes are retried while PostgreSQL is unreachable (``workers.run.database``). Should the final one
still fail, the execution stays ``in_progress``, its heartbeat goes stale, and the reconciler
has it run again.
"""

import asyncio
import functools
import logging
from functools import partial
from typing import Any

from pydantic_ai import RunUsage
from pydantic_ai.models import Model
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.schemas import ModelSettings
from app.budgets.usage import run_usage, usage_dict
from app.core.db import utcnow
from app.core.logging import execution_id_var
from app.core.metrics import (
    EXECUTION_DURATION,
    EXECUTION_WAIT,
    EXECUTIONS_COMPLETED,
    MODEL_REQUESTS,
    MODEL_TOKENS,
)
from app.core.tracing import run_span
from app.definitions.inputs import read_stored_input
from app.definitions.registry import find_definition
from app.definitions.run import ExecutionRun
from app.executions import transitions
from app.executions.models import ExecutionStatus
from app.executions.transitions import release
from app.journal.repository import JournaledStep, load_steps
from workers.run.claim import Claim, Refusal, claim_execution, claim_pending
from workers.run.database import DatabaseLost, in_one_statement, in_transaction
from workers.run.durability import RunJournal
from workers.run.failures import public_explanation
from workers.run.heartbeat import HeldRun, StopReason
from workers.run.loop import run_definition
from workers.run.model_clients import request_settings
from workers.run.outcome import Attempt, Outcome, persist, record_cancellation
from workers.run.state import WorkerState, state_of
from workers.run.transcript import Transcript

logger = logging.getLogger(__name__)

# What an attempt handed back says in the trace, by why it stopped.
WORKER_STOPPING_NOTE = "its worker stopped before it finished."
DATABASE_LOST_NOTE = "PostgreSQL failed under a step that cannot simply be run again."
# What run_execution answers for an attempt it handed back (arq's job result).
HANDED_BACK = "handed back"


async def run_execution(ctx: dict[str, Any], execution_id: int) -> str:
    """Run one execution to a terminal status; a no-op if it already has one."""
    token = execution_id_var.set(execution_id)
    try:
        return await _run(state_of(ctx), execution_id)
    finally:
        execution_id_var.reset(token)


async def _run(state: WorkerState, execution_id: int) -> str:
    sessionmaker = state.sessionmaker
    settings = state.settings
    retry_for = settings.worker_database_retry_seconds
    what = f"execution {execution_id}: claiming it"
    claim: Claim | Refusal | None = await in_one_statement(
        sessionmaker,
        partial(claim_pending, execution_id=execution_id),
        retry_for=retry_for,
        what=what,
    )
    if isinstance(claim, Claim):
        # A first claim: how long the execution waited for a slot (metrics, per priority).
        waited = (utcnow() - claim.started_at).total_seconds()
        EXECUTION_WAIT.labels(priority=claim.priority.value).observe(max(0.0, waited))
    else:
        # Not pending: missing, running, orphaned, cancelled or ended. Decided in a transaction.
        claim = await in_transaction(
            sessionmaker,
            partial(
                claim_execution,
                execution_id=execution_id,
                stale_after=settings.stale_after_seconds,
            ),
            retry_for=retry_for,
            what=what,
        )
    if isinstance(claim, Refusal):
        logger.info("execution %s: nothing to run (%s)", execution_id, claim)
        return claim
    run = state.runs.hold(execution_id, claim.attempt)
    try:
        # Tracing on: the attempt's span, in the trace of the request that started it.
        with run_span(execution_id, claim.traceparent):
            return await _attempt(state, claim, run)
    finally:
        state.runs.drop(execution_id, run)


async def _attempt(state: WorkerState, claim: Claim, run: HeldRun) -> str:
    sessionmaker = state.sessionmaker
    retry_for = state.settings.worker_database_retry_seconds
    execution_id = claim.execution_id
    transcript = Transcript(
        sessionmaker,
        claim.conversation_id,
        execution_id=execution_id,
        attempt=claim.attempt,
        retry_for=retry_for,
        # Its write refused: another attempt took the execution over, or it ended.
        on_lost=lambda: run.stop(StopReason.SUPERSEDED),
    )
    # Counted on from what earlier attempts used, so that the budget and the stored usage
    # cover the whole execution.
    usage = run_usage(claim.earlier_usage)
    model: Model | None = None
    try:
        model_settings = ModelSettings.model_validate(claim.model_settings)
        model = state.model_override or state.models.model_for(model_settings)
        journal = await _journal(state, claim, run)
        if journal.resumable:
            # The replayed model responses count their usage again as the run replays them,
            # so the earlier attempts' usage is not added on top.
            usage = run_usage(None)
        outcome = await _execute(state, claim, model, model_settings, transcript, usage, journal)
    except asyncio.CancelledError:
        run.ending = True
        handled = await _stopped(sessionmaker, claim, run, transcript, usage_dict(usage))
        if handled is None:
            raise
        return handled
    except DatabaseLost as lost:
        # Not the execution's fault: PostgreSQL failed where the step cannot simply be run
        # again. Handed back, the execution is resumed from its journal once PostgreSQL is
        # back (by any worker; the reconciler enqueues it).
        logger.warning("execution %s: %s", execution_id, lost)
        run.ending = True
        await _hand_back(sessionmaker, claim, transcript, DATABASE_LOST_NOTE)
        return HANDED_BACK
    except Exception as exc:
        logger.exception("execution %s could not be run", execution_id)
        outcome = Outcome(
            usage=usage_dict(usage),
            failure_code="runtime_error",
            failure_explanation=public_explanation(exc),
        )
    # From here on the run is over: its heartbeat goes on while the outcome is written.
    run.ending = True
    stored = await persist(sessionmaker, _attempt_of(claim), outcome, retry_for)
    if stored is None:
        return StopReason.SUPERSEDED
    _observe(claim, stored, model)
    return stored.status


async def _stopped(
    sessionmaker: async_sessionmaker[AsyncSession],
    claim: Claim,
    run: HeldRun,
    transcript: Transcript,
    usage: dict[str, Any],
) -> str | None:
    """Record why the run's task was cancelled. When this worker stopped the run itself, the
    cancellation ends here: answers what became of the execution. None when it must
    propagate (arq aborted the job, or the worker is stopping)."""
    execution_id = claim.execution_id
    if run.stop_reason == StopReason.SUPERSEDED:
        _uncancel()
        return StopReason.SUPERSEDED
    # Shielded: arq may cancel the task again (a repeated abort) while this is written.
    try:
        explanation = await asyncio.shield(
            record_cancellation(sessionmaker, _attempt_of(claim), usage)
        )
    except Exception:
        # PostgreSQL unreachable: the cancellation, if one was asked for, is recorded by the
        # attempt that runs next (it finds cancel_requested_at).
        logger.exception("execution %s: could not check for a cancel request", execution_id)
        explanation = None
    if explanation is not None:
        if run.stop_reason == StopReason.CANCEL_REQUESTED:
            _uncancel()
            return ExecutionStatus.FAILED
        return None
    # Not asked for by a user: the worker is stopping. Hand the execution back, so that
    # another worker takes it over at once rather than after the heartbeat goes stale.
    await asyncio.shield(_hand_back(sessionmaker, claim, transcript))
    return None


def _attempt_of(claim: Claim) -> Attempt:
    return Attempt(claim.execution_id, claim.conversation_id, claim.attempt)


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _hand_back(
    sessionmaker: async_sessionmaker[AsyncSession],
    claim: Claim,
    transcript: Transcript,
    why: str = WORKER_STOPPING_NOTE,
) -> None:
    execution_id = claim.execution_id
    try:
        async with sessionmaker() as session, session.begin():
            released = await release(session, execution_id, claim.attempt)
        if released:
            logger.warning(
                "execution %s: attempt %s interrupted (%s); handed back",
                execution_id,
                claim.attempt,
                why,
            )
            await transcript.note(
                "attempt",
                f"Attempt {claim.attempt} was interrupted: {why} Another worker takes it over.",
                attempt=claim.attempt,
            )
    except Exception:
        # Not handed back: its heartbeat goes stale, and the reconciler has it run again.
        logger.exception("execution %s could not be handed back", execution_id)


async def _journal(state: WorkerState, claim: Claim, run: HeldRun) -> RunJournal:
    """The attempt's journal, with what the earlier attempts left and, for a retry that resumes
    another execution, that execution's journal (a plain first attempt has none: not read)."""
    retry_for = state.settings.worker_database_retry_seconds
    steps: list[JournaledStep] = []
    if claim.attempt > 1 or claim.resume_from_id is not None:
        steps = await in_transaction(
            state.sessionmaker,
            partial(load_steps, execution_id=claim.execution_id, resuming=claim.resume_from_id),
            retry_for=retry_for,
            what=f"execution {claim.execution_id}: reading its journal",
        )
    return RunJournal(
        state.sessionmaker,
        execution_id=claim.execution_id,
        attempt=claim.attempt,
        steps=steps,
        retry_for=retry_for,
        on_lost=lambda: run.stop(StopReason.SUPERSEDED),
    )


def _resume_note(claim: Claim, journal: RunJournal) -> str:
    responses = journal.model_responses()
    if not responses:
        return f"Attempt {claim.attempt}: an earlier attempt stopped before it finished."
    return (
        f"Attempt {claim.attempt}: an earlier attempt stopped before it finished. This one "
        f"resumes from the journal: the {responses} model response(s) and the tool results "
        "journaled before are replayed, not asked for or run again."
    )


async def _execute(
    state: WorkerState,
    claim: Claim,
    model: Model,
    model_settings: ModelSettings,
    transcript: Transcript,
    usage: RunUsage,
    journal: RunJournal,
) -> Outcome:
    settings = state.settings
    if claim.attempt == 1 and claim.resume_from_id is not None:
        await transcript.note(
            "attempt",
            f"A retry of execution {claim.resume_from_id} that resumes it: the "
            f"{journal.model_responses()} model response(s) and the tool results it journaled "
            "are replayed, not asked for or run again.",
            resumed=journal.resumable,
            resumes_execution=claim.resume_from_id,
            journaled_model_responses=journal.model_responses(),
        )
    elif claim.attempt > 1:
        await transcript.note(
            "attempt",
            _resume_note(claim, journal),
            resumed=journal.resumable,
            journaled_model_responses=journal.model_responses(),
        )
    definition = find_definition(claim.agent_type, claim.execution_key)
    if definition is None:
        raise LookupError(
            f"no execution definition {claim.execution_key!r} for agent type {claim.agent_type!r}"
        )
    run = ExecutionRun(
        execution_id=claim.execution_id,
        agent_id=claim.agent_id,
        dataset_id=claim.dataset_id,
        user_id=claim.user_id,
        conversation_id=claim.conversation_id,
        input=read_stored_input(definition, claim.input),
        sessionmaker=state.sessionmaker,
        media_root=settings.media_root,
        files=claim.files,
        text_extractor=state.extractor,
        attempt=claim.attempt,
        fence=functools.partial(
            transitions.hold_attempt, execution_id=claim.execution_id, attempt=claim.attempt
        ),
    )
    return await run_definition(
        definition,
        run,
        model,
        transcript,
        timeout_seconds=definition.timeout_seconds or settings.execution_timeout_seconds,
        model_settings=request_settings(model_settings),
        usage=usage,
        agents=state.agents,
        budget=claim.budget,
        journal=journal,
    )


def _observe(claim: Claim, outcome: Outcome, model: Model | None) -> None:
    EXECUTIONS_COMPLETED.labels(
        execution_key=claim.execution_key,
        status=outcome.status,
        failure_code=outcome.failure_code or "",
    ).inc()
    EXECUTION_DURATION.labels(execution_key=claim.execution_key, status=outcome.status).observe(
        (utcnow() - claim.started_at).total_seconds()
    )
    if model is not None:
        name = model.model_name
        MODEL_REQUESTS.labels(model=name).inc(outcome.usage["requests"])
        MODEL_TOKENS.labels(model=name, direction="input").inc(outcome.usage["input_tokens"])
        MODEL_TOKENS.labels(model=name, direction="output").inc(outcome.usage["output_tokens"])
