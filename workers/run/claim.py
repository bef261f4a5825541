"""Claiming an execution for one attempt: the conditional UPDATE that one worker wins.

A pending execution is claimed by ``pending → in_progress``. An in_progress one only when it is
orphaned (``app.executions.transitions.orphaned``: no heartbeat for ``stale_after`` seconds, or
handed back): its worker is gone, and the claim is its next attempt. A live worker's execution
is never claimed, whatever duplicate of its job another worker picks up.

The common case, a pending execution, is claimed in one statement (``claim_pending``, on an
autocommit connection: one round trip): the UPDATE joins the agent and returns what the run
needs, files included. Anything else (missing, running, orphaned, cancelled, terminal) is
decided by ``claim_execution`` in a transaction.
"""

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Numeric, bindparam, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.agents.models import Agent
from app.budgets.limits import Budget, stored_limits
from app.conversations.models import ConversationFile, Message
from app.definitions.inputs import StoredInput
from app.definitions.run import AttachedFile
from app.executions.models import (
    CANCELLED,
    AgenticExecution,
    ExecutionPriority,
    ExecutionStatus,
    cancelled_explanation,
)
from app.executions.transitions import (
    mark_failed,
    mark_in_progress,
    orphaned,
    restart_attempt,
    start_pending,
)

# An orphaned in_progress execution was being run by a worker that died (crash, kill, lost
# connection) or stopped (shutdown). It is run again once; after that it fails as worker_lost
# rather than loop.
MAX_ATTEMPTS = 2


class Refusal(enum.StrEnum):
    """Why a claim found nothing to run (what the job answers, and logs)."""

    MISSING = "missing"
    RUNNING_ELSEWHERE = "running elsewhere"
    CANCELLED = CANCELLED  # the failure code it records
    WORKER_LOST = "worker_lost"
    ALREADY_FINISHED = "already finished"
    ALREADY_FAILED = "already failed"
    CLAIMED_BY_ANOTHER_WORKER = "claimed by another worker"


@dataclass(frozen=True)
class Claim:
    """What one attempt runs: the execution, its agent, its files."""

    execution_id: int
    execution_key: str
    # Validated when the execution started (app.executions.start); read by read_stored_input.
    input: StoredInput
    user_id: int
    conversation_id: int
    started_at: datetime
    agent_id: int
    agent_type: str
    dataset_id: int
    model_settings: dict[str, Any]
    files: list[AttachedFile]
    attempt: int
    # The agent's and the execution's usage limits, the stricter of each (app/budgets/limits.py).
    budget: Budget = field(default_factory=Budget)
    # What earlier attempts of the execution used (from its trace): the run counts on from it.
    earlier_usage: dict[str, Any] | None = None
    # A resumed retry's: the execution whose trace the run's history is to be seeded from.
    resume_from_id: int | None = None
    priority: ExecutionPriority = ExecutionPriority.INTERACTIVE
    # The start request's trace context (app/core/tracing.py): the run's span is its child.
    traceparent: str | None = None


# The execution's files, oldest first, as one JSON array of [filename, content type, size,
# storage key] in the claim's RETURNING (no second query).
_FILES = (
    select(
        func.coalesce(
            func.json_agg(
                aggregate_order_by(
                    func.json_build_array(
                        ConversationFile.filename,
                        ConversationFile.content_type,
                        ConversationFile.size,
                        ConversationFile.storage_key,
                    ),
                    ConversationFile.id,
                )
            ),
            func.json_build_array(),
            type_=JSON,
        )
    )
    .where(ConversationFile.conversation_id == AgenticExecution.conversation_id)
    .scalar_subquery()
)


# pending → in_progress, joined with the agent, answering what the run needs. Built once
# (building a statement costs more CPU than running it; SQLAlchemy caches its compiled form).
_CLAIM_PENDING = (
    start_pending()
    .where(Agent.id == AgenticExecution.agent_id)
    .returning(
        AgenticExecution.execution_key,
        AgenticExecution.input,
        AgenticExecution.user_id,
        AgenticExecution.conversation_id,
        AgenticExecution.started_at,
        AgenticExecution.attempts,
        Agent.id,
        Agent.agent_type,
        Agent.dataset_id,
        Agent.model_settings,
        _FILES,
        Agent.limits,
        AgenticExecution.limits,
        AgenticExecution.resume_from_id,
        AgenticExecution.priority,
        AgenticExecution.traceparent,
    )
)


async def claim_pending(connection: AsyncConnection, execution_id: int) -> Claim | None:
    """Claim a pending execution in one statement (on an autocommit connection: one round
    trip); None when it is not pending, or its agent is gone."""
    row = (await connection.execute(_CLAIM_PENDING, {"execution_id": execution_id})).first()
    return None if row is None else _claimed(execution_id, tuple(row))


def _claimed(execution_id: int, row: tuple[Any, ...]) -> Claim:
    (key, given, user_id, conversation_id, started_at, attempts) = row[:6]
    (agent_id, agent_type, dataset_id, model_settings, files, agent_limits, limits) = row[6:13]
    resume_from_id, priority, traceparent = row[13:16]
    return Claim(
        execution_id=execution_id,
        execution_key=key,
        input=StoredInput(given),
        user_id=user_id,
        conversation_id=conversation_id,
        started_at=started_at,
        agent_id=agent_id,
        agent_type=agent_type,
        dataset_id=dataset_id,
        model_settings=model_settings or {},
        files=[AttachedFile(*file) for file in files],
        # The UPDATE returns the attempts counted with this one.
        attempt=attempts,
        budget=Budget.of(stored_limits(agent_limits), stored_limits(limits)),
        resume_from_id=resume_from_id,
        priority=priority,
        traceparent=traceparent,
    )


# What the trace says earlier attempts used: each model response's first entry carries its
# usage (workers/run/transcript.py).
_RESPONSE_USAGE = Message.payload["usage"]


def _summed(name: str) -> Any:
    return func.sum(_RESPONSE_USAGE[name].astext.cast(Numeric))


_EARLIER_USAGE = select(
    func.count(), _summed("input_tokens"), _summed("output_tokens"), _summed("cost")
).where(
    Message.conversation_id == bindparam("conversation_id"),
    _RESPONSE_USAGE.is_not(None),
)


async def earlier_usage(session: AsyncSession, conversation_id: int) -> dict[str, Any] | None:
    """The usage of the model responses already in the execution's trace (its earlier
    attempts'), in the stored form; None when there is none."""
    row = (await session.execute(_EARLIER_USAGE, {"conversation_id": conversation_id})).one()
    requests, input_tokens, output_tokens, cost = row
    if not requests:
        return None
    return {
        "requests": int(requests),
        "input_tokens": int(input_tokens or 0),
        "output_tokens": int(output_tokens or 0),
        "cost": None if cost is None else float(cost),
    }


async def claim_execution(
    session: AsyncSession, execution_id: int, stale_after: float
) -> Claim | Refusal:
    """Move the execution to ``in_progress`` for this attempt, or say why there is nothing to do."""
    query = (
        select(AgenticExecution, Agent, orphaned(stale_after))
        .join(Agent, Agent.id == AgenticExecution.agent_id)
        .where(AgenticExecution.id == execution_id)
    )
    row = (await session.execute(query)).first()
    if row is None:
        return Refusal.MISSING
    execution, agent, is_orphaned = row
    if execution.status == ExecutionStatus.IN_PROGRESS and not is_orphaned:
        # Its worker is alive (a duplicate of its job was picked up): leave it alone.
        return Refusal.RUNNING_ELSEWHERE
    if execution.status == ExecutionStatus.IN_PROGRESS and execution.cancel_requested_at:
        # Cancelled while its worker was gone: nothing left to run.
        explanation = cancelled_explanation(execution.cancel_requested_by or "a user")
        # Conditional on the attempt seen, as a takeover is: another worker may decide too.
        await mark_failed(session, execution_id, CANCELLED, explanation, attempt=execution.attempts)
        return Refusal.CANCELLED
    if execution.status == ExecutionStatus.PENDING:
        moved = await mark_in_progress(session, execution_id)
    elif execution.status == ExecutionStatus.IN_PROGRESS:
        if execution.attempts >= MAX_ATTEMPTS:
            explanation = (
                f"The worker running this execution stopped {execution.attempts} times before "
                "it finished (crash, restart or lost connection); it is not tried again."
            )
            await mark_failed(
                session,
                execution_id,
                "worker_lost",
                explanation,
                await earlier_usage(session, execution.conversation_id),
                attempt=execution.attempts,
            )
            return Refusal.WORKER_LOST
        moved = await restart_attempt(session, execution_id, execution.attempts, stale_after)
    elif execution.status == ExecutionStatus.FINISHED:
        return Refusal.ALREADY_FINISHED
    else:
        return Refusal.ALREADY_FAILED
    if not moved:
        return Refusal.CLAIMED_BY_ANOTHER_WORKER
    files = await session.scalars(
        select(ConversationFile)
        .where(ConversationFile.conversation_id == execution.conversation_id)
        .order_by(ConversationFile.id)
    )
    return Claim(
        execution_id=execution_id,
        execution_key=execution.execution_key,
        input=StoredInput(execution.input),
        user_id=execution.user_id,
        conversation_id=execution.conversation_id,
        started_at=execution.started_at,
        agent_id=agent.id,
        agent_type=agent.agent_type,
        dataset_id=agent.dataset_id,
        model_settings=agent.model_settings or {},
        files=[AttachedFile(f.filename, f.content_type, f.size, f.storage_key) for f in files],
        attempt=execution.attempts + 1,
        budget=Budget.of(stored_limits(agent.limits), stored_limits(execution.limits)),
        earlier_usage=(
            await earlier_usage(session, execution.conversation_id)
            if execution.attempts > 0
            else None
        ),
        resume_from_id=execution.resume_from_id,
        priority=execution.priority,
        traceparent=execution.traceparent,
    )
